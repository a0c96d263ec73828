"""Churn, renewal and time-to-value of a trigger's treated and held-out accounts.

The outcome comparison of trained against untrained accounts is
observational. When a trigger with a holdout is chosen, its accounts are
also compared treated against held out, the holdout being drawn by a hash
of the trigger and the subject (triggers.holdouts). The groups then differ
only by chance and by the trigger's actions, so a difference estimates the
effect of those actions.

Each account is placed on the UTC day of its first acted or held-out
firing (metrics.controls) and counted only on outcomes that the firing
could still change:

- churn: accounts not churned by the end of that day. An account churned
  when a churn date (``churned_on`` or a churn event) falls after it and
  by ``as_of``.
- renewal: of those, accounts whose renewal date falls after that day and
  by ``as_of``. An account renewed when it had not churned by ``as_of``.
- time-to-value: days from signup to the first usage day by ``as_of``, for
  accounts with no usage from signup to the end of that day. Accounts
  still without usage are left out.
"""

import logging
import time as clock
from dataclasses import dataclass, field
from datetime import UTC, date
from typing import Any

from django.db.models import Min, OuterRef, Subquery
from django.utils import timezone

from customers.models import Account, ChurnEvent
from customers.services import utc_date
from metrics.cohorts import SubjectLevel
from metrics.controls import first_firing_days
from metrics.models import AccountDay
from metrics.scope import EVERYTHING, Scope
from metrics.services import MetricComparison, mean_metric, share_metric
from metrics.stats import Summary
from triggers.models import Trigger

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class HoldoutOutcomes:
    """Treated against held-out accounts of one trigger, on account outcomes.

    In each metric the treated are in ``trained`` and the held out in
    ``untrained``, so the page and CSV code of the outcome comparison
    applies. ``awaiting_follow_up`` counts accounts first fired on ``as_of``
    itself, which have had no day of follow-up yet.
    """

    trigger: Trigger
    as_of: date
    treated_accounts: int
    held_out_accounts: int
    awaiting_follow_up: int
    metrics: list[MetricComparison]


@dataclass
class _GroupCounts:
    accounts: int = 0
    churn_n: int = 0
    churned: int = 0
    renewal_due: int = 0
    renewed: int = 0
    ttv_days: list[int] = field(default_factory=list)

    def ttv_summary(self) -> Summary:
        days = self.ttv_days
        if not days:
            return Summary(n=0, mean=None, sd=None)
        total = float(sum(days))
        return Summary.from_sums(len(days), total, float(sum(d * d for d in days)))


def _account_dates(account_ids: list[int], as_of: date) -> dict[int, dict[str, Any]]:
    """Return each account's signup, renewal, first churn and first usage day.

    The first churn is the earlier of ``churned_on`` and the first churn
    event, both by ``as_of``. The first usage day since signup, by
    ``as_of``, is one index seek on the per-account daily roll-up.
    """
    first_event = (
        ChurnEvent.objects.filter(account=OuterRef("pk"), churned_on__lte=as_of)
        .order_by()
        .values("account")
        .annotate(day=Min("churned_on"))
        .values("day")
    )
    first_usage = (
        AccountDay.objects.filter(
            account=OuterRef("pk"),
            usage_events__gt=0,
            day__gte=OuterRef("signup_date"),
            day__lte=as_of,
        )
        .order_by("day")
        .values("day")[:1]
    )
    rows = (
        Account.objects.filter(pk__in=account_ids)
        .annotate(first_churn_event=Subquery(first_event))
        .annotate(first_usage=Subquery(first_usage))
        .values(
            "pk",
            "signup_date",
            "renewal_date",
            "churned_on",
            "first_churn_event",
            "first_usage",
        )
    )
    return {row["pk"]: row for row in rows}


def _first_churn(row: dict[str, Any], as_of: date) -> date | None:
    days = [row["first_churn_event"]]
    if row["churned_on"] is not None and row["churned_on"] <= as_of:
        days.append(row["churned_on"])
    known = [day for day in days if day is not None]
    return min(known) if known else None


def _count(group: _GroupCounts, row: dict[str, Any], fired: date, as_of: date) -> None:
    """Add one account, first fired on ``fired``, to its group's counts."""
    group.accounts += 1
    churned = _first_churn(row, as_of)
    if churned is None or churned > fired:
        group.churn_n += 1
        group.churned += churned is not None
        renewal = row["renewal_date"]
        if renewal is not None and fired < renewal <= as_of:
            group.renewal_due += 1
            group.renewed += churned is None

    # Only accounts without usage by the firing day can still reach value
    # after it. NOTE: those still without usage by as_of are left out, as
    # in the trained/untrained comparison, so a trigger that changes whether
    # an account reaches value at all biases the difference in days.
    first_usage = row["first_usage"]
    if first_usage is not None and first_usage > fired:
        group.ttv_days.append((first_usage - row["signup_date"]).days)


def _metrics(treated: _GroupCounts, held_out: _GroupCounts) -> list[MetricComparison]:
    accounts = (treated.accounts, held_out.accounts)
    return [
        share_metric(
            "churn_rate",
            "Churn rate",
            events=(treated.churned, held_out.churned),
            subjects=(treated.churn_n, held_out.churn_n),
            accounts=accounts,
        ),
        share_metric(
            "renewal_rate",
            "Renewal rate",
            events=(treated.renewed, held_out.renewed),
            subjects=(treated.renewal_due, held_out.renewal_due),
            accounts=accounts,
        ),
        mean_metric(
            "time_to_value",
            "Time-to-value",
            "days",
            summaries=(treated.ttv_summary(), held_out.ttv_summary()),
            accounts=accounts,
        ),
    ]


def holdout_outcomes(
    trigger: Trigger, scope: Scope = EVERYTHING, as_of: date | None = None
) -> HoldoutOutcomes:
    """Compare churn, renewal and time-to-value of treated and held-out accounts.

    Plan, stage and segment of ``scope`` narrow the accounts, and its
    period keeps those first fired in it. ``as_of`` (default today in UTC)
    ends the follow-up. Runs two queries: the first firings per account,
    then the dates of the fired accounts.
    """
    started = clock.monotonic()
    as_of = as_of or utc_date(timezone.now())
    with timezone.override(UTC):
        fired = first_firing_days(trigger, scope, SubjectLevel.ACCOUNT, as_of)
        dates = _account_dates(list(fired), as_of)

    groups = {True: _GroupCounts(), False: _GroupCounts()}
    awaiting = 0
    for account, (day, is_treated) in fired.items():
        in_period = (scope.start is None or day >= scope.start) and (
            scope.end is None or day <= scope.end
        )
        if not in_period:
            continue
        if day >= as_of:
            awaiting += 1
            continue
        _count(groups[is_treated], dates[account], day, as_of)

    treated, held_out = groups[True], groups[False]
    logger.info(
        "Compared account outcomes of trigger %s as of %s: %s treated, "
        "%s held out, %s awaiting, in %.0f ms",
        trigger.pk,
        as_of,
        treated.accounts,
        held_out.accounts,
        awaiting,
        (clock.monotonic() - started) * 1000,
    )
    return HoldoutOutcomes(
        trigger=trigger,
        as_of=as_of,
        treated_accounts=treated.accounts,
        held_out_accounts=held_out.accounts,
        awaiting_follow_up=awaiting,
        metrics=_metrics(treated, held_out),
    )
