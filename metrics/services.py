"""Outcome comparisons and learning engagement for the manager dashboard.

Every report aggregates in the database with a fixed number of queries,
whatever the number of accounts and enrollments. docs/metrics.md defines
every metric. This module is the app's public interface, so it re-exports
the engagement report, which lives in metrics.engagement.
"""

import logging
import time as clock
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import (
    BooleanField,
    Case,
    Exists,
    F,
    FilteredRelation,
    FloatField,
    Func,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Least
from django.utils import timezone

from courses.models import Course, Enrollment, EnrollmentStatus
from customers.models import ChurnEvent
from customers.services import subjects_as_of, utc_date, utc_day_start
from metrics.engagement import (
    CourseEngagement,
    ModuleActivity,
    ModuleFunnel,
    learning_engagement,
)
from metrics.models import AccountDay, FactRefresh
from metrics.scope import EVERYTHING, Scope
from metrics.scores import ScoreHistogram, score_bin_labels
from metrics.stats import (
    Difference,
    Interval,
    Summary,
    Verdict,
    difference_of_means,
    difference_of_proportions,
    estimate_mean,
    estimate_proportion,
)

__all__ = [
    "EVERYTHING",
    "Comparison",
    "CourseEngagement",
    "ModuleActivity",
    "ModuleFunnel",
    "Scope",
    "ScoreHistogram",
    "learning_engagement",
    "outcome_comparison",
    "score_bin_labels",
]

logger = logging.getLogger(__name__)

# Support-ticket rates are per this many days of tenure, and accounts with a
# shorter tenure are left out: one ticket in a week would read as four a month.
TICKET_RATE_DAYS = 30


class DaysBetween(Func):
    """Whole days from the second date expression to the first."""

    output_field = IntegerField()
    arity = 2

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any):
        # date - date is an integer number of days in PostgreSQL.
        return self.as_sql(
            compiler, connection, template="(%(expressions)s)", arg_joiner=" - "
        )

    def as_sqlite(self, compiler: Any, connection: Any, **extra_context: Any):
        return self.as_sql(
            compiler,
            connection,
            template="CAST(julianday(%(expressions)s) AS INTEGER)",
            arg_joiner=") - julianday(",
        )


@dataclass(frozen=True)
class GroupResult:
    """One group's value of a metric.

    ``n`` counts the accounts the metric is measured on and ``excluded`` the
    accounts of the group left out of it (such as accounts with no usage for
    time-to-value). ``events`` is set for shares only.
    """

    n: int
    estimate: float | None
    interval: Interval | None
    excluded: int
    events: int | None = None


@dataclass(frozen=True)
class MetricComparison:
    """One outcome metric, trained minus untrained."""

    key: str
    label: str
    unit: str
    is_share: bool
    trained: GroupResult
    untrained: GroupResult
    difference: Difference

    @property
    def verdict(self) -> Verdict:
        return self.difference.verdict


@dataclass(frozen=True)
class Comparison:
    """Trained against untrained accounts as of a date, optionally for one course."""

    as_of: date
    course: Course | None
    trained_accounts: int
    untrained_accounts: int
    metrics: list[MetricComparison]


def _completions(cutoff: datetime, course: Course | None, as_of_given: bool) -> Q:
    completed_before = Q(completed_at__lt=cutoff)
    if not as_of_given:
        # An enrollment marked completed without a completion time is
        # completed now, but it cannot be placed at an earlier date.
        completed_before |= Q(completed_at__isnull=True)
    completions = Q(status=EnrollmentStatus.COMPLETED) & completed_before
    if course is not None:
        completions &= Q(course=course)
    return completions


