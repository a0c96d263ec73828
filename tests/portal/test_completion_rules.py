"""Course completion rules: required lessons, all lessons, or passing the exams."""

from decimal import Decimal

import pytest

from courses.assessments import start_attempt, submit_attempt
from courses.models import CompletionRule, EnrollmentStatus, LessonKind, QuestionKind
from courses.services import complete_lesson
from tests.factories import NOW, make_contact
from tests.portal.helpers import (
    add_question,
    correct_choice,
    enroll_contact,
    make_course,
    wrong_choice,
)

pytestmark = pytest.mark.django_db

YES_NO = (("Yes", True), ("No", False))


def course_with_rule(rule, *sizes, optional=()):
    course, lessons = make_course(*sizes, optional=optional)
    course.completion_rule = rule
    course.save()
    return course, lessons


def make_exam(lesson, pass_mark=Decimal(100)):
    lesson.kind = LessonKind.EXAM
    lesson.pass_mark = pass_mark
    lesson.save()
    return add_question(lesson, QuestionKind.SINGLE_CHOICE, "Exam question", YES_NO)


def take_exam(enrollment, exam, question, *, right):
    attempt = start_attempt(enrollment, exam, at=NOW)
    choice = correct_choice(question) if right else wrong_choice(question)
    return submit_attempt(enrollment, attempt.pk, {question.pk: [choice]}, at=NOW)


def status_of(enrollment):
    enrollment.refresh_from_db()
    return enrollment.status


def test_all_lessons_rule_waits_for_optional():
    course, lessons = course_with_rule(CompletionRule.ALL_LESSONS, 2, optional=(1,))
    enrollment = enroll_contact(make_contact(), course)

    complete_lesson(enrollment, lessons[0], at=NOW)
    assert status_of(enrollment) == EnrollmentStatus.ACTIVE

    complete_lesson(enrollment, lessons[1], at=NOW)
    assert status_of(enrollment) == EnrollmentStatus.COMPLETED


def test_required_lessons_rule_skips_optional():
    course, lessons = course_with_rule(
        CompletionRule.REQUIRED_LESSONS, 2, optional=(1,)
    )
    enrollment = enroll_contact(make_contact(), course)

    complete_lesson(enrollment, lessons[0], at=NOW)

    assert status_of(enrollment) == EnrollmentStatus.COMPLETED


def test_pass_exam_rule_completes_on_pass_only():
    course, lessons = course_with_rule(CompletionRule.PASS_EXAM, 3)
    question = make_exam(lessons[2])
    enrollment = enroll_contact(make_contact(), course)

    complete_lesson(enrollment, lessons[0], at=NOW)
    complete_lesson(enrollment, lessons[1], at=NOW)
    take_exam(enrollment, lessons[2], question, right=False)
    assert status_of(enrollment) == EnrollmentStatus.ACTIVE

    take_exam(enrollment, lessons[2], question, right=True)
    assert status_of(enrollment) == EnrollmentStatus.COMPLETED


def test_pass_exam_rule_ignores_other_lessons():
    course, lessons = course_with_rule(CompletionRule.PASS_EXAM, 3)
    question = make_exam(lessons[2])
    enrollment = enroll_contact(make_contact(), course)

    take_exam(enrollment, lessons[2], question, right=True)

    assert status_of(enrollment) == EnrollmentStatus.COMPLETED
    assert enrollment.completed_at == NOW


def test_pass_exam_rule_needs_every_exam():
    course, lessons = course_with_rule(CompletionRule.PASS_EXAM, 2)
    first = make_exam(lessons[0])
    second = make_exam(lessons[1])
    enrollment = enroll_contact(make_contact(), course)

    take_exam(enrollment, lessons[0], first, right=True)
    assert status_of(enrollment) == EnrollmentStatus.ACTIVE

    take_exam(enrollment, lessons[1], second, right=True)
    assert status_of(enrollment) == EnrollmentStatus.COMPLETED


def test_pass_exam_rule_without_exam_never_completes():
    course, lessons = course_with_rule(CompletionRule.PASS_EXAM, 2)
    enrollment = enroll_contact(make_contact(), course)

    for lesson in lessons:
        complete_lesson(enrollment, lesson, at=NOW)

    assert status_of(enrollment) == EnrollmentStatus.ACTIVE


def test_failed_required_exam_holds_completion():
    course, lessons = course_with_rule(CompletionRule.REQUIRED_LESSONS, 2)
    question = make_exam(lessons[1], pass_mark=Decimal(50))
    enrollment = enroll_contact(make_contact(), course)
    complete_lesson(enrollment, lessons[0], at=NOW)

    take_exam(enrollment, lessons[1], question, right=False)

    assert status_of(enrollment) == EnrollmentStatus.ACTIVE
