"""Evaluating triggers from tasks: the scheduled fan-out and its retries.

The scheduled sweep is split into one task per active trigger, all as of
one instant, so a slow or failing trigger delays no other and a retry
repeats only the trigger that failed. Evaluating a trigger twice as of the
same instant is harmless: firings are unique per trigger, subject and
occurrence, and only the firings a run inserted get actions.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from triggers.evaluation import SweepReport, run_sweep
from triggers.models import Sweep, Trigger

logger = logging.getLogger(__name__)

# Delay before retry n (0-based) of a failed trigger: 10 s, 20 s, 40 s and
# 80 s, capped at RETRY_MAX. The broker's visibility timeout must stay above
# the cap, or Redis hands a waiting retry to a second worker.
RETRY_BASE = timedelta(seconds=10)
RETRY_MAX = timedelta(minutes=5)
MAX_RETRIES = 4


@dataclass(frozen=True)
class TriggerRun:
    """The outcome of evaluating some triggers as of one instant."""

    report: SweepReport
    # Ids of the triggers that failed, to be evaluated again.
    failed_ids: tuple[int, ...] = ()


def prune_quiet_sweeps(before: datetime) -> int:
    """Delete the sweeps started before an instant that fired and failed nothing.

    Returns how many rows were deleted. Sweeps with firings are kept, because
    their firings point to them.
    """
    quiet = Sweep.objects.filter(started_at__lt=before, fired=0, errors=[])
    deleted, _ = quiet.delete()
    if deleted:
        logger.info("Deleted %s quiet sweeps started before %s", deleted, before)
    return deleted


def active_trigger_ids() -> list[int]:
    """Return the ids of the active triggers, in id order."""
    active = Trigger.objects.filter(is_active=True).order_by("pk")
    return list(active.values_list("pk", flat=True))


def evaluate_triggers_at(
    trigger_ids: Sequence[int], as_of: datetime, account_id: int | None = None
) -> TriggerRun:
    """Evaluate the still active triggers among trigger_ids as of one instant.

    A trigger switched off since its task was queued is left out. account_id
    limits the evaluation to that account and its contacts. Each trigger
    runs in its own transaction; the ids of those that failed come back in
    failed_ids.
    """
    triggers = list(
        Trigger.objects.filter(pk__in=trigger_ids, is_active=True)
        .select_related("enroll_course", "enroll_path", "email_template")
        .order_by("pk")
    )
    if not triggers:
        return TriggerRun(report=SweepReport())

    account_ids = None if account_id is None else [account_id]
    report = run_sweep(as_of, triggers=triggers, account_ids=account_ids)
    failed_slugs = {slug for slug, _ in report.failures}
    failed_ids = tuple(
        trigger.pk for trigger in triggers if trigger.slug in failed_slugs
    )
    return TriggerRun(report=report, failed_ids=failed_ids)


def retry_countdown(retries: int) -> float:
    """Return the seconds to wait before retry number `retries` (0 for the first)."""
    delay = min(RETRY_BASE * 2**retries, RETRY_MAX)
    return delay.total_seconds()


def parse_instant(value: str) -> datetime:
    """Read an ISO 8601 instant passed to a task; it must carry a time zone."""
    instant = datetime.fromisoformat(value)
    if timezone.is_naive(instant):
        raise ValueError(
            f"instant {value!r} has no time zone; pass an ISO 8601 value with "
            "an offset, such as 2024-06-15T12:00:00+00:00"
        )
    return instant
