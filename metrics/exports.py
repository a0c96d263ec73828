"""CSV tables of the dashboard reports, for downloads and emailed reports.

Each table is a header and a function that yields its rows from a report.
Shares are fractions (0.25, not 25%) and a missing value is a blank cell.
"""

import csv
import io
from collections.abc import Iterable

from metrics.changes import ChangeComparison, OutcomeChanges
from metrics.holdout_outcomes import HoldoutOutcomes
from metrics.holdouts import HoldoutComparison
from metrics.impact import ImpactReport
from metrics.scores import SCORE_BIN_WIDTH
from metrics.services import (
    Comparison,
    CourseEngagement,
    MetricComparison,
    score_bin_labels,
)
from metrics.stats import Interval


def spreadsheet_safe(text: str) -> str:
    """Prefix text a spreadsheet would run as a formula, such as a title "=1+1"."""
    if text and text[0] in "=+-@\t\r":
        return "'" + text
    return text


def bounds(interval: Interval | None) -> list[float | str]:
    if interval is None:
        return ["", ""]
    return [interval.low, interval.high]


def blank_if_none(value: float | None) -> float | str:
    return "" if value is None else value


OUTCOME_HEADER = [
    "as_of",
    "course_id",
    "metric",
    "unit",
    "trained_n",
    "trained_excluded",
    "trained_estimate",
    "trained_ci_low",
    "trained_ci_high",
    "untrained_n",
    "untrained_excluded",
    "untrained_estimate",
    "untrained_ci_low",
    "untrained_ci_high",
    "difference",
    "difference_ci_low",
    "difference_ci_high",
    "interval_method",
    "test",
    "p_value",
    "verdict",
]


def _metric_columns(metric: MetricComparison) -> list:
    """Return a metric's columns after the leading ones, both groups in turn."""
    difference = metric.difference
    return [
        metric.key,
        metric.unit,
        metric.trained.n,
        metric.trained.excluded,
        blank_if_none(metric.trained.estimate),
        *bounds(metric.trained.interval),
        metric.untrained.n,
        metric.untrained.excluded,
        blank_if_none(metric.untrained.estimate),
        *bounds(metric.untrained.interval),
        blank_if_none(difference.estimate),
        *bounds(difference.interval),
        difference.interval_method,
        difference.test,
        blank_if_none(difference.p_value),
        metric.verdict.value,
    ]


def outcome_rows(comparison: Comparison) -> Iterable[list]:
    course_id = comparison.course.pk if comparison.course else ""
    for metric in comparison.metrics:
        yield [comparison.as_of.isoformat(), course_id, *_metric_columns(metric)]


HOLDOUT_OUTCOME_HEADER = [
    "as_of",
    "holdout_trigger_id",
    "metric",
    "unit",
    *(
        f"{group}_{column}"
        for group in ("treated", "held_out")
        for column in ("n", "excluded", "estimate", "ci_low", "ci_high")
    ),
    "difference",
    "difference_ci_low",
    "difference_ci_high",
    "interval_method",
    "test",
    "p_value",
    "verdict",
]


def holdout_outcome_rows(report: HoldoutOutcomes) -> Iterable[list]:
    """Yield one row per metric, treated against held out."""
    for metric in report.metrics:
        yield [report.as_of.isoformat(), report.trigger.pk, *_metric_columns(metric)]


CHANGES_HEADER = [
    "as_of",
    "rule",
    "course_id",
    "path_id",
    "holdout_trigger_id",
    "metric",
    "unit",
    *(
        f"{group}_{column}"
        for group in ("trained", "untrained")
        for column in (
            "n",
            "left_out",
            "before",
            "after",
            "estimate",
            "ci_low",
            "ci_high",
        )
    ),
    "difference",
    "difference_ci_low",
    "difference_ci_high",
    "interval_method",
    "test",
    "p_value",
    "verdict",
]


def _change_columns(metric: ChangeComparison) -> list:
    columns: list = []
    for group in (metric.trained, metric.untrained):
        columns += [
            group.n,
            group.left_out,
            blank_if_none(group.mean_before),
            blank_if_none(group.mean_after),
            blank_if_none(group.change.value),
            *bounds(group.change.interval),
        ]
    difference = metric.difference
    return [
        metric.key,
        metric.unit,
        *columns,
        blank_if_none(difference.estimate),
        *bounds(difference.interval),
        difference.interval_method,
        difference.test,
        blank_if_none(difference.p_value),
        metric.verdict.value,
    ]


