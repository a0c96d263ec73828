"""Recertification requires passing again the quizzes and exams that changed."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import Client
from django.urls import reverse

from courses.assessments import (
    AssessmentError,
    assessment_state,
    reveals_correct_answers,
    start_attempt,
    submit_attempt,
)
from courses.models import (
    Attempt,
    CompletionRule,
    CourseVersion,
    Enrollment,
    Lesson,
    LessonKind,
    QuestionKind,
)
from courses.recertification import retakes_left
from courses.services import complete_lesson
from courses.versions import publish_version, record_first_version, version_state
from tests.factories import NOW, make_contact
from tests.portal.helpers import (
    add_question,
    correct_choice,
    enroll_contact,
    lesson_url,
    make_assessment,
    sign_in,
    wrong_choice,
)

pytestmark = pytest.mark.django_db

YES_NO = (("Yes", True), ("No", False))
PUBLISHED = NOW + timedelta(days=30)
AFTER = PUBLISHED + timedelta(days=1)


def exam_course(kind=LessonKind.EXAM, **rules):
    """A course of a text lesson and an assessment of two yes-or-no questions."""
    rules.setdefault("pass_mark", Decimal(50))
    course, assessment = make_assessment(kind, **rules)
    for text in ("First question", "Second question"):
        add_question(assessment, QuestionKind.SINGLE_CHOICE, text, YES_NO)
    return course, assessment


def take(enrollment, lesson, at, *, correct=True):
    attempt = start_attempt(enrollment, lesson, at=at)
    pick = correct_choice if correct else wrong_choice
    responses = {
        question.pk: [pick(question)] for question in lesson.questions.order_by("pk")
    }
    return submit_attempt(enrollment, attempt.pk, responses, at=at)


def completed_learner(course, assessment, contact=None):
    """Enroll, complete the text lesson and pass the assessment at NOW."""
    enrollment = enroll_contact(contact or make_contact(), course)
    text_lesson = Lesson.objects.filter(module__course=course).exclude(pk=assessment.pk)
    for lesson in text_lesson:
        complete_lesson(enrollment, lesson, at=NOW)
    take(enrollment, assessment, NOW)
    enrollment.refresh_from_db()
    assert enrollment.status == "completed"
    return enrollment


def first_version(course):
    """Record version 1's lessons, as saving the course in the admin does."""
    assert record_first_version(course, at=NOW - timedelta(days=1))


def change_a_question(assessment):
    question = assessment.questions.order_by("pk").first()
    question.text = "First question, reworded to ask something else"
    question.save()


def due_after_exam_change(contact=None):
    """A learner who passed the exam, then a version with a reworded question."""
    course, exam = exam_course()
    first_version(course)
    enrollment = completed_learner(course, exam, contact)
    change_a_question(exam)
    publish_version(course, requires_recertification=True, at=PUBLISHED)
    enrollment.refresh_from_db()
    return course, exam, enrollment


def test_changed_exam_must_be_retaken():
    course, exam = exam_course()
    first_version(course)
    enrollment = completed_learner(course, exam)
    change_a_question(exam)

    version = publish_version(course, requires_recertification=True, at=PUBLISHED)

    enrollment.refresh_from_db()
    assert version.recertification_count == 1
    assert enrollment.recertification_version == 2
    assert retakes_left(enrollment) == [exam.pk]
    state = assessment_state(enrollment, exam, at=AFTER)
    assert state.blocked_reason == ""
    assert state.retake_since == PUBLISHED


def test_retaken_exam_recertifies():
    _course, exam, enrollment = due_after_exam_change()

    take(enrollment, exam, AFTER)

    enrollment.refresh_from_db()
    assert enrollment.recertification_version is None
    assert enrollment.recertified_at == AFTER
    assert enrollment.completed_version == 2
    assert enrollment.completed_at == NOW
    versions = sorted(enrollment.certificates.values_list("course_version", flat=True))
    assert versions == [1, 2]


def test_failed_retake_keeps_recertification_due():
    _course, exam, enrollment = due_after_exam_change()

    failed = take(enrollment, exam, AFTER, correct=False)

    enrollment.refresh_from_db()
    assert failed.passed is False
    assert enrollment.recertification_version == 2
    assert retakes_left(enrollment) == [exam.pk]
    # The pass of the old exam no longer reveals the new exam's answers.
    assert reveals_correct_answers(failed, enrollment) is False


