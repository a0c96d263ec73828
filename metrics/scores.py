"""Score histograms: course and lesson scores counted in bins of ten points.

The learning engagement report (metrics.engagement) shows them per course,
and the dashboard's facts (metrics.facts) store lesson scores per bin with
the same bins.
"""

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from django.db.models import Case, Count, F, IntegerField, Q, QuerySet, Sum, Value, When
from django.db.models.functions import Cast, Floor, Least

from courses.models import Course, Enrollment, LessonProgress
from metrics.models import LessonScoreFact
from metrics.scope import Scope

# Scores are percentages, counted in ten bins of ten points. The last bin
# also contains 100, so a perfect score is not a bin of its own.
SCORE_BIN_WIDTH = 10
SCORE_BINS = 10
# Scores outside 0-100 are counted apart from the bins, under this key.
OUT_OF_RANGE = -1


def score_bin_labels() -> list[str]:
    """Return the label of each score bin, such as "10-19.99" and "90-100"."""
    labels = []
    for index in range(SCORE_BINS):
        low = index * SCORE_BIN_WIDTH
        high = low + SCORE_BIN_WIDTH
        labels.append(f"{low}-{high}" if index == SCORE_BINS - 1 else f"{low}-<{high}")
    return labels


@dataclass(frozen=True)
class ScoreHistogram:
    """Counts of scores per bin of SCORE_BIN_WIDTH points, and those outside 0-100."""

    bins: list[int]
    out_of_range: int

    @property
    def total(self) -> int:
        return sum(self.bins)


EMPTY_HISTOGRAM = ScoreHistogram(bins=[0] * SCORE_BINS, out_of_range=0)


def stored_lesson_scores(
    courses: QuerySet[Course], scope: Scope
) -> dict[int, ScoreHistogram]:
    """Return what lesson_scores returns, from the refreshed counts per bin."""
    counts: dict[int, dict[int, int]] = defaultdict(dict)
    rows = (
        LessonScoreFact.objects.filter(
            scope.accounts("account__"),
            scope.in_period("enrolled_at"),
            course__in=courses,
        )
        .values("course_id", "score_bin")
        .annotate(count=Sum("scores"))
        .order_by()
    )
    for row in rows:
        counts[row["course_id"]][row["score_bin"]] = row["count"]
    return histograms_from_counts(counts)


def score_bin(score_field: str) -> Case:
    """Return the bin index of a 0-100 score, or OUT_OF_RANGE outside that range."""
    width = Value(Decimal(SCORE_BIN_WIDTH))
    return Case(
        When(
            Q(**{f"{score_field}__lt": 0}) | Q(**{f"{score_field}__gt": 100}),
            then=Value(OUT_OF_RANGE),
        ),
        default=Least(
            Cast(Floor(F(score_field) / width), IntegerField()),
            Value(SCORE_BINS - 1),
        ),
        output_field=IntegerField(),
    )


def histograms(rows: QuerySet[Any], course_field: str) -> dict[int, ScoreHistogram]:
    counts: dict[int, dict[int, int]] = defaultdict(dict)
    for row in rows.values(course_field, "bin").annotate(count=Count("pk")).order_by():
        counts[row[course_field]][row["bin"]] = row["count"]
    return histograms_from_counts(counts)


def histograms_from_counts(
    counts: Mapping[int, Mapping[int, int]],
) -> dict[int, ScoreHistogram]:
    return {
        course_id: ScoreHistogram(
            bins=[by_bin.get(index, 0) for index in range(SCORE_BINS)],
            out_of_range=by_bin.get(OUT_OF_RANGE, 0),
        )
        for course_id, by_bin in counts.items()
    }


def course_scores(courses: QuerySet[Course], scope: Scope) -> dict[int, ScoreHistogram]:
    scored = Enrollment.objects.filter(
        scope.enrollments(), course__in=courses, score__isnull=False
    ).annotate(bin=score_bin("score"))
    return histograms(scored, "course_id")


def lesson_scores(courses: QuerySet[Course], scope: Scope) -> dict[int, ScoreHistogram]:
    scored = LessonProgress.objects.filter(
        scope.enrollments("enrollment__"),
        enrollment__course__in=courses,
        score__isnull=False,
    ).annotate(bin=score_bin("score"))
    return histograms(scored, "enrollment__course_id")
