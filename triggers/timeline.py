"""Account page sections and timeline sources for emails, firings and CSM tasks.

Registered from TriggersConfig.ready(), because customers cannot import
triggers. Emails held back are shown with the reason: the skip reason of a
skipped email, the last error of a failed one, and the time a deferred
one waits for. Each section and timeline source runs a fixed number of
queries.
"""

from datetime import date
from typing import Any

from django.db.models import Case, Count, Q, Value, When
from django.db.models.functions import Coalesce

from customers.accounts_view import Section, register_section
from customers.models import Account
from customers.timeline import (
    TimelineEntry,
    TimelineSource,
    register_source,
    sorted_entries,
)
from triggers.models import CsmTask, CsmTaskStatus, Firing, OutboxEmail, OutboxStatus

# Rows listed in each section; the timeline reaches older ones.
MAX_ROWS = 25


def _account_emails(account: Account) -> Any:
    # An email belongs to the account its firing was for, which covers
    # contacts of other accounts that an account trigger reached.
    return OutboxEmail.objects.filter(firing__account=account)


def held_back_reason(email: OutboxEmail) -> str:
    """Say why an email was not sent, or is not sent yet; blank for a sent one."""
    if email.status == OutboxStatus.SKIPPED:
        return email.skip_reason or "Skipped"
    if email.status == OutboxStatus.FAILED:
        return f"Failed: {email.last_error}" if email.last_error else "Failed"
    if email.status == OutboxStatus.PENDING and email.next_attempt_at is not None:
        return f"Deferred until {email.next_attempt_at:%Y-%m-%d %H:%M}"
    return ""


def _emails_section(account: Account, today: date) -> dict[str, Any]:
    emails = _account_emails(account)
    counts = emails.aggregate(
        sent=Count("pk", filter=Q(status=OutboxStatus.SENT)),
        held_back=Count(
            "pk", filter=Q(status__in=[OutboxStatus.SKIPPED, OutboxStatus.FAILED])
        ),
        waiting=Count(
            "pk", filter=Q(status__in=[OutboxStatus.PENDING, OutboxStatus.SENDING])
        ),
    )
    rows = (
        emails.select_related("contact", "firing__trigger")
        .annotate(shown_at=Coalesce("sent_at", "created_at"))
        .order_by("-shown_at", "-id")[:MAX_ROWS]
    )
    return {
        "counts": counts,
        "emails": [(email, held_back_reason(email)) for email in rows],
    }


def _firings_section(account: Account, today: date) -> dict[str, Any]:
    firings = Firing.objects.filter(account=account)
    rows = firings.select_related("trigger", "contact").order_by("-fired_at", "-id")[
        :MAX_ROWS
    ]
    return {"firings": list(rows), "total": firings.count()}


def _tasks_section(account: Account, today: date) -> dict[str, Any]:
    # Open tasks first, soonest due first; then the latest done ones.
    rows = (
        CsmTask.objects.filter(account=account)
        .select_related("owner")
        .annotate(
            is_done=Case(
                When(status=CsmTaskStatus.DONE, then=Value(1)), default=Value(0)
            )
        )
        .order_by("is_done", "due_on", "-completed_at", "id")[:MAX_ROWS]
    )
    return {"tasks": list(rows), "today": today}


def _firing_entries(account: Account, limit: int) -> list[TimelineEntry]:
    rows = (
        Firing.objects.filter(account=account)
        .select_related("trigger", "contact")
        .order_by("-fired_at", "-id")[:limit]
    )
    return [
        TimelineEntry(
            at=firing.fired_at,
            source="firings",
            title=(
                f"Trigger {firing.trigger.name} fired ({firing.get_outcome_display()})"
            ),
            detail=" · ".join(
                part
                for part in (
                    firing.contact.full_name if firing.contact else "",
                    firing.note,
                )
                if part
            ),
            tie_breaker=firing.pk,
        )
        for firing in rows
    ]


def _email_entries(account: Account, limit: int) -> list[TimelineEntry]:
    rows = (
        _account_emails(account)
        .select_related("contact")
        .annotate(shown_at=Coalesce("sent_at", "created_at"))
        .order_by("-shown_at", "-id")[:limit]
    )
    return [
        TimelineEntry(
            at=email.shown_at,
            source="emails",
            title=f"Email {email.get_status_display().lower()}: {email.subject}",
            detail=" · ".join(
                part for part in (email.to_email, held_back_reason(email)) if part
            ),
            tie_breaker=email.pk,
        )
        for email in rows
    ]


def _task_entries(account: Account, limit: int) -> list[TimelineEntry]:
    tasks = CsmTask.objects.filter(account=account).select_related("owner")
    created = tasks.order_by("-created_at", "-id")[:limit]
    entries = [
        TimelineEntry(
            at=task.created_at,
            source="tasks",
            title=f"CSM task created: {task.title}",
            detail=f"due {task.due_on:%Y-%m-%d}",
            tie_breaker=task.pk,
        )
        for task in created
    ]
    done = tasks.filter(completed_at__isnull=False).order_by("-completed_at", "-id")[
        :limit
    ]
    entries += [
        TimelineEntry(
            at=task.completed_at,
            source="tasks",
            title=f"CSM task done: {task.title}",
            detail=task.owner.get_username() if task.owner else "",
            tie_breaker=task.pk,
        )
        for task in done
        if task.completed_at is not None
    ]
    return sorted_entries(entries, limit)


register_section(
    Section(
        "emails",
        "Emails sent and held back",
        90,
        "accounts/sections/emails.html",
        _emails_section,
    )
)
register_section(
    Section(
        "firings",
        "Trigger firings",
        100,
        "accounts/sections/firings.html",
        _firings_section,
    )
)
register_section(
    Section("tasks", "CSM tasks", 110, "accounts/sections/tasks.html", _tasks_section)
)
register_source(TimelineSource("firings", "Trigger", _firing_entries))
register_source(TimelineSource("emails", "Email", _email_entries))
register_source(TimelineSource("tasks", "CSM task", _task_entries))