def change_rows(report: OutcomeChanges) -> Iterable[list]:
    """Yield the changes around training, the expansion share and tickets by topic.

    With a holdout trigger, ``trained`` columns hold the treated and
    ``untrained`` columns the held out.

    For a change, ``estimate`` is the mean change and ``before`` and
    ``after`` are the mean values; for ``expansion_change`` those values
    are shares of accounts. For ``expansion``, ``estimate`` is the share
    and ``before`` and ``after`` are blank. For a topic, ``before`` and
    ``after`` are ticket totals and the other columns are blank.
    """
    cohort = report.cohort
    first = [
        report.as_of.isoformat(),
        cohort.rule.value,
        cohort.course.pk if cohort.course else "",
        cohort.path.pk if cohort.path else "",
        report.control.pk if report.control else "",
    ]
    changes = (report.usage, report.health, report.tickets, report.expansion_change)
    for metric in changes:
        yield [*first, *_change_columns(metric)]

    expansion = report.expansion
    share_columns: list = []
    for group in (expansion.trained, expansion.untrained):
        share_columns += [
            group.n,
            group.excluded,
            "",
            "",
            blank_if_none(group.estimate),
            *bounds(group.interval),
        ]
    yield [
        *first,
        expansion.key,
        expansion.unit,
        *share_columns,
        blank_if_none(expansion.difference.estimate),
        *bounds(expansion.difference.interval),
        expansion.difference.interval_method,
        expansion.difference.test,
        blank_if_none(expansion.difference.p_value),
        expansion.verdict.value,
    ]

    for topic in report.tickets_by_topic:
        blank_group = ["", ""]
        # The prefix also keeps a topic such as "=cmd" from reading as a formula.
        yield [
            *first,
            f"topic_tickets:{topic.topic}",
            "tickets",
            *blank_group,
            topic.trained_before,
            topic.trained_after,
            "",
            "",
            "",
            *blank_group,
            topic.untrained_before,
            topic.untrained_after,
            *([""] * 10),
        ]


ENGAGEMENT_HEADER = [
    "course_id",
    "course",
    "enrolled",
    "completed",
    "active",
    "failed",
    "withdrawn",
    "not_started",
    "completion_rate",
    "completion_ci_low",
    "completion_ci_high",
    "certificates_issued",
    "certificates_revoked",
    "certificates_expired",
    "module_order",
    "module",
    "reached",
    "reached_share",
    "stopped",
    "in_progress",
    "largest_drop_off",
    "viewers",
    "views",
    "repeat_views",
    "repeat_viewers",
    "learners_with_time",
    "mean_minutes",
]

# The module columns of a course without modules, all blank.
NO_MODULE_COLUMNS = [""] * 13


def engagement_rows(report: list[CourseEngagement]) -> Iterable[list]:
    """Yield one row per module, repeating the course columns on each.

    A course without modules gets one row with the module columns blank.
    """
    for course in report:
        course_columns = [
            course.course_id,
            spreadsheet_safe(course.title),
            course.enrolled,
            course.completed,
            course.active,
            course.failed,
            course.withdrawn,
            course.not_started,
            blank_if_none(course.completion.value),
            *bounds(course.completion.interval),
            course.certificates.issued,
            course.certificates.revoked,
            course.certificates.expired,
        ]
        if not course.modules:
            yield [*course_columns, *NO_MODULE_COLUMNS]
        for module in course.modules:
            activity = module.activity
            yield [
                *course_columns,
                module.order,
                spreadsheet_safe(module.title),
                module.reached,
                blank_if_none(module.reached_share),
                module.stopped,
                module.in_progress,
                module.is_largest_drop_off,
                activity.viewers,
                activity.views,
                activity.repeat_views,
                activity.repeat_viewers,
                activity.timed_learners,
                blank_if_none(activity.mean_minutes),
            ]


SCORES_HEADER = [
    "course_id",
    "course",
    "source",
    "bin",
    "low",
    "high",
    "count",
]


def score_rows(report: list[CourseEngagement]) -> Iterable[list]:
    """Yield one row per course, score source and bin, then one for out-of-range.

    ``source`` is ``course`` for Enrollment.score and ``lesson`` for scores of
    quizzes and exams. ``high`` is excluded from the bin except in the last
    bin, which ends at 100 included. The out-of-range row has bin
    ``outside_0_100`` and blank bounds.
    """
    labels = score_bin_labels()
    for course in report:
        for source, histogram in (
            ("course", course.course_scores),
            ("lesson", course.lesson_scores),
        ):
            title = spreadsheet_safe(course.title)
            for index, count in enumerate(histogram.bins):
                low = index * SCORE_BIN_WIDTH
                yield [
                    course.course_id,
                    title,
                    source,
                    labels[index],
                    low,
                    low + SCORE_BIN_WIDTH,
                    count,
                ]
            yield [
                course.course_id,
                title,
                source,
                "outside_0_100",
                "",
                "",
                histogram.out_of_range,
            ]


