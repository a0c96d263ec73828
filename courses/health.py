"""The learning progress health measure, registered with customers' registry.

An account's learning progress counts every enrollment of its contacts made
before the end of the scored window, not only those of the window, because
a course completed last quarter still shows a trained team. Enrollments
that a trigger ended (unenrolled) count neither way.
"""

from typing import Any

from django.db.models import Avg, Count, F, Q

from courses.models import Enrollment, EnrollmentStatus
from customers.health import Measure, MeasureScope, Reading, register_measure

# Part of the value that the share of completed enrollments makes up; the
# rest is the average course score of the completions that have one. A
# score only grades those who finished, so completion weighs more.
COMPLETION_PART = 0.7


def learning_readings(scope: MeasureScope) -> dict[int, Reading]:
    """Give each account with an enrollment its completion share and average score."""
    completed_by_end = Q(completed_at__lt=scope.end)
    ended_by_trigger = Q(status=EnrollmentStatus.UNENROLLED, ended_at__lt=scope.end)
    rows = (
        scope.narrow(
            Enrollment.objects.filter(enrolled_at__lt=scope.end),
            "contact__account_id",
        )
        .exclude(ended_by_trigger)
        .values(account_id=F("contact__account_id"))
        .annotate(
            enrollments=Count("pk"),
            completed=Count("pk", filter=completed_by_end),
            average_score=Avg(
                "score", filter=completed_by_end & Q(score__isnull=False)
            ),
        )
        .order_by()
    )
    return {row["account_id"]: _reading(row) for row in rows}


def _reading(row: dict[str, Any]) -> Reading:
    completion = row["completed"] / row["enrollments"]
    average = row["average_score"]
    if average is None:
        value = 100 * completion
    else:
        score = min(100.0, max(0.0, float(average)))
        value = COMPLETION_PART * 100 * completion + (1 - COMPLETION_PART) * score
    return Reading(
        value,
        {
            "enrollments": row["enrollments"],
            "completed": row["completed"],
            "average_score": None if average is None else round(float(average), 2),
        },
    )


# TODO: count valid certificates too once courses issues them.
LEARNING = register_measure(
    Measure(
        key="learning",
        label="Learning progress",
        compute=learning_readings,
        description=(
            "Share of the contacts' enrollments completed (70%) and the average "
            "score of completed courses (30%)."
        ),
    )
)
