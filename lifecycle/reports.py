"""Time spent in each lifecycle stage: per account, and over all accounts per stage.

Both read only the stage history (StageChange), so a report as of a past
instant shows what was known then. A stay runs from one stage change to
the account's next one; the stay that has not ended runs to as_of.
"""

import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.utils import timezone

from customers.models import Account
from lifecycle.models import Stage, StageChange
from lifecycle.services import StageVisit, stage_history

# Rows read from the database per round trip while the report streams the
# stage history, so memory stays flat with the number of accounts.
CHUNK_SIZE = 5000

DAY = timedelta(days=1)


@dataclass(frozen=True)
class AccountStageTime:
    """The time one account spent in one stage, over all its stays there."""

    stage: Stage
    stays: int
    total: timedelta
    # Whether the account was in this stage at as_of.
    current: bool


def account_stage_times(
    account: Account, as_of: datetime | None = None
) -> list[AccountStageTime]:
    """Sum one account's time in each stage it has been in, in stage order."""
    return sum_stage_times(stage_history(account, as_of=as_of or timezone.now()))


def sum_stage_times(visits: list[StageVisit]) -> list[AccountStageTime]:
    """Sum the stays that stage_history() returned per stage, in stage order."""
    totals: dict[int, AccountStageTime] = {}
    for visit in visits:
        before = totals.get(visit.stage.pk)
        totals[visit.stage.pk] = AccountStageTime(
            stage=visit.stage,
            stays=(before.stays if before else 0) + 1,
            total=(before.total if before else timedelta()) + visit.time_in_stage,
            current=visit.left_at is None,
        )
    return sorted(totals.values(), key=lambda time: time.stage.order)


@dataclass(frozen=True)
class StageTimeSummary:
    """Time in one stage over all accounts, in days."""

    stage: Stage
    # Stays that ended by as_of, with their mean and median length.
    completed_stays: int
    mean_days: float | None
    median_days: float | None
    # Accounts in the stage at as_of, and the median of their days so far.
    current_accounts: int
    current_median_days: float | None


def stage_time_report(as_of: datetime | None = None) -> list[StageTimeSummary]:
    """Summarise the length of stays in each stage over every account.

    Reads the stage history once, ordered by account and time, in chunks;
    the time is linear in the number of stage changes.
    """
    as_of = as_of or timezone.now()
    stages = list(Stage.objects.order_by("order"))
    completed: dict[int, list[float]] = {stage.pk: [] for stage in stages}
    current: dict[int, list[float]] = {stage.pk: [] for stage in stages}

    rows = (
        StageChange.objects.filter(changed_at__lte=as_of)
        .order_by("account_id", "changed_at", "id")
        .values_list("account_id", "to_stage_id", "changed_at")
        .iterator(chunk_size=CHUNK_SIZE)
    )
    previous: tuple[int, int, datetime] | None = None
    for account_id, stage_id, changed_at in rows:
        if previous is not None:
            previous_account, previous_stage, entered_at = previous
            if previous_account == account_id:
                completed[previous_stage].append((changed_at - entered_at) / DAY)
            else:
                current[previous_stage].append((as_of - entered_at) / DAY)
        previous = (account_id, stage_id, changed_at)
    if previous is not None:
        current[previous[1]].append((as_of - previous[2]) / DAY)

    return [
        StageTimeSummary(
            stage=stage,
            completed_stays=len(completed[stage.pk]),
            mean_days=_mean(completed[stage.pk]),
            median_days=_median(completed[stage.pk]),
            current_accounts=len(current[stage.pk]),
            current_median_days=_median(current[stage.pk]),
        )
        for stage in stages
    ]


def _mean(days: list[float]) -> float | None:
    return statistics.fmean(days) if days else None


def _median(days: list[float]) -> float | None:
    return statistics.median(days) if days else None