HOLDOUT_HEADER = [
    "trigger_id",
    "trigger",
    "subject_type",
    "holdout_percent",
    "awaiting_follow_up",
    "metric",
    "treated_n",
    "treated_events",
    "treated_share",
    "treated_ci_low",
    "treated_ci_high",
    "control_n",
    "control_events",
    "control_share",
    "control_ci_low",
    "control_ci_high",
    "difference",
    "difference_ci_low",
    "difference_ci_high",
    "test",
    "p_value",
    "verdict",
]


def holdout_rows(report: list[HoldoutComparison]) -> Iterable[list]:
    for comparison in report:
        for metric in comparison.metrics:
            difference = metric.difference
            yield [
                comparison.trigger_id,
                spreadsheet_safe(comparison.slug),
                comparison.subject_type,
                comparison.holdout_percent,
                comparison.awaiting_follow_up,
                metric.key,
                metric.treated.n,
                metric.treated.events,
                blank_if_none(metric.treated.value),
                *bounds(metric.treated.interval),
                metric.control.n,
                metric.control.events,
                blank_if_none(metric.control.value),
                *bounds(metric.control.interval),
                blank_if_none(difference.estimate),
                *bounds(difference.interval),
                difference.test,
                blank_if_none(difference.p_value),
                metric.verdict.value,
            ]


def csv_text(header: list[str], rows: Iterable[list]) -> str:
    """Return the table as CSV text, as a download or an email attachment has it."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue()


IMPACT_HEADER = ["section", "key", "label", "value", "n", "ci_low", "ci_high"]


def _value_row(section: str, key: object, label: str, value: object) -> list:
    """Return an impact row with no n and no interval."""
    return [section, key, label, value, "", "", ""]


def _hours_rows(report: ImpactReport) -> Iterable[list]:
    saved = report.hours_saved
    figures = [
        ("minutes_per_session", "Minutes per session", saved.minutes_per_session),
        ("automated_enrollments", "Automated enrollments", saved.automated_enrollments),
        (
            "automated_completions",
            "Completions of automated enrollments",
            saved.automated_completions,
        ),
        ("sessions", "Manual sessions replaced", saved.sessions),
        ("hours", "CSM hours saved", saved.hours),
    ]
    for key, label, value in figures:
        yield _value_row("hours_saved", key, label, value)


def _onboarding_rows(report: ImpactReport) -> Iterable[list]:
    onboarding = report.onboarding
    section = "onboarding"
    started = onboarding.program_started_on
    yield _value_row(
        section,
        "program_started_on",
        "Program start",
        started.isoformat() if started else "",
    )
    for key, label, group in (
        ("before", "Began before the program", onboarding.before),
        ("after", "Began on or after the program start", onboarding.after),
    ):
        yield [
            section,
            f"{key}_mean_days",
            f"{label}: mean days to leave onboarding",
            blank_if_none(group.mean.value),
            group.mean.n,
            *bounds(group.mean.interval),
        ]
        yield _value_row(
            section,
            f"{key}_still_onboarding",
            f"{label}: still onboarding",
            group.still_onboarding,
        )
    difference = onboarding.difference
    yield [
        section,
        "difference_days",
        "After minus before, days",
        blank_if_none(difference.estimate),
        "",
        *bounds(difference.interval),
    ]
    yield _value_row(
        section,
        "p_value",
        f"p-value ({difference.test})",
        blank_if_none(difference.p_value),
    )


def impact_rows(report: ImpactReport) -> Iterable[list]:
    """Yield the hours saved, the onboarding comparison, then one row per CSM.

    A CSM row has the owner's user id as ``key`` (``none`` for accounts with
    no owner), the CSM's name as ``label`` and the accounts as ``value``.
    """
    yield from _hours_rows(report)
    yield from _onboarding_rows(report)
    for load in report.accounts_per_csm:
        key = "none" if load.owner_id is None else load.owner_id
        yield _value_row(
            "accounts_per_csm", key, spreadsheet_safe(load.name), load.accounts
        )
