"""Module activity, the largest drop-off, score histograms and the report's scope."""

from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from courses.models import Certificate, EnrollmentStatus, LessonProgress
from customers.models import Plan
from lifecycle.models import AccountStage, Stage
from metrics.facts import refresh_facts
from metrics.scope import Scope
from metrics.services import learning_engagement
from tests.factories import make_account, make_contact
from tests.metrics.builders import lessons_by_module, make_course, make_enrollment

pytestmark = pytest.mark.django_db

SCORE_EDGES = np.arange(0, 101, 10)


@dataclass
class PlantedProgress:
    """One progress row: which module and lesson, its views and seconds."""

    learner: int
    module: int
    lesson: int
    views: int
    seconds: int = 0


PROGRESS = [
    PlantedProgress(learner=0, module=0, lesson=0, views=1),
    PlantedProgress(learner=0, module=0, lesson=1, views=3, seconds=600),
    PlantedProgress(learner=1, module=0, lesson=0, views=2, seconds=120),
    PlantedProgress(learner=1, module=1, lesson=0, views=1),
    PlantedProgress(learner=2, module=1, lesson=0, views=0, seconds=300),
    PlantedProgress(learner=3, module=1, lesson=0, views=5),
]


def plant_progress(course, enrollments, planted):
    modules = lessons_by_module(course)
    for row in planted:
        LessonProgress.objects.create(
            enrollment=enrollments[row.learner],
            lesson=modules[row.module][row.lesson],
            started_at=datetime(2023, 1, 2, tzinfo=UTC),
            views=row.views,
            time_spent_seconds=row.seconds,
        )


@pytest.mark.parametrize("precomputed", [False, True])
def test_module_activity_counts_views_and_time(precomputed):
    course = make_course((2, 1))
    enrollments = [make_enrollment(make_contact(), course) for _ in range(4)]
    plant_progress(course, enrollments, PROGRESS)
    if precomputed:
        refresh_facts()

    (report,) = learning_engagement(course, precomputed=precomputed)

    for index, module in enumerate(report.modules):
        rows = [row for row in PROGRESS if row.module == index]
        activity = module.activity
        timed = {row.learner for row in rows if row.seconds}
        assert activity.viewers == len({r.learner for r in rows if r.views}), index
        assert activity.views == sum(row.views for row in rows), index
        assert activity.repeat_views == sum(max(r.views - 1, 0) for r in rows), index
        assert activity.repeat_viewers == len(
            {row.learner for row in rows if row.views > 1}
        ), index
        assert activity.timed_learners == len(timed), index
        assert activity.mean_minutes == pytest.approx(
            sum(row.seconds for row in rows) / len(timed) / 60
        ), index
    assert report.time_recorded


def test_module_without_time_has_no_mean():
    course = make_course((1,))
    enrollment = make_enrollment(make_contact(), course)
    plant_progress(course, [enrollment], [PlantedProgress(0, 0, 0, views=2)])

    (report,) = learning_engagement(course)

    assert report.modules[0].activity.mean_minutes is None
    assert not report.time_recorded


def stop_in(course, module_index, count, status=EnrollmentStatus.WITHDRAWN):
    lesson = lessons_by_module(course)[module_index][-1]
    for _ in range(count):
        make_enrollment(make_contact(), course, status, furthest_lesson=lesson)


def test_long_module_with_most_stops_is_flagged():
    course = make_course((1, 6, 1))
    stop_in(course, 0, 2)
    stop_in(course, 1, 7)
    stop_in(course, 1, 1, status=EnrollmentStatus.FAILED)
    stop_in(course, 2, 1)

    (report,) = learning_engagement(course)

    flagged = [module.order for module in report.modules if module.is_largest_drop_off]
    assert flagged == [2]
    assert report.stopped == 2 + 8 + 1
    assert report.largest_drop_off_share == pytest.approx(8 / 11)


