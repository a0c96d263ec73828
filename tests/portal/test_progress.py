"""Progress services: views, completion, progress figures and the course outline."""

import time
from datetime import timedelta

import pytest

from courses import services
from courses.models import EnrollmentStatus, LessonProgress
from courses.services import (
    LessonState,
    Progress,
    complete_lesson,
    course_outline,
    enrollment_progress,
    enrollments_for,
    record_lesson_view,
    safe_next_path,
)
from tests.factories import NOW, make_contact
from tests.portal.helpers import enroll_contact, make_course, run_at_once

pytestmark = pytest.mark.django_db


def test_record_view_counts_views():
    course, lessons = make_course(2)
    enrollment = enroll_contact(make_contact(), course)

    record_lesson_view(enrollment, lessons[0], at=NOW)
    progress = record_lesson_view(enrollment, lessons[0], at=NOW + timedelta(hours=1))

    assert progress.views == 2
    assert progress.started_at == NOW
    assert progress.completed_at is None
    enrollment.refresh_from_db()
    assert enrollment.started_at == NOW
    assert LessonProgress.objects.count() == 1


def test_furthest_lesson_never_moves_back():
    course, lessons = make_course(2, 2)
    # The second module is shown first, so lessons[0] is further than lessons[2].
    lessons[0].module.order = 2
    lessons[0].module.save()
    lessons[2].module.order = 1
    lessons[2].module.save()
    enrollment = enroll_contact(make_contact(), course)

    record_lesson_view(enrollment, lessons[0], at=NOW)
    record_lesson_view(enrollment, lessons[3], at=NOW + timedelta(minutes=1))

    enrollment.refresh_from_db()
    assert enrollment.furthest_lesson == lessons[0]


def test_furthest_lesson_moves_forward():
    course, lessons = make_course(1, 1)
    enrollment = enroll_contact(make_contact(), course)

    record_lesson_view(enrollment, lessons[0], at=NOW)
    record_lesson_view(enrollment, lessons[1], at=NOW + timedelta(minutes=1))

    enrollment.refresh_from_db()
    assert enrollment.furthest_lesson == lessons[1]


def test_complete_twice_changes_nothing():
    course, lessons = make_course(1)
    enrollment = enroll_contact(make_contact(), course)

    complete_lesson(enrollment, lessons[0], at=NOW)
    updated = complete_lesson(enrollment, lessons[0], at=NOW + timedelta(days=1))

    assert LessonProgress.objects.count() == 1
    assert LessonProgress.objects.get().completed_at == NOW
    assert updated.completed_at == NOW
    assert updated.status == EnrollmentStatus.COMPLETED


def test_complete_after_view_keeps_start():
    course, lessons = make_course(2)
    enrollment = enroll_contact(make_contact(), course)

    record_lesson_view(enrollment, lessons[0], at=NOW)
    complete_lesson(enrollment, lessons[0], at=NOW + timedelta(minutes=5))

    progress = LessonProgress.objects.get()
    assert progress.started_at == NOW
    assert progress.completed_at == NOW + timedelta(minutes=5)
    assert progress.views == 1


def test_complete_without_view_starts_enrollment():
    course, lessons = make_course(2)
    enrollment = enroll_contact(make_contact(), course)

    updated = complete_lesson(enrollment, lessons[1], at=NOW)

    assert updated.started_at == NOW
    assert updated.furthest_lesson_id == lessons[1].pk
    assert updated.status == EnrollmentStatus.ACTIVE


def test_enrollment_completes_after_required_lessons():
    course, lessons = make_course(2, 1, optional=(1,))
    enrollment = enroll_contact(make_contact(), course)

    after_first = complete_lesson(enrollment, lessons[0], at=NOW)
    assert after_first.status == EnrollmentStatus.ACTIVE
    assert after_first.completed_at is None

    after_last = complete_lesson(enrollment, lessons[2], at=NOW + timedelta(days=2))
    assert after_last.status == EnrollmentStatus.COMPLETED
    assert after_last.completed_at == NOW + timedelta(days=2)


def test_withdrawn_enrollment_is_not_completed():
    course, lessons = make_course(1)
    enrollment = enroll_contact(make_contact(), course)
    enrollment.status = EnrollmentStatus.WITHDRAWN
    enrollment.save()

    updated = complete_lesson(enrollment, lessons[0], at=NOW)

    assert updated.status == EnrollmentStatus.WITHDRAWN
    assert updated.completed_at is None
    assert LessonProgress.objects.get().completed_at == NOW


def test_lesson_of_other_course_rejected():
    course, _lessons = make_course(1)
    _other, other_lessons = make_course(1)
    enrollment = enroll_contact(make_contact(), course)

    with pytest.raises(ValueError, match=f"Lesson {other_lessons[0].pk} belongs"):
        complete_lesson(enrollment, other_lessons[0])
    with pytest.raises(ValueError, match="pass a lesson of the enrolled course"):
        record_lesson_view(enrollment, other_lessons[0])
    assert LessonProgress.objects.count() == 0


