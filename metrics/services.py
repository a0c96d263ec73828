"""Outcome comparisons and learning engagement for the manager dashboard.

Both reports aggregate in the database with a fixed number of queries,
whatever the number of accounts and enrollments. docs/metrics.md defines
every metric.
"""

import logging
import time as clock
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.db import connections
from django.db.models import (
    BooleanField,
    Case,
    Count,
    Exists,
    F,
    FloatField,
    Func,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Cast, Coalesce, Least, TruncDate
from django.utils import timezone

from courses.models import Course, Enrollment, EnrollmentStatus, Module
from customers.models import ChurnEvent, SupportTicket, UsageEvent
from customers.services import subjects_as_of, utc_date, utc_day_start
from metrics.stats import (
    Difference,
    Interval,
    ProportionEstimate,
    Summary,
    Verdict,
    difference_of_means,
    difference_of_proportions,
    estimate_mean,
    estimate_proportion,
)

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


@dataclass(frozen=True)
class ModuleFunnel:
    """How many enrollments of a course reached a module and how many stopped in it.

    ``reached`` counts completed enrollments plus those whose furthest lesson
    is in this module or a later one. ``stopped`` counts failed and withdrawn
    enrollments whose furthest lesson is in this module, and ``in_progress``
    counts active ones there.
    """

    module_id: int
    title: str
    order: int
    reached: int
    reached_share: float | None
    stopped: int
    in_progress: int


@dataclass(frozen=True)
class CourseEngagement:
    """Enrollment counts by status, the completion rate and the module funnel."""

    course_id: int
    title: str
    slug: str
    enrolled: int
    completed: int
    active: int
    failed: int
    withdrawn: int
    # Enrollments not completed and with no furthest lesson recorded.
    not_started: int
    completion: ProportionEstimate
    modules: list[ModuleFunnel]


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
    as_of: date, course: Course | None, as_of_given: bool
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
    first_usage = (
        UsageEvent.objects.filter(
            account=OuterRef("pk"),
            occurred_at__date__gte=OuterRef("signup_date"),
            occurred_at__lt=cutoff,
        )
        .order_by()
        .values("account")
        .annotate(day=Min(TruncDate("occurred_at")))
    )
    tickets = (
        SupportTicket.objects.filter(
            account=OuterRef("pk"),
            opened_at__date__gte=OuterRef("signup_date"),
            opened_at__date__lte=OuterRef("tenure_end"),
        )
        .order_by()
        .values("account")
        .annotate(count=Count("pk"))
    )
    churned_on_by_as_of = Case(When(churned_on__lte=as_of, then=F("churned_on")))

    return (
        subjects_as_of("account", utc_day_start(as_of))
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
            ttv_days=DaysBetween(Subquery(first_usage.values("day")), F("signup_date")),
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
    inner_sql, params = per_account.query.sql_with_params()

    # Only the ORM's own SQL is formatted in; every value stays a parameter.
    with connections[per_account.db].cursor() as cursor:
        cursor.execute(GROUP_TOTALS_SQL.format(per_account=inner_sql), params)
        rows = cursor.fetchall()

    empty = dict.fromkeys(GROUP_TOTAL_NAMES, 0)
    totals = {True: empty, False: dict(empty)}
    for trained, *values in rows:
        totals[bool(trained)] = dict(zip(GROUP_TOTAL_NAMES, values, strict=True))
    return totals


def _share_metric(
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


def _mean_metric(
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
    as_of: date | None = None, course: Course | None = None
) -> Comparison:
    """Compare churn, renewal, time-to-value and tickets of trained and untrained.

    An account is trained when one of its contacts completed a course (or
    ``course``) by the end of the UTC day ``as_of`` (default: today in UTC). This is an
    observational comparison: it shows association, not the effect of
    training. Runs one query.
    """
    started = clock.monotonic()
    as_of_given = as_of is not None
    as_of = as_of or utc_date(timezone.now())
    # Days are UTC calendar days throughout the customer record, so the
    # __date lookups and TruncDate compile in UTC whatever TIME_ZONE is.
    with timezone.override(UTC):
        accounts = _accounts_with_outcomes(as_of, course, as_of_given)
        totals = _group_totals(accounts, as_of)
    trained, untrained = totals[True], totals[False]
    pair_of_accounts = (trained["accounts"], untrained["accounts"])

    metrics = [
        _share_metric(
            "churn_rate",
            "Churn rate",
            events=(trained["churned_accounts"], untrained["churned_accounts"]),
            subjects=pair_of_accounts,
            accounts=pair_of_accounts,
        ),
        _share_metric(
            "renewal_rate",
            "Renewal rate",
            events=(trained["renewed"], untrained["renewed"]),
            subjects=(trained["renewal_due"], untrained["renewal_due"]),
            accounts=pair_of_accounts,
        ),
        _mean_metric(
            "time_to_value",
            "Time-to-value",
            "days",
            summaries=(_summary(trained, "ttv"), _summary(untrained, "ttv")),
            accounts=pair_of_accounts,
        ),
        _mean_metric(
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


def _module_funnel(
    modules: list[Mapping[str, Any]],
    counts: dict[tuple[int | None, str], int],
    enrolled: int,
) -> tuple[list[ModuleFunnel], int]:
    """Build a course's funnel from enrollment counts per (furthest module, status).

    Returns the funnel and the number of not-started enrollments: those not
    completed whose furthest lesson is missing or outside the course's modules.
    """
    completed = sum(
        count
        for (_, status), count in counts.items()
        if status == EnrollmentStatus.COMPLETED
    )
    module_ids = {module["pk"] for module in modules}
    not_started = sum(
        count
        for (module_id, status), count in counts.items()
        if status != EnrollmentStatus.COMPLETED and module_id not in module_ids
    )

    # Walk from the last module to the first, so that "reached" accumulates
    # every enrollment whose furthest lesson is in this module or a later one.
    funnel: list[ModuleFunnel] = []
    reached = completed
    for module in reversed(modules):
        stopped = counts.get((module["pk"], EnrollmentStatus.FAILED), 0) + counts.get(
            (module["pk"], EnrollmentStatus.WITHDRAWN), 0
        )
        in_progress = counts.get((module["pk"], EnrollmentStatus.ACTIVE), 0)
        reached += stopped + in_progress
        funnel.append(
            ModuleFunnel(
                module_id=module["pk"],
                title=module["title"],
                order=module["order"],
                reached=reached,
                reached_share=reached / enrolled if enrolled else None,
                stopped=stopped,
                in_progress=in_progress,
            )
        )
    funnel.reverse()
    return funnel, not_started


def learning_engagement(course: Course | None = None) -> list[CourseEngagement]:
    """Return the completion rate and module funnel of every course, or of ``course``.

    Runs three aggregate queries whatever the number of enrollments.
    """
    courses = (
        Course.objects.all() if course is None else Course.objects.filter(pk=course.pk)
    )
    enrollments = Enrollment.objects.filter(course__in=courses)

    course_rows = courses.annotate(
        enrolled=Count("enrollments"),
        **{
            status: Count("enrollments", filter=Q(enrollments__status=status))
            for status in EnrollmentStatus.values
        },
    ).values("pk", "title", "slug", "enrolled", *EnrollmentStatus.values)

    modules_by_course: dict[int, list[Mapping[str, Any]]] = defaultdict(list)
    for module in (
        Module.objects.filter(course__in=courses)
        .order_by("course", "order", "pk")
        .values("pk", "course_id", "title", "order")
    ):
        modules_by_course[module["course_id"]].append(module)

    counts_by_course: dict[int, dict[tuple[int | None, str], int]] = defaultdict(dict)
    for row in (
        enrollments.values("course_id", "furthest_lesson__module_id", "status")
        .annotate(count=Count("pk"))
        .order_by()
    ):
        key = (row["furthest_lesson__module_id"], row["status"])
        counts_by_course[row["course_id"]][key] = row["count"]

    report = []
    for row in course_rows.order_by("title", "pk"):
        funnel, not_started = _module_funnel(
            modules_by_course[row["pk"]], counts_by_course[row["pk"]], row["enrolled"]
        )
        report.append(
            CourseEngagement(
                course_id=row["pk"],
                title=row["title"],
                slug=row["slug"],
                enrolled=row["enrolled"],
                completed=row[EnrollmentStatus.COMPLETED],
                active=row[EnrollmentStatus.ACTIVE],
                failed=row[EnrollmentStatus.FAILED],
                withdrawn=row[EnrollmentStatus.WITHDRAWN],
                not_started=not_started,
                completion=estimate_proportion(
                    row[EnrollmentStatus.COMPLETED], row["enrolled"]
                ),
                modules=funnel,
            )
        )
    return report