def test_drop_off_tie_flags_earliest_module():
    course = make_course((1, 1, 1))
    stop_in(course, 1, 3)
    stop_in(course, 2, 3)

    (report,) = learning_engagement(course)

    assert [m.is_largest_drop_off for m in report.modules] == [False, True, False]


def test_no_drop_off_flags_nothing():
    course = make_course((1, 1))
    make_enrollment(make_contact(), course, EnrollmentStatus.COMPLETED)

    (report,) = learning_engagement(course)

    assert report.largest_drop_off is None
    assert report.largest_drop_off_share is None


COURSE_SCORES = ["0", "9.99", "10", "55.5", "89.99", "90", "100", "100.01", "-1"]
LESSON_SCORES = ["0", "20", "20", "35", "99.5", "100"]


def expected_bins(scores: list[str]) -> list[int]:
    # numpy's last bin includes its right edge, as the report's does.
    values = [float(s) for s in scores if 0 <= Decimal(s) <= 100]
    counts, _ = np.histogram(values, bins=SCORE_EDGES)
    return [int(count) for count in counts]


@pytest.mark.parametrize("precomputed", [False, True])
def test_score_histograms_match_numpy(precomputed):
    course = make_course((2,))
    lessons = lessons_by_module(course)[0]
    for score in COURSE_SCORES:
        make_enrollment(make_contact(), course, score=Decimal(score))
    make_enrollment(make_contact(), course)
    for index, score in enumerate(LESSON_SCORES):
        LessonProgress.objects.create(
            enrollment=make_enrollment(make_contact(), course),
            lesson=lessons[index % 2],
            started_at=datetime(2023, 1, 2, tzinfo=UTC),
            score=Decimal(score),
        )

    if precomputed:
        refresh_facts()

    (report,) = learning_engagement(course, precomputed=precomputed)

    assert report.course_scores.bins == expected_bins(COURSE_SCORES)
    assert report.course_scores.out_of_range == 2
    assert report.lesson_scores.bins == expected_bins(LESSON_SCORES)
    assert report.lesson_scores.out_of_range == 0


@dataclass
class PlantedEnrollment:
    plan: str
    stage: str | None
    enrolled_on: date
    completed: bool


SCOPED = [
    PlantedEnrollment(Plan.PRO, "onboarding", date(2024, 3, 1), True),
    PlantedEnrollment(Plan.PRO, "adoption", date(2024, 3, 31), False),
    PlantedEnrollment(Plan.BASIC, "onboarding", date(2024, 4, 1), True),
    PlantedEnrollment(Plan.BASIC, None, date(2024, 2, 29), True),
    PlantedEnrollment(Plan.ENTERPRISE, "adoption", date(2024, 3, 15), True),
    PlantedEnrollment(Plan.PRO, "onboarding", date(2024, 1, 10), False),
]


def plant_scoped(course):
    stages = {stage.slug: stage for stage in Stage.objects.all()}
    for planted in SCOPED:
        account = make_account(plan=planted.plan)
        if planted.stage:
            AccountStage.objects.create(
                account=account,
                stage=stages[planted.stage],
                entered_at=datetime(2024, 1, 1, tzinfo=UTC),
            )
        status = EnrollmentStatus.ACTIVE
        if planted.completed:
            status = EnrollmentStatus.COMPLETED
        # A minute before the day ends, to catch an end bound that drops the day.
        day = planted.enrolled_on
        enrolled_at = datetime(day.year, day.month, day.day, 23, 59, tzinfo=UTC)
        make_enrollment(make_contact(account), course, status, enrolled_at=enrolled_at)