def test_progress_counts_required_lessons():
    contact = make_contact()
    course_a, lessons_a = make_course(3, 1, optional=(3,))
    course_b, lessons_b = make_course(2)
    course_c, lessons_c = make_course(1)
    enrollment_a = enroll_contact(contact, course_a)
    enrollment_b = enroll_contact(contact, course_b)
    enrollment_c = enroll_contact(contact, course_c)
    complete_lesson(enrollment_a, lessons_a[0])
    complete_lesson(enrollment_a, lessons_a[3])  # optional, so it does not count
    record_lesson_view(enrollment_a, lessons_a[1])
    complete_lesson(enrollment_b, lessons_b[0])
    complete_lesson(enrollment_b, lessons_b[1])

    progress = enrollment_progress([enrollment_a, enrollment_b, enrollment_c])

    # Course A: 3 required lessons, 1 completed, and lessons_a[1] is the
    # first one not completed. Course B: both lessons done. Course C: none.
    assert progress[enrollment_a.pk] == Progress(1, 3, 33, lessons_a[1].pk)
    assert progress[enrollment_b.pk] == Progress(2, 2, 100, None)
    assert progress[enrollment_c.pk] == Progress(0, 1, 0, lessons_c[0].pk)


def test_progress_of_course_without_lessons():
    course, _lessons = make_course()
    enrollment = enroll_contact(make_contact(), course)

    assert enrollment_progress([enrollment]) == {enrollment.pk: Progress(0, 0, 0, None)}


def test_progress_ignores_other_learners():
    course, lessons = make_course(2)
    mine = enroll_contact(make_contact(), course)
    theirs = enroll_contact(make_contact(), course)
    complete_lesson(theirs, lessons[0])

    assert enrollment_progress([mine])[mine.pk] == Progress(0, 2, 0, lessons[0].pk)


def test_next_lesson_follows_course_order():
    course, lessons = make_course(1, 1)
    lessons[0].module.order = 5
    lessons[0].module.save()
    enrollment = enroll_contact(make_contact(), course)

    progress = enrollment_progress([enrollment])

    assert progress[enrollment.pk].next_lesson_id == lessons[1].pk


@pytest.mark.parametrize("enrollment_total", [2, 10])
def test_progress_uses_three_queries(django_assert_num_queries, enrollment_total):
    contact = make_contact()
    for _ in range(enrollment_total):
        course, lessons = make_course(2, 2)
        complete_lesson(enroll_contact(contact, course), lessons[0])
    enrollments = list(enrollments_for(contact))

    with django_assert_num_queries(3):
        progress = enrollment_progress(enrollments)

    assert len(progress) == enrollment_total


def test_progress_of_no_enrollments(django_assert_num_queries):
    with django_assert_num_queries(0):
        assert enrollment_progress([]) == {}


def test_enrollments_for_skips_unpublished():
    contact = make_contact()
    published, _lessons = make_course(1)
    hidden, _hidden_lessons = make_course(1, published=False)
    visible = enroll_contact(contact, published)
    enroll_contact(contact, hidden)
    enroll_contact(make_contact(), published)

    assert list(enrollments_for(contact)) == [visible]


def test_course_outline_orders_and_states():
    course, lessons = make_course(2, 1)
    enrollment = enroll_contact(make_contact(), course)
    record_lesson_view(enrollment, lessons[1])
    complete_lesson(enrollment, lessons[2])

    outline = course_outline(enrollment)

    assert [len(entry.lessons) for entry in outline] == [2, 1]
    assert [item.lesson for entry in outline for item in entry.lessons] == lessons
    assert [item.state for entry in outline for item in entry.lessons] == [
        LessonState.NOT_STARTED,
        LessonState.IN_PROGRESS,
        LessonState.COMPLETED,
    ]


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("/learn/courses/intro/", "/learn/courses/intro/"),
        ("/learn/?a=1#top", "/learn/?a=1#top"),
        ("", "/learn/"),
        (None, "/learn/"),
        ("https://evil.example/", "/learn/"),
        ("//evil.example", "/learn/"),
        ("/\\evil.example", "/learn/"),
        ("/\n/evil.example", "/learn/"),
        ("learn/", "/learn/"),
    ],
)
def test_safe_next_path(value, expected):
    assert safe_next_path(value) == expected


def run_in_threads(*targets):
    """Run the targets at the same moment, each in its own thread and connection."""
    assert run_at_once(*targets) == []


# The threads need committed rows, so these tests commit. serialized_rollback
# restores the rows that data migrations seed once the test flushes the tables.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_completions_create_one_row():
    course, lessons = make_course(2)
    enrollment = enroll_contact(make_contact(), course)

    run_in_threads(*[lambda: complete_lesson(enrollment, lessons[0])] * 4)

    assert LessonProgress.objects.filter(lesson=lessons[0]).count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_last_lessons_complete_enrollment(monkeypatch):
    course, lessons = make_course(2)
    enrollment = enroll_contact(make_contact(), course)
    # With the last lesson viewed, completing either lesson leaves the
    # enrollment row itself unchanged until the completion check.
    record_lesson_view(enrollment, lessons[1])
    # Holding each transaction open for a second before the completion check makes both
    # writers overlap, so without the enrollment row lock neither would read
    # the other's progress row and the enrollment would stay active.
    check = services._lessons_left_by_rule

    def slow_check(locked_enrollment):
        time.sleep(1)
        return check(locked_enrollment)

    monkeypatch.setattr(services, "_lessons_left_by_rule", slow_check)

    run_in_threads(
        lambda: complete_lesson(enrollment, lessons[0]),
        lambda: complete_lesson(enrollment, lessons[1]),
    )

    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert LessonProgress.objects.filter(completed_at__isnull=False).count() == 2
