"""The learning progress measure that courses registers with the health registry."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from courses.health import COMPLETION_PART
from courses.models import Course, Enrollment, EnrollmentStatus
from customers.health import HealthPlan, WeightSet, registered_measures
from customers.models import HealthScore
from customers.services import compute_health_scores
from tests.factories import make_account, make_contact

pytestmark = pytest.mark.django_db

ON = date(2024, 6, 15)
WINDOW_END = datetime(2024, 6, 15, tzinfo=UTC)
BEFORE = datetime(2024, 3, 1, 9, tzinfo=UTC)
LEARNING_ONLY = HealthPlan(default=WeightSet("learning", {"learning": 1}))


def make_course(slug: str) -> Course:
    return Course.objects.create(slug=slug, title=slug.title())


def enroll(contact, course, **fields) -> Enrollment:
    defaults = {"source": "manual", "enrolled_at": BEFORE}
    defaults.update(fields)
    return Enrollment.objects.create(contact=contact, course=course, **defaults)


def test_learning_measure_registered():
    assert registered_measures()["learning"].label == "Learning progress"


def test_learning_value_matches_formula():
    account = make_account()
    first, second = make_contact(account), make_contact(account)
    courses = [make_course(f"course-{n}") for n in range(4)]
    done = BEFORE + timedelta(days=5)
    enroll(first, courses[0], status="completed", completed_at=done, score=80)
    enroll(first, courses[1], status="completed", completed_at=done, score=Decimal(60))
    enroll(second, courses[0], status="completed", completed_at=done)
    enroll(second, courses[1])
    # Completed only after the window: counted as enrolled, not completed.
    enroll(
        second,
        courses[2],
        status="completed",
        completed_at=WINDOW_END + timedelta(hours=1),
        score=100,
    )
    # Ended by its trigger: counted neither way.
    enroll(
        first,
        courses[3],
        status=EnrollmentStatus.UNENROLLED,
        ended_at=BEFORE + timedelta(days=1),
    )

    compute_health_scores(ON, LEARNING_ONLY)

    completion = 3 / 5
    average_score = (80 + 60) / 2
    expected = COMPLETION_PART * 100 * completion + (1 - COMPLETION_PART) * 70
    stored = HealthScore.objects.get(account=account, scored_on=ON)
    assert stored.score == round(expected)
    assert stored.measures["learning"]["enrollments"] == 5
    assert stored.measures["learning"]["completed"] == 3
    assert stored.measures["learning"]["average_score"] == average_score


def test_learning_without_scores_is_completion_share():
    account = make_account()
    contact = make_contact(account)
    enroll(contact, make_course("a"), status="completed", completed_at=BEFORE)
    enroll(contact, make_course("b"))
    enroll(contact, make_course("c"), status="withdrawn", ended_at=BEFORE)
    enroll(contact, make_course("d"))

    compute_health_scores(ON, LEARNING_ONLY)

    assert HealthScore.objects.get(account=account).score == 25


def test_learning_contributes_beside_usage():
    learner_account = make_account(seats=1)
    idle_account = make_account(seats=1)
    contact = make_contact(learner_account)
    enroll(contact, make_course("a"), status="completed", completed_at=BEFORE)
    weights = WeightSet("usage and learning", {"usage": 1, "learning": 3})

    compute_health_scores(ON, HealthPlan(default=weights))

    # No usage: 0 for usage, 100 for learning weighted 3 of 4.
    learner = HealthScore.objects.get(account=learner_account)
    assert learner.score == 75
    assert learner.measures["learning"]["points"] == 75
    # Without enrollments learning is left out and usage takes all the weight.
    idle = HealthScore.objects.get(account=idle_account)
    assert idle.score == 0
    assert idle.measures["learning"]["available"] is False