def _accounts_with_outcomes(
    as_of: date, course: Course | None, as_of_given: bool, scope: Scope
) -> QuerySet[Any]:
    """Annotate each account that existed on ``as_of`` with its group and outcomes.

    Every value is read as of the end of that UTC day: later completions,
    churn, usage and tickets are ignored.
    """
    cutoff = utc_day_start(as_of + timedelta(days=1))
    completed = Enrollment.objects.filter(
        _completions(cutoff, course, as_of_given), contact__account=OuterRef("pk")
    )
    churn_events = ChurnEvent.objects.filter(
        account=OuterRef("pk"), churned_on__lte=as_of
    )
    first_churn_event = (
        churn_events.order_by().values("account").annotate(day=Min("churned_on"))
    )
    # The per-account roll-up has a row for every day with a usage event
    # or a ticket of the account. The first row with usage is one index
    # seek; grouping for a minimum would read every day of the account.
    first_usage = AccountDay.objects.filter(
        account=OuterRef("pk"),
        usage_events__gt=0,
        day__gte=OuterRef("signup_date"),
        day__lte=as_of,
    ).order_by("day")
    tickets = (
        AccountDay.objects.filter(
            account=OuterRef("pk"),
            tickets__gt=0,
            day__gte=OuterRef("signup_date"),
            day__lte=OuterRef("tenure_end"),
        )
        .order_by()
        .values("account")
        .annotate(count=Sum("tickets"))
    )
    churned_on_by_as_of = Case(When(churned_on__lte=as_of, then=F("churned_on")))

    return (
        subjects_as_of("account", utc_day_start(as_of))
        .filter(scope.accounts())
        .annotate(
            trained=Exists(completed),
            # A CASE, not a bare OR, so that a NULL churned_on reads as
            # False instead of NULL when the flag is compared below.
            churned=Case(
                When(Q(churned_on__lte=as_of) | Exists(churn_events), then=True),
                default=False,
                output_field=BooleanField(),
            ),
            # Tenure ends at the first churn on or before as_of, else at as_of.
            tenure_end=Least(
                Coalesce(churned_on_by_as_of, Value(as_of)),
                Coalesce(Subquery(first_churn_event.values("day")), Value(as_of)),
            ),
            tenure_days=DaysBetween(F("tenure_end"), F("signup_date")),
            ttv_days=DaysBetween(
                Subquery(first_usage.values("day")[:1]), F("signup_date")
            ),
            ticket_count=Coalesce(Subquery(tickets.values("count")), 0),
        )
        .annotate(
            ticket_rate=Case(
                When(
                    tenure_days__gte=TICKET_RATE_DAYS,
                    then=Cast("ticket_count", FloatField())
                    * TICKET_RATE_DAYS
                    / Cast("tenure_days", FloatField()),
                ),
                output_field=FloatField(),
            )
        )
    )


def _accounts_from_facts(
    as_of: date, course: Course | None, as_of_given: bool, scope: Scope
) -> QuerySet[Any]:
    """Annotate the same columns as _accounts_with_outcomes from the stored facts.

    The facts are dates, so each flag is a comparison with ``as_of`` on one
    joined row per account instead of a search of enrollments, churn events
    and usage days. Only the tickets over the tenure still read AccountDay,
    because the tenure ends on a day that depends on ``as_of``.
    """
    cutoff = utc_day_start(as_of + timedelta(days=1))
    accounts = subjects_as_of("account", utc_day_start(as_of)).filter(scope.accounts())
    if course is None:
        accounts = accounts.annotate(
            completed_at=F("dashboard_fact__first_completed_at"),
            undated=F("dashboard_fact__has_undated_completion"),
        )
    else:
        accounts = accounts.annotate(
            done=FilteredRelation(
                "course_completion_facts",
                condition=Q(course_completion_facts__course=course),
            ),
            completed_at=F("done__first_completed_at"),
            undated=F("done__has_undated_completion"),
        )
    trained = Q(completed_at__lt=cutoff)
    if not as_of_given:
        # As in _completions: an undated completion counts only for today.
        trained |= Q(undated=True)
    churned_on_by_as_of = Case(When(churned_on__lte=as_of, then=F("churned_on")))
    churn_event_by_as_of = Case(
        When(
            dashboard_fact__first_churn_event_day__lte=as_of,
            then=F("dashboard_fact__first_churn_event_day"),
        )
    )
    first_usage_by_as_of = Case(
        When(
            dashboard_fact__first_usage_day__lte=as_of,
            then=F("dashboard_fact__first_usage_day"),
        )
    )
    return accounts.annotate(
        trained=Case(
            When(trained, then=True), default=False, output_field=BooleanField()
        ),
        churned=Case(
            When(
                Q(churned_on__lte=as_of)
                | Q(dashboard_fact__first_churn_event_day__lte=as_of),
                then=True,
            ),
            default=False,
            output_field=BooleanField(),
        ),
        tenure_end=Least(
            Coalesce(churned_on_by_as_of, Value(as_of)),
            Coalesce(churn_event_by_as_of, Value(as_of)),
        ),
        tenure_days=DaysBetween(F("tenure_end"), F("signup_date")),
        ttv_days=DaysBetween(first_usage_by_as_of, F("signup_date")),
        ticket_count=Coalesce(Subquery(_tenure_tickets().values("count")), 0),
    ).annotate(ticket_rate=_ticket_rate())


