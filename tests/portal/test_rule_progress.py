"""Progress figures and the Resume target follow the course's completion rule.

Expected values come from the rules: the required lessons rule counts
required lessons, the all lessons rule every lesson, and the exam rule only
exams. A learner due for recertification has not met a quiz or exam that
they must pass again.
"""

import pytest
from django.test import Client

from courses.models import CompletionRule, Lesson, LessonKind
from courses.services import (
    Progress,
    complete_lesson,
    enrollment_progress,
    record_lesson_view,
)
from courses.versions import publish_version
from tests.factories import NOW, make_contact
from tests.portal.helpers import (
    enroll_contact,
    lesson_url,
    make_course,
    sign_in,
    staff_client,
)
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


def exam_rule_course():
    """A course of a text lesson, then an exam, completed by passing the exam."""
    course, exam = exam_course()
    course.completion_rule = CompletionRule.PASS_EXAM
    course.save()
    text_lesson = Lesson.objects.get(module__course=course, kind=LessonKind.TEXT)
    return course, text_lesson, exam


def course_page(contact, course):
    client = sign_in(Client(), contact)
    return client.get(f"/learn/courses/{course.slug}/").content.decode()


def resume_button(course, lesson):
    return f'<a class="button" href="{lesson_url(course, lesson)}">'


def test_exam_rule_counts_exams_only():
    course, text_lesson, exam = exam_rule_course()
    enrollment = enroll_contact(make_contact(), course)
    complete_lesson(enrollment, text_lesson, at=NOW)

    progress = enrollment_progress([enrollment])[enrollment.pk]

    # One exam, not passed: the completed text lesson is not a requirement.
    assert progress == Progress(0, 1, 0, exam.pk)


def test_exam_rule_resumes_at_exam():
    course, text_lesson, exam = exam_rule_course()
    contact = make_contact()
    enrollment = enroll_contact(contact, course)
    record_lesson_view(enrollment, text_lesson, at=NOW)

    page = course_page(contact, course)

    assert "0 of 1 required lesson completed (0%)" in page
    assert resume_button(course, exam) in page
    assert resume_button(course, text_lesson) not in page


def test_exam_rule_home_page_agrees():
    course, text_lesson, exam = exam_rule_course()
    contact = make_contact()
    enrollment = enroll_contact(contact, course)
    record_lesson_view(enrollment, text_lesson, at=NOW)

    page = sign_in(Client(), contact).get("/learn/").content.decode()

    assert "0 of 1 required lesson completed (0%)" in page
    assert f'href="{lesson_url(course, exam)}"' in page
    assert f'href="{lesson_url(course, text_lesson)}"' not in page


def test_exam_rule_preview_of_new_learner():
    course, _text_lesson, exam = exam_rule_course()
    client, _user = staff_client("view_course")

    page = client.get(f"/admin/courses/course/preview/{course.slug}/").content.decode()

    preview_exam = f"/admin/courses/course/preview/{course.slug}/lessons/{exam.pk}/"
    assert "0 of 1 required lesson completed (0%)" in page
    assert f'<a class="button" href="{preview_exam}">' in page


# A course of three lessons, the second optional, with the first completed.
# The required lessons rule counts 2 lessons, the all lessons rule 3, and
# the exam rule none, because the course has no exam. Resume goes to the
# second lesson under each: the lesson rules keep reading order, and the
# exam rule falls back to it when no exam is left.
@pytest.mark.parametrize(
    ("rule", "expected_total", "expected_percent"),
    [
        (CompletionRule.REQUIRED_LESSONS, 2, 50),
        (CompletionRule.ALL_LESSONS, 3, 33),
        (CompletionRule.PASS_EXAM, 0, 0),
    ],
)
def test_rule_counts_and_resume(rule, expected_total, expected_percent):
    course, lessons = make_course(3, optional=(1,))
    course.completion_rule = rule
    course.save()
    enrollment = enroll_contact(make_contact(), course)
    complete_lesson(enrollment, lessons[0], at=NOW)

    progress = enrollment_progress([enrollment])[enrollment.pk]

    expected_completed = 1 if expected_total else 0
    assert progress.total == expected_total
    assert progress.completed == expected_completed
    assert progress.percent == expected_percent
    assert progress.next_lesson_id == lessons[1].pk


def recertifying_on_exam_rule(contact):
    """A learner who passed the exam without reading the text, then it changed."""
    course, text_lesson, exam = exam_rule_course()
    first_version(course)
    enrollment = enroll_contact(contact, course)
    record_lesson_view(enrollment, text_lesson, at=NOW)
    take(enrollment, exam, NOW)
    change_a_question(exam)
    publish_version(course, requires_recertification=True, at=PUBLISHED)
    enrollment.refresh_from_db()
    assert enrollment.recertification_version is not None
    return course, text_lesson, exam, enrollment


def test_exam_rule_recertification_resumes_at_exam():
    contact = make_contact()
    course, text_lesson, exam, _enrollment = recertifying_on_exam_rule(contact)

    page = course_page(contact, course)

    # The exam is the only requirement, and its earlier pass does not count.
    assert "0 of 1 required lesson completed (0%)" in page
    assert resume_button(course, exam) in page
    assert resume_button(course, text_lesson) not in page


def test_lesson_rule_recertification_resumes_at_exam():
    course, exam = exam_course()
    first_version(course)
    contact = make_contact()
    completed_learner(course, exam, contact)
    change_a_question(exam)
    publish_version(course, requires_recertification=True, at=PUBLISHED)

    page = course_page(contact, course)

    # Text lesson and exam are required; only the text lesson still counts.
    assert "1 of 2 required lessons completed (50%)" in page
    assert resume_button(course, exam) in page


def test_recertification_resumes_in_course_order():
    course, exam = exam_course()
    first_version(course)
    contact = make_contact()
    enrollment = completed_learner(course, exam, contact)
    added = Lesson.objects.create(module=exam.module, title="Audit logs", order=9)
    change_a_question(exam)
    publish_version(course, requires_recertification=True, at=PUBLISHED)

    before_retake = course_page(contact, course)
    take(enrollment, exam, AFTER)
    after_retake = course_page(contact, course)

    # The exam comes before the added lesson, so it is the first to meet.
    assert "1 of 3 required lessons completed (33%)" in before_retake
    assert resume_button(course, exam) in before_retake
    assert "2 of 3 required lessons completed (66%)" in after_retake
    assert resume_button(course, added) in after_retake
