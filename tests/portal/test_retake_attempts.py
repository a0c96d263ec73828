"""The lesson page explains a retake after a course version changed an exam.

The attempt count covers only the attempts since the change, and the table
lists the earlier attempts apart, so the two always agree.
"""

import re
from datetime import timedelta

import pytest
from django.test import Client

from courses.assessments import assessment_state
from courses.models import Lesson, LessonKind
from courses.versions import publish_version
from tests.factories import make_contact
from tests.portal.helpers import lesson_url, sign_in, staff_client
from tests.portal.test_version_retakes import (
    AFTER,
    PUBLISHED,
    change_a_question,
    completed_learner,
    exam_course,
    first_version,
    take,
)

pytestmark = pytest.mark.django_db

# PUBLISHED is 2024-07-15 in UTC, the site's default zone, and en-us
# DATE_FORMAT is "N j, Y".
CHANGE_DATE = "July 15, 2024"


def recertifying_learner(contact, *, add_lesson=False, kind=LessonKind.EXAM):
    """A learner who passed at NOW a quiz or exam of two attempts that then changed."""
    course, exam = exam_course(kind, max_attempts=2)
    first_version(course)
    enrollment = completed_learner(course, exam, contact)
    if add_lesson:
        # Left to do after the retake, so recertification stays due.
        Lesson.objects.create(module=exam.module, title="Audit logs", order=9)
    change_a_question(exam)
    publish_version(course, requires_recertification=True, at=PUBLISHED)
    enrollment.refresh_from_db()
    return course, exam, enrollment


def lesson_page(contact, course, lesson):
    return sign_in(Client(), contact).get(lesson_url(course, lesson)).content.decode()


def listed_attempts(page, group):
    """Return the attempt numbers in one row group of the attempts table."""
    match = re.search(rf'<tbody class="{group}">(.*?)</tbody>', page, re.S)
    if match is None:
        return []
    return re.findall(r'<tr class="attempt">.*?Attempt (\d+)<', match.group(1), re.S)


def test_notice_says_exam_must_be_passed_again():
    contact = make_contact()
    course, exam, enrollment = recertifying_learner(contact)
    take(enrollment, exam, AFTER, correct=False)

    page = lesson_page(contact, course, exam)

    assert f"This course changed on {CHANGE_DATE}" in page
    assert "so you must pass this exam again" in page
    assert "your earlier pass does not count" in page


def test_notice_says_quiz_must_be_submitted_again():
    contact = make_contact()
    course, quiz, _enrollment = recertifying_learner(contact, kind=LessonKind.QUIZ)

    page = lesson_page(contact, course, quiz)

    assert f"This course changed on {CHANGE_DATE}" in page
    assert "so you must submit this quiz again" in page
    assert "your earlier submission does not count" in page
    assert "Attempts: 0 of 2 used since the change" in page


def test_count_and_table_agree_after_change():
    contact = make_contact()
    course, exam, enrollment = recertifying_learner(contact)
    take(enrollment, exam, AFTER, correct=False)

    page = lesson_page(contact, course, exam)

    # Attempt 1 passed the old exam; attempt 2 failed the changed one.
    assert "Attempts: 1 of 2 used since the change" in page
    assert listed_attempts(page, "attempts-counted") == ["2"]
    assert listed_attempts(page, "attempts-before-change") == ["1"]
    assert f"Before the change on {CHANGE_DATE}" in page


def test_notice_before_any_retake():
    contact = make_contact()
    course, exam, _enrollment = recertifying_learner(contact)

    page = lesson_page(contact, course, exam)

    assert "Attempts: 0 of 2 used since the change" in page
    assert listed_attempts(page, "attempts-counted") == []
    assert listed_attempts(page, "attempts-before-change") == ["1"]
    assert "so you must pass this exam again" in page


def test_notice_after_passing_retake():
    contact = make_contact()
    course, exam, enrollment = recertifying_learner(contact, add_lesson=True)
    take(enrollment, exam, AFTER)
    enrollment.refresh_from_db()
    assert enrollment.recertification_version is not None

    page = lesson_page(contact, course, exam)

    assert "you have passed this exam again since" in page
    assert "so you must pass this exam again" not in page
    assert "You passed this exam." in page
    assert listed_attempts(page, "attempts-counted") == ["2"]
    assert listed_attempts(page, "attempts-before-change") == ["1"]


def test_no_notice_without_recertification():
    contact = make_contact()
    course, exam = exam_course(max_attempts=2)
    enrollment = completed_learner(course, exam, contact)

    page = lesson_page(contact, course, exam)

    assert "retake-notice" not in page
    assert "This course changed" not in page
    assert "Attempts: 1 of 2 used</li>" in page
    assert listed_attempts(page, "attempts-counted") == ["1"]
    assert 'class="attempts-before-change"' not in page
    assert enrollment.recertification_version is None


def test_state_lists_earlier_attempts_apart():
    contact = make_contact()
    _course, exam, enrollment = recertifying_learner(contact)
    retake = take(enrollment, exam, AFTER, correct=False)

    state = assessment_state(enrollment, exam, at=AFTER + timedelta(hours=1))

    groups = [
        (group.before_change, [attempt.pk for attempt in group.attempts])
        for group in state.attempt_groups
    ]
    earlier_pk = next(a.pk for a in state.attempts if a.pk != retake.pk)
    assert groups == [(False, [retake.pk]), (True, [earlier_pk])]
    assert state.retake_met is False
    assert state.counts.used == 1


def test_preview_shows_retake_as_portal():
    contact = make_contact()
    course, exam, enrollment = recertifying_learner(contact)
    take(enrollment, exam, AFTER, correct=False)
    client, user = staff_client("view_course")
    contact.account.owner = user
    contact.account.save(update_fields=["owner"])

    url = f"/admin/courses/course/preview/{course.slug}/lessons/{exam.pk}/"
    page = client.get(f"{url}?contact={contact.pk}").content.decode()

    assert "so you must pass this exam again" in page
    assert "Attempts: 1 of 2 used since the change" in page
    assert listed_attempts(page, "attempts-counted") == ["2"]
    assert listed_attempts(page, "attempts-before-change") == ["1"]