def _tenure_tickets() -> QuerySet[Any]:
    return (
        AccountDay.objects.filter(
            account=OuterRef("pk"),
            tickets__gt=0,
            day__gte=OuterRef("signup_date"),
            day__lte=OuterRef("tenure_end"),
        )
        .order_by()
        .values("account")
        .annotate(count=Sum("tickets"))
    )


def _ticket_rate() -> Case:
    return Case(
        When(
            tenure_days__gte=TICKET_RATE_DAYS,
            then=Cast("ticket_count", FloatField())
            * TICKET_RATE_DAYS
            / Cast("tenure_days", FloatField()),
        ),
        output_field=FloatField(),
    )


# Aggregates over the per-account rows, one output column each. The inner
# query's columns are referenced by name, so every correlated subquery runs
# once per account. Aggregating the annotations directly with the ORM would
# copy each subquery into every aggregate that uses it, which multiplies both
# the work and the plan that PostgreSQL has to JIT-compile.
GROUP_TOTALS_SQL = """
SELECT
    per_account.trained,
    COUNT(*),
    SUM(CASE WHEN per_account.churned THEN 1 ELSE 0 END),
    SUM(CASE WHEN per_account.renewal_due THEN 1 ELSE 0 END),
    SUM(CASE WHEN per_account.renewal_due AND NOT per_account.churned
        THEN 1 ELSE 0 END),
    COUNT(per_account.ttv_days),
    SUM(per_account.ttv_days),
    SUM(per_account.ttv_days * per_account.ttv_days),
    COUNT(per_account.ticket_rate),
    SUM(per_account.ticket_rate),
    SUM(per_account.ticket_rate * per_account.ticket_rate)
FROM ({per_account}) AS per_account
GROUP BY per_account.trained
"""

GROUP_TOTAL_NAMES = (
    "accounts",
    "churned_accounts",
    "renewal_due",
    "renewed",
    "ttv_n",
    "ttv_sum",
    "ttv_sum_of_squares",
    "tickets_n",
    "tickets_sum",
    "tickets_sum_of_squares",
)


def _group_totals(accounts: QuerySet[Any], as_of: date) -> dict[bool, dict]:
    """Aggregate the outcome columns per group in one query."""
    per_account = accounts.annotate(
        renewal_due=Case(
            When(renewal_date__lte=as_of, then=True),
            default=False,
            output_field=BooleanField(),
        )
    ).values("trained", "churned", "renewal_due", "ttv_days", "ticket_rate")
    # The groups do not depend on the accounts' order, so skip its sort.
    per_account = per_account.order_by()
    inner_sql, params = per_account.query.sql_with_params()
    database = connections[per_account.db]
    if database.vendor == "postgresql":
        # PostgreSQL would pull the inner query up into the outer one and
        # copy the ticket subquery into each aggregate that reads the rate,
        # four runs per account. OFFSET 0 keeps the inner query apart.
        inner_sql = f"{inner_sql} OFFSET 0"

    # Only the ORM's own SQL is formatted in; every value stays a parameter.
    with database.cursor() as cursor:
        cursor.execute(GROUP_TOTALS_SQL.format(per_account=inner_sql), params)
        rows = cursor.fetchall()

    empty = dict.fromkeys(GROUP_TOTAL_NAMES, 0)
    totals = {True: empty, False: dict(empty)}
    for trained, *values in rows:
        totals[bool(trained)] = dict(zip(GROUP_TOTAL_NAMES, values, strict=True))
    return totals


def share_metric(
    key: str,
    label: str,
    events: tuple[int, int],
    subjects: tuple[int, int],
    accounts: tuple[int, int],
) -> MetricComparison:
    """Build a share metric from (trained, untrained) pairs of counts."""
    groups = []
    for group_events, group_subjects, group_accounts in zip(
        events, subjects, accounts, strict=True
    ):
        estimate = estimate_proportion(group_events, group_subjects)
        groups.append(
            GroupResult(
                n=group_subjects,
                estimate=estimate.value,
                interval=estimate.interval,
                excluded=group_accounts - group_subjects,
                events=group_events,
            )
        )
    return MetricComparison(
        key=key,
        label=label,
        unit="share",
        is_share=True,
        trained=groups[0],
        untrained=groups[1],
        difference=difference_of_proportions(
            events[0], subjects[0], events[1], subjects[1]
        ),
    )