def test_attempt_limit_counts_since_change():
    course, exam = exam_course(max_attempts=2)
    first_version(course)
    enrollment = completed_learner(course, exam)
    # A second attempt is refused before the change: the exam was passed.
    with pytest.raises(AssessmentError, match="passed"):
        start_attempt(enrollment, exam, at=NOW)
    change_a_question(exam)
    publish_version(course, requires_recertification=True, at=PUBLISHED)

    take(enrollment, exam, AFTER, correct=False)
    enrollment.refresh_from_db()
    state = assessment_state(enrollment, exam, at=AFTER)

    assert state.counts.used == 1
    assert state.counts.remaining == 1
    assert len(state.attempts) == 2


def test_unchanged_exam_keeps_pass():
    course, exam = exam_course()
    first_version(course)
    enrollment = completed_learner(course, exam)
    new_lesson = Lesson.objects.create(
        module=exam.module, title="Audit logs", order=9, body="New"
    )

    publish_version(course, requires_recertification=True, at=PUBLISHED)

    enrollment.refresh_from_db()
    assert enrollment.recertification_version == 2
    assert retakes_left(enrollment) == []
    with pytest.raises(AssessmentError, match="passed"):
        start_attempt(enrollment, exam, at=AFTER)
    complete_lesson(enrollment, new_lesson, at=AFTER)
    enrollment.refresh_from_db()
    assert enrollment.recertification_version is None


def test_changed_lesson_text_follows_lesson_rule():
    course, exam = exam_course()
    first_version(course)
    enrollment = completed_learner(course, exam)
    text_lesson = Lesson.objects.filter(module__course=course, kind="text").get()
    text_lesson.body = "Rewritten from the first line to the last"
    text_lesson.save()

    version = publish_version(course, requires_recertification=True, at=PUBLISHED)

    enrollment.refresh_from_db()
    assert version.recertification_count == 0
    assert enrollment.recertification_version is None


@pytest.mark.parametrize(
    "change",
    ["pass_mark", "add_question", "correct_choice", "pool", "draw_size"],
)
def test_assessment_changes_that_count(change):
    course, exam = exam_course()
    first_version(course)
    enrollment = completed_learner(course, exam)
    question = exam.questions.order_by("pk").first()
    if change == "pass_mark":
        exam.pass_mark = Decimal(90)
        exam.save()
    elif change == "add_question":
        add_question(exam, QuestionKind.SINGLE_CHOICE, "Third question", YES_NO)
    elif change == "correct_choice":
        question.choices.update(is_correct=False)
        question.choices.filter(text="No").update(is_correct=True)
    elif change == "pool":
        question.pool = "Security"
        question.save()
    else:
        exam.questions_per_attempt = 1
        exam.save()

    publish_version(course, requires_recertification=True, at=PUBLISHED)

    assert retakes_left(Enrollment.objects.get(pk=enrollment.pk)) == [exam.pk]


@pytest.mark.parametrize(
    "change", ["feedback", "question_order", "attempt_limit", "time_limit"]
)
def test_assessment_changes_that_do_not_count(change):
    course, exam = exam_course()
    first_version(course)
    enrollment = completed_learner(course, exam)
    new_lesson = Lesson.objects.create(module=exam.module, title="Audit", order=9)
    question = exam.questions.order_by("pk").first()
    if change == "feedback":
        question.feedback = "Read the security lesson again."
        question.save()
    elif change == "question_order":
        question.order = 99
        question.save()
    elif change == "attempt_limit":
        exam.max_attempts = 5
        exam.save()
    else:
        exam.time_limit_minutes = 30
        exam.save()

    state = version_state(course)
    publish_version(course, requires_recertification=True, at=PUBLISHED)

    assert state.changes is not None
    assert [item.lesson_id for item in state.changes.lessons] == [new_lesson.pk]
    assert retakes_left(Enrollment.objects.get(pk=enrollment.pk)) == []


def test_changed_quiz_any_submission_counts():
    course, quiz = exam_course(LessonKind.QUIZ)
    first_version(course)
    enrollment = completed_learner(course, quiz)
    change_a_question(quiz)
    publish_version(course, requires_recertification=True, at=PUBLISHED)
    assert retakes_left(Enrollment.objects.get(pk=enrollment.pk)) == [quiz.pk]

    take(enrollment, quiz, AFTER, correct=False)

    enrollment.refresh_from_db()
    assert enrollment.recertification_version is None


