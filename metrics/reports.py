"""Scheduled email reports: one delivery row per schedule and period, sent once.

The periodic task calls create_due_deliveries, which inserts the delivery of
each active schedule's last full period. A unique constraint on (schedule,
period_start) makes a second run insert nothing, and only a run that
inserted the row queues its sending, on commit. send_delivery then claims
the row with a conditional UPDATE from pending to sending, so of two tasks
for one row only one sends.

A mail server cannot take part in the database transaction, so a worker
that dies after the server accepted the message and before the row is
marked sent leaves the row in sending. release_stuck_deliveries returns
such rows to pending after STUCK_AFTER, and they are sent again. In that
case a period's report goes out twice; tests/metrics/test_reports.py checks
that repeated and concurrent runs send it once in every other case.
"""

import logging
import smtplib
import time as clock
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta
from functools import partial

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import transaction
from django.db.models import F
from django.template.loader import render_to_string
from django.utils import timezone

from customers.services import utc_date
from metrics.changes import outcome_changes
from metrics.exports import (
    CHANGES_HEADER,
    ENGAGEMENT_HEADER,
    IMPACT_HEADER,
    OUTCOME_HEADER,
    SCORES_HEADER,
    change_rows,
    csv_text,
    engagement_rows,
    impact_rows,
    outcome_rows,
    score_rows,
)
from metrics.impact import impact_report
from metrics.models import (
    DeliveryStatus,
    ReportDelivery,
    ReportFrequency,
    ReportSchedule,
)
from metrics.scope import Scope
from metrics.services import learning_engagement, outcome_comparison

logger = logging.getLogger(__name__)

# A delivery in sending for longer than this is taken to belong to a worker
# that died, and goes back to pending.
STUCK_AFTER = timedelta(minutes=15)
# Sending attempts before a delivery is marked failed for a person to see.
MAX_ATTEMPTS = 5
# Errors of the mail server or the connection to it; the next run retries.
MAIL_ERRORS = (smtplib.SMTPException, OSError)


def last_full_period(frequency: str, today: date) -> tuple[date, date]:
    """Return the first and last day of the last full week or month before today.

    Weeks run Monday to Sunday. The period never includes ``today``.
    """
    if frequency == ReportFrequency.WEEKLY:
        end = today - timedelta(days=today.weekday() + 1)
        return end - timedelta(days=6), end
    if frequency == ReportFrequency.MONTHLY:
        end = today.replace(day=1) - timedelta(days=1)
        return end.replace(day=1), end
    raise ValueError(
        f"report frequency {frequency!r} is invalid; use one of "
        f"{', '.join(ReportFrequency.values)}"
    )


def create_due_deliveries(now: datetime | None = None) -> list[int]:
    """Insert the last full period's delivery of every active schedule.

    Returns the ids of the deliveries this call inserted; their sending is
    queued when the transaction commits. A delivery that already exists,
    from an earlier or a concurrent run, is left alone.
    """
    from metrics.tasks import send_report

    today = utc_date(now or timezone.now())
    created_ids = []
    for schedule in ReportSchedule.objects.filter(is_active=True):
        start, end = last_full_period(schedule.frequency, today)
        with transaction.atomic():
            delivery, created = ReportDelivery.objects.get_or_create(
                schedule=schedule,
                period_start=start,
                defaults={"period_end": end},
            )
            if created:
                transaction.on_commit(partial(send_report.delay, delivery.pk))
                created_ids.append(delivery.pk)
    if created_ids:
        logger.info("Created report deliveries %s", created_ids)
    return created_ids


def release_stuck_deliveries(older_than: timedelta = STUCK_AFTER) -> int:
    """Return deliveries stuck in sending to pending, for the next run to send."""
    released = ReportDelivery.objects.filter(
        status=DeliveryStatus.SENDING, claimed_at__lt=timezone.now() - older_than
    ).update(status=DeliveryStatus.PENDING, updated_at=timezone.now())
    if released:
        logger.warning("Released %s report deliveries stuck in sending", released)
    return released


def pending_delivery_ids(exclude: list[int]) -> list[int]:
    """Return pending deliveries to send again: retries and released rows."""
    return list(
        ReportDelivery.objects.filter(status=DeliveryStatus.PENDING)
        .exclude(pk__in=exclude)
        .order_by("pk")
        .values_list("pk", flat=True)
    )