def mean_metric(
    key: str,
    label: str,
    unit: str,
    summaries: tuple[Summary, Summary],
    accounts: tuple[int, int],
) -> MetricComparison:
    groups = []
    for summary, group_accounts in zip(summaries, accounts, strict=True):
        estimate = estimate_mean(summary)
        groups.append(
            GroupResult(
                n=summary.n,
                estimate=estimate.value,
                interval=estimate.interval,
                excluded=group_accounts - summary.n,
            )
        )
    return MetricComparison(
        key=key,
        label=label,
        unit=unit,
        is_share=False,
        trained=groups[0],
        untrained=groups[1],
        difference=difference_of_means(*summaries),
    )


def _summary(totals: dict, prefix: str) -> Summary:
    n = totals[f"{prefix}_n"]
    if n == 0:
        return Summary(n=0, mean=None, sd=None)
    return Summary.from_sums(
        n,
        float(totals[f"{prefix}_sum"]),
        float(totals[f"{prefix}_sum_of_squares"]),
    )


def outcome_comparison(
    as_of: date | None = None,
    course: Course | None = None,
    scope: Scope = EVERYTHING,
    precomputed: bool | None = None,
) -> Comparison:
    """Compare churn, renewal, time-to-value and tickets of trained and untrained.

    An account is trained when one of its contacts completed a course (or
    ``course``) by the end of the UTC day ``as_of`` (default: today in UTC). This is an
    observational comparison: it shows association, not the effect of
    training. Only accounts with the plan and current stage of ``scope``
    count; its period is ignored, because ``as_of`` places the comparison.
    With ``precomputed`` (by default, once the facts were refreshed) it
    reads metrics.facts' rows, as of their last refresh; without, it reads
    the source tables. Runs one query, and one more to look up the last
    refresh when ``precomputed`` is None.
    """
    started = clock.monotonic()
    as_of_given = as_of is not None
    as_of = as_of or utc_date(timezone.now())
    if precomputed is None:
        precomputed = FactRefresh.last() is not None
    build = _accounts_from_facts if precomputed else _accounts_with_outcomes
    # Days are UTC calendar days throughout the customer record, so the
    # __date lookups compile in UTC whatever TIME_ZONE is.
    with timezone.override(UTC):
        accounts = build(as_of, course, as_of_given, scope)
        totals = _group_totals(accounts, as_of)
    trained, untrained = totals[True], totals[False]
    pair_of_accounts = (trained["accounts"], untrained["accounts"])

    metrics = [
        share_metric(
            "churn_rate",
            "Churn rate",
            events=(trained["churned_accounts"], untrained["churned_accounts"]),
            subjects=pair_of_accounts,
            accounts=pair_of_accounts,
        ),
        share_metric(
            "renewal_rate",
            "Renewal rate",
            events=(trained["renewed"], untrained["renewed"]),
            subjects=(trained["renewal_due"], untrained["renewal_due"]),
            accounts=pair_of_accounts,
        ),
        mean_metric(
            "time_to_value",
            "Time-to-value",
            "days",
            summaries=(_summary(trained, "ttv"), _summary(untrained, "ttv")),
            accounts=pair_of_accounts,
        ),
        mean_metric(
            "ticket_rate",
            "Support tickets",
            f"per {TICKET_RATE_DAYS} days",
            summaries=(_summary(trained, "tickets"), _summary(untrained, "tickets")),
            accounts=pair_of_accounts,
        ),
    ]
    logger.info(
        "Compared outcomes as of %s (course=%s): %s trained, %s untrained in %.0f ms",
        as_of,
        course.pk if course else None,
        trained["accounts"],
        untrained["accounts"],
        (clock.monotonic() - started) * 1000,
    )
    return Comparison(
        as_of=as_of,
        course=course,
        trained_accounts=trained["accounts"],
        untrained_accounts=untrained["accounts"],
        metrics=metrics,
    )