def test_optional_quiz_is_not_retaken():
    course, quiz = exam_course(LessonKind.QUIZ)
    quiz.is_required = False
    quiz.save()
    first_version(course)
    enrollment = completed_learner(course, quiz)
    change_a_question(quiz)

    version = publish_version(course, requires_recertification=True, at=PUBLISHED)

    assert version.recertification_count == 0
    assert Enrollment.objects.get(pk=enrollment.pk).recertification_version is None


def test_pass_exam_rule_counts_exams_only():
    course, exam = exam_course()
    course.completion_rule = CompletionRule.PASS_EXAM
    course.save()
    first_version(course)
    enrollment = completed_learner(course, exam)
    change_a_question(exam)

    publish_version(course, requires_recertification=True, at=PUBLISHED)

    assert retakes_left(Enrollment.objects.get(pk=enrollment.pk)) == [exam.pk]


def test_exam_changed_by_earlier_version():
    course, exam = exam_course()
    first_version(course)
    before = completed_learner(course, exam)
    change_a_question(exam)
    publish_version(course, requires_recertification=False, at=PUBLISHED)
    # Passed the changed exam after version 2 was published.
    after = enroll_contact(make_contact(), course)
    for lesson in Lesson.objects.filter(module__course=course, kind="text"):
        complete_lesson(after, lesson, at=AFTER)
    take(after, exam, AFTER)
    Lesson.objects.create(module=exam.module, title="Audit logs", order=9)

    publish_version(course, requires_recertification=True, at=AFTER + timedelta(1))

    before.refresh_from_db()
    after.refresh_from_db()
    assert retakes_left(before) == [exam.pk]
    assert after.recertification_version == 3
    assert retakes_left(after) == []


def test_version_without_snapshot_keeps_passes():
    course, exam = exam_course()
    first_version(course)
    enrollment = completed_learner(course, exam)
    # A version recorded before snapshots were kept.
    CourseVersion.objects.filter(course=course).update(snapshot=None)
    change_a_question(exam)
    Lesson.objects.create(module=exam.module, title="Audit logs", order=9)

    state = version_state(course)
    version = publish_version(course, requires_recertification=True, at=PUBLISHED)

    assert state.changed is None
    assert state.changes is None
    assert version.snapshot is not None
    enrollment.refresh_from_db()
    assert enrollment.recertification_version == 2
    assert retakes_left(enrollment) == []


def test_course_page_asks_to_pass_again():
    contact = make_contact()
    course, exam, _enrollment = due_after_exam_change(contact)
    client = sign_in(Client(), contact)

    page = client.get(f"/learn/courses/{course.slug}/").content.decode()

    assert "Recertification due" in page
    assert "Pass again" in page
    lesson_link = f'href="/learn/courses/{course.slug}/lessons/{exam.pk}/"'
    assert lesson_link in page
    assert "your earlier pass does not count" in page
    # Nothing but the exam is left, so no lesson is listed to complete.
    assert "Complete the lessons" not in page


def test_admin_lists_changes(django_user_model):
    course, exam = exam_course()
    first_version(course)
    change_a_question(exam)
    user = django_user_model.objects.create_superuser("admin", password="x")
    client = Client()
    client.force_login(user)

    page = client.get(f"/admin/courses/course/{course.pk}/publish-version/")

    text = page.content.decode()
    assert "Changes since version 1" in text
    assert exam.title in text
    assert "must pass it again" in text


def test_lesson_page_offers_retake():
    contact = make_contact()
    course, exam, enrollment = due_after_exam_change(contact)
    client = sign_in(Client(), contact)

    page = client.get(lesson_url(course, exam)).content.decode()
    start_url = reverse(
        "portal:start-attempt", kwargs={"slug": course.slug, "lesson_id": exam.pk}
    )
    response = client.post(start_url)

    # Attempts count from the change, so the form offers a first start.
    assert f'action="{start_url}"' in page
    assert "You passed this exam" not in page
    assert response.status_code == 302
    opened = Attempt.objects.filter(enrollment=enrollment, lesson=exam, status="open")
    assert opened.count() == 1