def _claim(delivery_id: int) -> bool:
    """Move a pending delivery to sending, counting the attempt; False if taken."""
    claimed = ReportDelivery.objects.filter(
        pk=delivery_id, status=DeliveryStatus.PENDING
    ).update(
        status=DeliveryStatus.SENDING,
        attempts=F("attempts") + 1,
        claimed_at=timezone.now(),
        updated_at=timezone.now(),
    )
    return claimed == 1


@dataclass(frozen=True)
class Attachment:
    filename: str
    content: str


def build_report(delivery: ReportDelivery) -> tuple[str, str, list[Attachment]]:
    """Return the subject, the plain-text body and the CSV attachments."""
    schedule = delivery.schedule
    scope = Scope(
        start=delivery.period_start,
        end=delivery.period_end,
        plan=schedule.plan,
        stage=schedule.stage.slug if schedule.stage else "",
    )
    context: dict = {"schedule": schedule, "delivery": delivery, "scope": scope}
    attachments = []
    if schedule.include_engagement:
        engagement = learning_engagement(scope=scope)
        context["engagement"] = engagement
        attachments.append(
            Attachment(
                "engagement.csv",
                csv_text(ENGAGEMENT_HEADER, engagement_rows(engagement)),
            )
        )
        attachments.append(
            Attachment("scores.csv", csv_text(SCORES_HEADER, score_rows(engagement)))
        )
    if schedule.include_impact:
        impact = impact_report(scope)
        context["impact"] = impact
        attachments.append(
            Attachment("impact.csv", csv_text(IMPACT_HEADER, impact_rows(impact)))
        )
    if schedule.include_outcomes:
        comparison = outcome_comparison(as_of=delivery.period_end, scope=scope)
        context["comparison"] = comparison
        attachments.append(
            Attachment(
                "outcomes.csv", csv_text(OUTCOME_HEADER, outcome_rows(comparison))
            )
        )
    if schedule.include_changes:
        # Subjects trained within a week or a month have not finished their
        # 30 days after training by its end, so the period does not narrow
        # this section. It measures everyone followed up by the period's end.
        changes = outcome_changes(
            scope=replace(scope, start=None, end=None), as_of=delivery.period_end
        )
        context["changes"] = changes
        context["changes_metrics"] = (
            changes.usage,
            changes.health,
            changes.tickets,
            changes.expansion_change,
        )
        attachments.append(
            Attachment("changes.csv", csv_text(CHANGES_HEADER, change_rows(changes)))
        )
    subject = (
        f"Nudgepath report: {schedule.name}, "
        f"{delivery.period_start:%Y-%m-%d} to {delivery.period_end:%Y-%m-%d}"
    )
    body = render_to_string("metrics/report_email.txt", context)
    return subject, body, attachments


def send_delivery(delivery_id: int) -> bool:
    """Send one delivery's report unless another task claimed it first.

    Returns True when this call sent the email. A mail error puts the row
    back to pending, or marks it failed after MAX_ATTEMPTS, and is logged.
    """
    if not _claim(delivery_id):
        logger.info("Report delivery %s is not pending; nothing to send", delivery_id)
        return False

    started = clock.monotonic()
    delivery = ReportDelivery.objects.select_related("schedule", "schedule__stage").get(
        pk=delivery_id
    )
    subject, body, attachments = build_report(delivery)
    message = EmailMessage(
        subject,
        body,
        settings.DEFAULT_FROM_EMAIL,
        delivery.schedule.recipient_list,
    )
    for attachment in attachments:
        message.attach(attachment.filename, attachment.content, "text/csv")

    try:
        message.send()
    except MAIL_ERRORS as error:
        _record_failure(delivery, error)
        return False

    ReportDelivery.objects.filter(pk=delivery_id).update(
        status=DeliveryStatus.SENT,
        sent_at=timezone.now(),
        last_error="",
        updated_at=timezone.now(),
    )
    logger.info(
        "Sent report delivery %s of schedule %s to %s recipients in %.0f ms",
        delivery_id,
        delivery.schedule_id,
        len(delivery.schedule.recipient_list),
        (clock.monotonic() - started) * 1000,
    )
    return True


def _record_failure(delivery: ReportDelivery, error: Exception) -> None:
    status = DeliveryStatus.PENDING
    if delivery.attempts >= MAX_ATTEMPTS:
        status = DeliveryStatus.FAILED
    ReportDelivery.objects.filter(pk=delivery.pk).update(
        status=status, last_error=str(error)[:1000], updated_at=timezone.now()
    )
    logger.warning(
        "Sending report delivery %s failed on attempt %s, now %s: %s",
        delivery.pk,
        delivery.attempts,
        status,
        error,
    )
