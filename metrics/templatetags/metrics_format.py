"""Template filters that format estimates, intervals and p-values for the dashboard."""

from django import template

from metrics.engagement import CourseEngagement
from metrics.scores import score_bin_labels
from metrics.stats import ALPHA, MIN_EVENTS, MIN_SUBJECTS, Interval, Verdict

register = template.Library()

# An en dash marks a value that cannot be computed, as in printed tables.
MISSING = "\u2013"

VERDICT_TEXT = {
    Verdict.SIGNIFICANT: f"Difference at the {ALPHA:.0%} level",
    Verdict.NOT_SIGNIFICANT: f"No difference shown at the {ALPHA:.0%} level",
    Verdict.SMALL_SAMPLE: (
        f"Too few accounts for a verdict: each group needs {MIN_SUBJECTS} "
        f"accounts, and a share needs {MIN_EVENTS} accounts on each side"
    ),
    Verdict.NOT_TESTABLE: "No test possible: the values do not vary",
}


def _format(value: float, is_share: bool) -> str:
    if is_share:
        return f"{value * 100:.1f}%"
    return f"{value:.1f}"


@register.filter
def estimate(value: float | None, is_share: bool) -> str:
    """Format a share as a percentage and anything else with one decimal."""
    if value is None:
        return MISSING
    return _format(value, is_share)


@register.filter
def difference(value: float | None, is_share: bool) -> str:
    """Format a signed difference; a difference of shares is in percentage points."""
    if value is None:
        return MISSING
    if is_share:
        return f"{value * 100:+.1f} pp"
    return f"{value:+.1f}"


@register.filter
def interval(value: Interval | None, is_share: bool) -> str:
    if value is None:
        return ""
    return f"{_format(value.low, is_share)} to {_format(value.high, is_share)}"


@register.filter
def difference_interval(value: Interval | None, is_share: bool) -> str:
    if value is None:
        return ""
    if is_share:
        return f"{value.low * 100:+.1f} to {value.high * 100:+.1f} pp"
    return f"{value.low:+.1f} to {value.high:+.1f}"


@register.filter
def p_value(value: float | None) -> str:
    if value is None:
        return MISSING
    if value < 0.001:
        return "< 0.001"
    return f"{value:.3f}"


@register.filter
def bar_width(share: float | None) -> str:
    """Return a CSS width percentage with a dot decimal whatever the locale."""
    if share is None:
        return "0"
    return f"{min(max(share, 0.0), 1.0) * 100:.1f}"


@register.filter
def verdict_text(verdict: Verdict) -> str:
    return VERDICT_TEXT[Verdict(verdict)]


@register.filter
def score_table(course: CourseEngagement) -> list[tuple[str, int, int]]:
    """Return (bin label, lesson scores, course scores) rows of a course's histogram."""
    return list(
        zip(
            score_bin_labels(),
            course.lesson_scores.bins,
            course.course_scores.bins,
            strict=True,
        )
    )
