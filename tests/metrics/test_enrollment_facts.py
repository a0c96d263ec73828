"""The per-enrollment facts and the engagement counts read from them."""

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest

from courses.models import Enrollment, EnrollmentStatus
from lifecycle.models import AccountStage, Stage
from metrics.engagement import learning_engagement
from metrics.facts import refresh_facts
from metrics.models import EnrollmentFact
from metrics.scope import Scope
from metrics.scores import OUT_OF_RANGE
from tests.factories import make_account, make_contact
from tests.metrics.builders import lessons_by_module, make_course, make_enrollment

pytestmark = pytest.mark.django_db


@pytest.fixture
def scored_enrollments():
    """Enrollments with every status, furthest lessons and scores, some out of range."""
    rng = np.random.default_rng(41)
    courses = [make_course((2, 1, 2)), make_course((1, 1))]
    stages = list(Stage.objects.all())
    for index in range(60):
        account = make_account(plan=str(rng.choice(["basic", "pro"])))
        if index % 4:
            AccountStage.objects.create(
                account=account,
                stage=stages[index % len(stages)],
                entered_at=datetime(2024, 1, 1, tzinfo=UTC),
            )
        course = courses[index % 2]
        lessons = [lesson for module in lessons_by_module(course) for lesson in module]
        day = date(2024, 1, 1) + timedelta(days=int(rng.integers(0, 90)))
        score = None
        if rng.random() < 0.7:
            score = Decimal(str(round(float(rng.uniform(-10, 110)), 2)))
        furthest = None
        if rng.random() < 0.8:
            furthest = lessons[int(rng.integers(0, len(lessons)))]
        make_enrollment(
            make_contact(account),
            course,
            str(rng.choice(EnrollmentStatus.values)),
            furthest_lesson=furthest,
            score=score,
            enrolled_at=datetime(day.year, day.month, day.day, 23, 30, tzinfo=UTC),
        )
    return courses


def _bin(score: Decimal | None) -> int | None:
    """Bin a score as docs/metrics.md defines it: ten points each, 100 in the last."""
    if score is None:
        return None
    if score < 0 or score > 100:
        return OUT_OF_RANGE
    return min(math.floor(score / 10), 9)


def test_enrollment_facts_copy_enrollments(scored_enrollments):
    refresh_facts()

    facts = {fact.enrollment_id: fact for fact in EnrollmentFact.objects.all()}
    enrollments = Enrollment.objects.select_related("contact", "furthest_lesson").all()
    assert len(facts) == len(enrollments)
    assert {fact.score_bin for fact in facts.values()} >= {None, OUT_OF_RANGE, 9}
    for enrollment in enrollments:
        fact = facts[enrollment.pk]
        furthest = enrollment.furthest_lesson
        assert fact.course_id == enrollment.course_id
        assert fact.account_id == enrollment.contact.account_id
        assert fact.enrolled_at == enrollment.enrolled_at
        assert fact.status == enrollment.status
        assert fact.furthest_module_id == (furthest.module_id if furthest else None)
        assert fact.score_bin == _bin(enrollment.score)


@pytest.mark.parametrize(
    "scope",
    [
        Scope(),
        Scope(plan="pro"),
        Scope(stage="onboarding"),
        Scope(start=date(2024, 2, 1), end=date(2024, 2, 29)),
    ],
    ids=["everything", "plan", "stage", "period"],
)
def test_stored_enrollment_counts_equal_live(scored_enrollments, scope):
    refresh_facts()

    for course in (None, scored_enrollments[0]):
        live = learning_engagement(course, scope, precomputed=False)
        stored = learning_engagement(course, scope, precomputed=True)
        assert stored == live
        assert sum(report.enrolled for report in live) > 0
