"""Chart specifications for the dashboard, drawn by static/metrics/charts.js.

Each chart is a plain dict that the page embeds as JSON: a kind (bar or
horizontal bar), category labels, datasets of numbers, the unit of the value
axis and, optionally, the index of one bar to highlight. The same figures are
in the table beside each chart and in its CSV download.
"""

from typing import Any

from metrics.changes import ChangeComparison, OutcomeChanges
from metrics.engagement import CourseEngagement
from metrics.impact import ImpactReport
from metrics.scores import score_bin_labels

Chart = dict[str, Any]


def _percent(value: float | None) -> float | None:
    return None if value is None else round(value * 100, 1)


def completion_chart(report: list[CourseEngagement]) -> Chart:
    return {
        "kind": "bar",
        "labels": [course.title for course in report],
        "datasets": [
            {
                "label": "Completion rate",
                "data": [_percent(course.completion.value) for course in report],
            }
        ],
        "unit": "%",
        "max": 100,
    }


def funnel_chart(course: CourseEngagement) -> Chart:
    """Return the share reaching each module, highlighting the largest drop-off."""
    highlight = next(
        (i for i, m in enumerate(course.modules) if m.is_largest_drop_off), None
    )
    return {
        "kind": "horizontal",
        "labels": [f"{module.order}. {module.title}" for module in course.modules],
        "datasets": [
            {
                "label": "Share of enrollments reaching the module",
                "data": [_percent(module.reached_share) for module in course.modules],
            }
        ],
        "unit": "%",
        "max": 100,
        "highlight": highlight,
    }


def score_chart(course: CourseEngagement) -> Chart:
    return {
        "kind": "bar",
        "labels": score_bin_labels(),
        "datasets": [
            {"label": "Lesson scores", "data": course.lesson_scores.bins},
            {"label": "Course scores", "data": course.course_scores.bins},
        ],
        "unit": "scores",
    }


def certificate_chart(report: list[CourseEngagement]) -> Chart:
    return {
        "kind": "bar",
        "labels": [course.title for course in report],
        "datasets": [
            {
                "label": "Certificates issued",
                "data": [course.certificates.issued for course in report],
            }
        ],
        "unit": "certificates",
    }


def engagement_charts(report: list[CourseEngagement]) -> dict[str, Chart]:
    """Return every engagement chart by the id of the canvas that draws it."""
    charts = {
        "completion": completion_chart(report),
        "certificates": certificate_chart(report),
    }
    for course in report:
        if course.modules:
            charts[f"funnel-{course.course_id}"] = funnel_chart(course)
        if course.lesson_scores.total or course.course_scores.total:
            charts[f"scores-{course.course_id}"] = score_chart(course)
    return charts


def _one_decimal(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


def impact_charts(report: ImpactReport) -> dict[str, Chart]:
    """Return the internal-impact charts by the id of the canvas that draws them."""
    saved = report.hours_saved
    onboarding = report.onboarding
    return {
        "impact-sessions": {
            "kind": "bar",
            "labels": ["Automated enrollments", "Their completions"],
            "datasets": [
                {
                    "label": "Manual sessions replaced",
                    "data": [saved.automated_enrollments, saved.automated_completions],
                }
            ],
            "unit": "sessions",
        },
        "impact-onboarding": {
            "kind": "bar",
            "labels": ["Began before the program", "Began on or after it"],
            "datasets": [
                {
                    "label": "Mean days to leave onboarding",
                    "data": [
                        _one_decimal(onboarding.before.mean.value),
                        _one_decimal(onboarding.after.mean.value),
                    ],
                }
            ],
            "unit": "days",
        },
        "impact-csm": {
            "kind": "horizontal",
            "labels": [load.name for load in report.accounts_per_csm],
            "datasets": [
                {
                    "label": "Accounts owned",
                    "data": [load.accounts for load in report.accounts_per_csm],
                }
            ],
            "unit": "accounts",
        },
    }


def _group_labels(report: OutcomeChanges) -> list[str]:
    return ["Treated", "Held out"] if report.is_causal else ["Trained", "Untrained"]


def _before_after_chart(
    metric: ChangeComparison, labels: list[str], as_percent: bool = False
) -> Chart:
    """Return the mean before and after of each group, in percent for a share."""
    groups = (metric.trained, metric.untrained)
    scale = _percent if as_percent else _one_decimal
    chart: Chart = {
        "kind": "bar",
        "labels": labels,
        "datasets": [
            {
                "label": "Before training",
                "data": [scale(group.mean_before) for group in groups],
            },
            {
                "label": "After training",
                "data": [scale(group.mean_after) for group in groups],
            },
        ],
        "unit": "%" if as_percent else metric.unit,
    }
    if as_percent:
        chart["max"] = 100
    return chart


def _topic_tickets_chart(report: OutcomeChanges, labels: list[str]) -> Chart:
    """Return the ticket totals of each covered topic and group, before and after.

    Each bar pairs a topic with a group, so before and after keep the two
    colours of the other change charts however many topics there are.
    """
    trained, untrained = labels
    rows = report.tickets_by_topic
    return {
        "kind": "horizontal",
        "labels": [
            f"{row.topic} ({group})" for row in rows for group in (trained, untrained)
        ],
        "datasets": [
            {
                "label": "Before training",
                "data": [
                    count
                    for row in rows
                    for count in (row.trained_before, row.untrained_before)
                ],
            },
            {
                "label": "After training",
                "data": [
                    count
                    for row in rows
                    for count in (row.trained_after, row.untrained_after)
                ],
            },
        ],
        "unit": "tickets",
    }


def change_charts(report: OutcomeChanges) -> dict[str, Chart]:
    """Return the before-and-after charts of the changes around training by canvas id.

    Expansion before and after is the share of accounts that expanded in
    each window, so its chart is in percent. Tickets by topic are drawn
    only when the cohort's courses have ticket topics.
    """
    labels = _group_labels(report)
    charts = {
        "changes-usage": _before_after_chart(report.usage, labels),
        "changes-health": _before_after_chart(report.health, labels),
        "changes-tickets": _before_after_chart(report.tickets, labels),
        "changes-expansion": _before_after_chart(
            report.expansion_change, labels, as_percent=True
        ),
    }
    if report.tickets_by_topic:
        charts["changes-tickets-topics"] = _topic_tickets_chart(report, labels)
    return charts
