"""Celery tasks for sweeps, the event path and the email outbox.

Each task takes ids, re-reads its rows and calls a service function. Every
task is safe to run twice, because the broker delivers a task again when
the worker running it dies (CELERY_TASK_ACKS_LATE).
"""

import logging
from datetime import timedelta
from typing import Any

from celery import Task, shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError
from django.utils import timezone

from triggers import events, scheduling, services
from triggers.outbox import STUCK_AFTER

logger = logging.getLogger(__name__)

# Errors that show the database was briefly unreachable, not that the row is
# bad. Mail server errors are not here: send_outbox_email records them on
# the row and the periodic job retries the row when its backoff is over.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(name="triggers.tasks.run_sweep")
def run_sweep(as_of: str | None = None) -> int:
    """Queue one evaluate_triggers task per active trigger, all as of one instant.

    Beat calls this without arguments, which means now. Returns how many
    tasks were queued.
    """
    instant = scheduling.parse_instant(as_of) if as_of else timezone.now()
    retention = timedelta(days=settings.NUDGEPATH_SWEEP_RETENTION_DAYS)
    scheduling.prune_quiet_sweeps(before=timezone.now() - retention)
    trigger_ids = scheduling.active_trigger_ids()
    for trigger_id in trigger_ids:
        evaluate_triggers.delay([trigger_id], instant.isoformat())
    logger.info(
        "Sweep as of %s: queued %s trigger evaluations",
        instant.isoformat(),
        len(trigger_ids),
    )
    return len(trigger_ids)


@shared_task(
    bind=True,
    name="triggers.tasks.evaluate_triggers",
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=10,
    retry_backoff_max=300,
    retry_jitter=True,
    max_retries=scheduling.MAX_RETRIES,
)
def evaluate_triggers(
    self: Task, trigger_ids: list[int], as_of: str, account_id: int | None = None
) -> dict[str, Any]:
    """Evaluate triggers as of an instant, for one account or for all subjects.

    Triggers that fail are retried alone, as of the same instant, with a
    growing delay, and the others keep their results. After the last retry the
    failure is logged, and each attempt's sweep row shows the error.
    """
    instant = scheduling.parse_instant(as_of)
    run = scheduling.evaluate_triggers_at(trigger_ids, instant, account_id)
    if run.failed_ids:
        failures = "; ".join(f"{slug}: {error}" for slug, error in run.report.failures)
        # Eager tasks (the embedded demo) run inside the caller, where a
        # retry could only repeat at once; the next sweep tries again.
        if self.request.is_eager or self.request.retries >= scheduling.MAX_RETRIES:
            logger.error(
                "Triggers %s failed as of %s after %s retries, giving up: %s",
                list(run.failed_ids),
                as_of,
                self.request.retries,
                failures,
            )
        else:
            countdown = scheduling.retry_countdown(self.request.retries)
            logger.warning(
                "Triggers %s failed as of %s, retry %s in %.0f s: %s",
                list(run.failed_ids),
                as_of,
                self.request.retries + 1,
                countdown,
                failures,
            )
            raise self.retry(
                args=(list(run.failed_ids), as_of, account_id), countdown=countdown
            )
    return {
        "triggers": len(trigger_ids),
        "fired": run.report.fired,
        "emails_queued": run.report.emails_queued,
        "failed": list(run.failed_ids),
    }


@shared_task(
    name="triggers.tasks.process_account_changes",
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=1,
    retry_backoff_max=60,
    max_retries=5,
)
def process_account_changes(account_id: int) -> int:
    """Queue the evaluation of one account's changed data, then schedule the next run.

    Returns how many triggers were queued for evaluation.
    """
    coalescer = events.coalescer()
    if coalescer is None:
        # Only queued with Redis as the broker, so a worker configured
        # otherwise cannot read the changes.
        logger.warning(
            "Changes of account %s not evaluated: the worker's broker is not "
            "Redis; the next sweep evaluates them",
            account_id,
        )
        return 0

    sources = coalescer.take(account_id)
    queued = events.queue_account_evaluation(account_id, sources) if sources else 0
    coalescer.done(account_id)

    countdown = coalescer.finish(account_id, evaluated=bool(sources))
    if countdown is not None:
        process_account_changes.apply_async((account_id,), countdown=countdown)
    return queued


@shared_task(
    name="triggers.tasks.send_email",
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def send_email(outbox_id: int) -> bool:
    """Send one outbox email unless another worker already claimed it."""
    return services.send_outbox_email(outbox_id)


@shared_task(name="triggers.tasks.send_pending_email")
def send_pending_email() -> int:
    """Release stuck rows, then queue a send task per due pending row, in one batch.

    Returns how many sends were queued. A row queued twice (by a sweep and by
    this job) is sent once, because sending starts with a claim.
    """
    services.release_stuck_email(older_than=STUCK_AFTER)
    outbox_ids = services.due_outbox_ids()
    for outbox_id in outbox_ids:
        send_email.delay(outbox_id)
    if outbox_ids:
        logger.info("Queued %s pending outbox emails", len(outbox_ids))
    return len(outbox_ids)
