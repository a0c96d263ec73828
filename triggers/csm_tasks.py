"""Tasks for the CSM who owns an account, created by journey steps."""

import logging
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from django.db import transaction
from django.utils import timezone

from triggers.models import CsmTask, CsmTaskStatus, Firing, JourneyStep

logger = logging.getLogger(__name__)


def create_tasks(step: JourneyStep, firings: Sequence[Firing], now: datetime) -> int:
    """Create one task per firing for its account's owner; return how many are new.

    The owner is the account's CSM at this moment; an account without one
    gets a task with no owner, which the admin lists for everyone. Two
    queries: the accounts' owners come with the firings, then one insert.
    """
    due_on = timezone.localdate(now) + timedelta(days=step.task_due_days)
    tasks = [
        CsmTask(
            account_id=firing.account_id,
            owner_id=firing.account.owner_id,
            title=step.task_title,
            details=_details(step, firing),
            due_on=due_on,
            firing=firing,
            step=step,
        )
        for firing in firings
    ]
    before = CsmTask.objects.filter(step=step, firing__in=firings).count()
    # A task that exists for the firing and step stays as it is.
    CsmTask.objects.bulk_create(tasks, ignore_conflicts=True)
    created = CsmTask.objects.filter(step=step, firing__in=firings).count() - before
    if created:
        logger.info(
            "Created %s CSM tasks for step %s of trigger %s",
            created,
            step.pk,
            step.trigger.slug,
        )
    return created


def _details(step: JourneyStep, firing: Firing) -> str:
    subject = firing.contact or firing.account
    return (
        f"Trigger '{step.trigger.name}' fired for {subject} on "
        f"{timezone.localdate(firing.fired_at).isoformat()} "
        f"(step {step.order} of its journey)."
    )


def complete_tasks(task_ids: Iterable[int], at: datetime | None = None) -> int:
    """Mark open tasks done; return how many changed. Done tasks keep their time."""
    with transaction.atomic():
        done = CsmTask.objects.filter(
            pk__in=list(task_ids), status=CsmTaskStatus.OPEN
        ).update(
            status=CsmTaskStatus.DONE,
            completed_at=at or timezone.now(),
            updated_at=timezone.now(),
        )
    return done