@pytest.mark.parametrize(
    "scope",
    [
        Scope(plan=Plan.PRO),
        Scope(stage="onboarding"),
        Scope(start=date(2024, 3, 1), end=date(2024, 3, 31)),
        Scope(start=date(2024, 3, 1)),
        Scope(end=date(2024, 2, 29)),
        Scope(plan=Plan.PRO, stage="onboarding", start=date(2024, 2, 1)),
    ],
)
def test_scope_selects_enrollments(scope):
    course = make_course((1,))
    plant_scoped(course)
    selected = [
        planted
        for planted in SCOPED
        if (not scope.plan or planted.plan == scope.plan)
        and (not scope.stage or planted.stage == scope.stage)
        and (scope.start is None or planted.enrolled_on >= scope.start)
        and (scope.end is None or planted.enrolled_on <= scope.end)
    ]

    (report,) = learning_engagement(course, scope)

    assert report.enrolled == len(selected)
    assert report.completed == sum(planted.completed for planted in selected)


def test_scope_rejects_reversed_period():
    with pytest.raises(ValueError, match="after its end"):
        Scope(start=date(2024, 2, 1), end=date(2024, 1, 1))


def test_activity_and_scores_query_count_constant():
    course = make_course((2, 1))
    enrollments = [make_enrollment(make_contact(), course) for _ in range(4)]
    plant_progress(course, enrollments, PROGRESS)
    with CaptureQueriesContext(connection) as few:
        learning_engagement(scope=Scope(plan=Plan.BASIC, stage="onboarding"))

    for _ in range(3):
        more = make_course((2, 1))
        learners = [
            make_enrollment(make_contact(), more, score=Decimal(40)) for _ in range(4)
        ]
        plant_progress(more, learners, PROGRESS)
    with CaptureQueriesContext(connection) as many:
        learning_engagement(scope=Scope(plan=Plan.BASIC, stage="onboarding"))

    assert len(many) == len(few)


@dataclass
class PlantedCertificate:
    issued_on: date
    revoked: bool = False
    expires_on: date | None = None


CERTIFICATES = [
    PlantedCertificate(date(2024, 3, 1)),
    PlantedCertificate(date(2024, 3, 10), revoked=True),
    PlantedCertificate(date(2024, 3, 20), expires_on=date(2024, 4, 1)),
    PlantedCertificate(date(2024, 3, 31), expires_on=date(2999, 1, 1)),
    PlantedCertificate(date(2024, 2, 28), expires_on=date(2024, 4, 1)),
    PlantedCertificate(date(2024, 4, 1)),
]


@pytest.mark.parametrize(
    "scope", [Scope(), Scope(start=date(2024, 3, 1), end=date(2024, 3, 31))]
)
def test_certificates_counted_by_issue_day(scope):
    course = make_course((1,))
    make_course((1,))
    for index, planted in enumerate(CERTIFICATES):
        enrollment = make_enrollment(make_contact(), course, EnrollmentStatus.COMPLETED)
        Certificate.objects.create(
            enrollment=enrollment,
            code=f"code{index}",
            learner_name="Learner",
            course_title=course.title,
            issued_at=datetime(*planted.issued_on.timetuple()[:3], 9, tzinfo=UTC),
            revoked_at=datetime(2024, 5, 1, tzinfo=UTC) if planted.revoked else None,
            expires_at=(
                datetime(*planted.expires_on.timetuple()[:3], tzinfo=UTC)
                if planted.expires_on
                else None
            ),
        )
    selected = [
        planted
        for planted in CERTIFICATES
        if (scope.start is None or planted.issued_on >= scope.start)
        and (scope.end is None or planted.issued_on <= scope.end)
    ]
    today = datetime.now(UTC).date()

    report = {item.course_id: item for item in learning_engagement(scope=scope)}

    counts = report[course.pk].certificates
    assert counts.issued == len(selected)
    assert counts.revoked == sum(planted.revoked for planted in selected)
    assert counts.expired == sum(
        not planted.revoked
        and planted.expires_on is not None
        and planted.expires_on <= today
        for planted in selected
    )
    assert sum(item.certificates.issued for item in report.values()) == len(selected)
