"""Lesson snapshots: version 1 is recorded, and versions list what changed."""

from datetime import timedelta

import pytest

from courses.models import CourseVersion, Lesson, LessonKind
from courses.services import complete_lesson
from courses.snapshots import compare_snapshots, take_snapshot
from courses.versions import publish_version, record_first_version, version_state
from tests.factories import NOW, make_contact
from tests.portal.helpers import enroll_contact, make_course
from tests.portal.test_admin import make_quiz_lesson, question_form_data

pytestmark = pytest.mark.django_db


def test_admin_lesson_save_records_first_version(admin_client):
    lesson = make_quiz_lesson()
    url = f"/admin/courses/lesson/{lesson.pk}/change/"

    response = admin_client.post(
        url, question_form_data(lesson, kind="single_choice", choice_lines="* A\nB")
    )

    assert response.status_code == 302
    first = CourseVersion.objects.get(course=lesson.module.course)
    assert first.number == 1
    assert first.published_by is None
    assert first.snapshot is not None
    [entry] = first.snapshot["lessons"]
    assert entry["id"] == lesson.pk
    assert entry["assessment"] is not None
    assert version_state(lesson.module.course).changed is False


def test_first_version_follows_edits_until_completion():
    course, lessons = make_course(1)
    assert record_first_version(course, at=NOW)
    lessons[0].body = "Second draft"
    lessons[0].save()

    assert record_first_version(course, at=NOW)
    assert version_state(course).changed is False

    enrollment = enroll_contact(make_contact(), course)
    complete_lesson(enrollment, lessons[0], at=NOW)
    lessons[0].body = "Third draft, after a learner completed the course"
    lessons[0].save()

    assert not record_first_version(course, at=NOW)
    assert CourseVersion.objects.filter(course=course).count() == 1
    assert version_state(course).changed is True


def test_first_version_skips_drafts_and_later_versions():
    draft, _lessons = make_course(1, published=False)
    course, lessons = make_course(1)
    Lesson.objects.create(module=lessons[0].module, title="Added", order=5)
    publish_version(course, requires_recertification=False, at=NOW)

    assert not record_first_version(draft)
    assert not record_first_version(course)
    assert not CourseVersion.objects.filter(course=draft).exists()
    assert list(CourseVersion.objects.values_list("number", flat=True)) == [2]


def test_changes_list_added_removed_changed():
    course, lessons = make_course(3)
    kept, edited, removed = lessons
    before = take_snapshot(course)
    edited.title = "Renamed"
    edited.kind = LessonKind.QUIZ
    edited.save()
    removed_id = removed.pk
    removed.delete()
    added = Lesson.objects.create(module=kept.module, title="Added", order=9)

    changes = compare_snapshots(before, take_snapshot(course))

    assert changes.rule_changed is False
    listed = [(item.lesson_id, item.parts) for item in changes.lessons]
    assert listed == [
        (edited.pk, ("title", "kind", "assessment")),
        (removed_id, ("removed",)),
        (added.pk, ("added",)),
    ]
    # A text lesson turned into a quiz has no pass to take back.
    assert changes.retakes == (changes.lessons[0],)


def test_publish_page_says_why_changes_are_unknown(admin_client):
    course, _lessons = make_course(1)
    CourseVersion.objects.create(
        course=course,
        number=1,
        fingerprint="0" * 64,
        lesson_count=1,
        published_at=NOW - timedelta(days=1),
    )

    page = admin_client.get(f"/admin/courses/course/{course.pk}/publish-version/")

    text = page.content.decode()
    assert "Version 1 was recorded before lesson snapshots were kept" in text
    assert "Changes since version" not in text
