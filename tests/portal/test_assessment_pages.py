"""Quiz and exam pages: taking an attempt, results, errors and who may open them."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from courses.assessments import start_attempt, submit_attempt
from courses.models import Answer, Attempt, AttemptStatus, LessonKind, QuestionKind
from tests.factories import make_contact
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


@pytest.fixture
def learner():
    return make_contact(first_name="Ada")


@pytest.fixture
def learner_client(client, learner):
    return sign_in(client, learner)


def attempt_url(course, lesson, attempt):
    return f"{lesson_url(course, lesson)}attempts/{attempt.pk}/"


def test_quiz_page_starts_and_scores(learner_client, learner):
    course, quiz = make_assessment()
    question = add_question(
        quiz,
        QuestionKind.SINGLE_CHOICE,
        "Where do you invite your team?",
        (("Settings", True), ("Reports", False)),
        feedback="Invitations are under Settings, Team.",
    )
    enroll_contact(learner, course)

    page = learner_client.get(lesson_url(course, quiz)).content.decode()
    assert "Mark complete" not in page
    assert 'action="' + lesson_url(course, quiz) + 'attempts/"' in page

    started = learner_client.post(lesson_url(course, quiz) + "attempts/")
    assert started.status_code == 302
    assert started["Location"] == lesson_url(course, quiz)
    attempt = Attempt.objects.get()

    form = learner_client.get(lesson_url(course, quiz)).content.decode()
    choice = correct_choice(question)
    assert f'<label for="choice-{choice}">Settings</label>' in form
    assert f'name="q-{question.pk}" id="choice-{choice}"' in form
    assert "<legend>" in form

    submitted = learner_client.post(
        attempt_url(course, quiz, attempt) + "submit/", {f"q-{question.pk}": choice}
    )
    assert submitted.status_code == 302
    assert submitted["Location"] == attempt_url(course, quiz, attempt)

    result = learner_client.get(submitted["Location"]).content.decode()
    assert "Score: <strong>100%</strong>" in result
    assert "Correct" in result
    assert "Invitations are under Settings, Team." in result
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.SUBMITTED
    assert attempt.score == Decimal(100)


def test_mark_complete_rejected_for_quiz(learner_client, learner):
    course, quiz = make_assessment()
    add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enroll_contact(learner, course)

    response = learner_client.post(lesson_url(course, quiz) + "complete/", follow=True)

    assert "is completed by submitting its answers" in response.content.decode()
    assert not quiz.progress.filter(completed_at__isnull=False).exists()


def test_foreign_question_shows_error(learner_client, learner):
    course, quiz = make_assessment()
    question = add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    _other, other_quiz = make_assessment()
    foreign = add_question(other_quiz, QuestionKind.SINGLE_CHOICE, "Other", YES_NO)
    enrollment = enroll_contact(learner, course)
    attempt = start_attempt(enrollment, quiz)

    response = learner_client.post(
        attempt_url(course, quiz, attempt) + "submit/",
        {f"q-{question.pk}": correct_choice(question), f"q-{foreign.pk}": "1"},
        follow=True,
    )

    content = response.content.decode()
    assert f"Question {foreign.pk} was not part of attempt 1" in content
    assert not Answer.objects.exists()
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.OPEN


def test_non_numeric_choice_shows_error(learner_client, learner):
    course, quiz = make_assessment()
    question = add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(learner, course)
    attempt = start_attempt(enrollment, quiz)

    response = learner_client.post(
        attempt_url(course, quiz, attempt) + "submit/",
        {f"q-{question.pk}": "yes"},
        follow=True,
    )

    assert f"The answer to question {question.pk} is not one of its choices" in (
        response.content.decode()
    )
    assert not Answer.objects.exists()


def test_late_submission_shows_error(learner_client, learner):
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(50), time_limit_minutes=5
    )
    question = add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(learner, course)
    attempt = start_attempt(enrollment, exam, at=timezone.now() - timedelta(minutes=6))

    response = learner_client.post(
        attempt_url(course, exam, attempt) + "submit/",
        {f"q-{question.pk}": correct_choice(question)},
        follow=True,
    )

    content = response.content.decode()
    assert "The time limit of 5 minutes" in content
    assert "Time limit passed" in content
    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.EXPIRED
    assert not Answer.objects.exists()


def test_countdown_deadline_keeps_fractions(learner_client, learner):
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(50), time_limit_minutes=5
    )
    add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    attempt = start_attempt(enroll_contact(learner, course), exam)
    assert attempt.deadline is not None
    attempt.deadline = attempt.deadline.replace(microsecond=900_000)
    attempt.save(update_fields=["deadline"])

    content = learner_client.get(lesson_url(course, exam)).content.decode()

    # Whole seconds would let the countdown end up to a second before the
    # server's deadline, while answers are still accepted.
    deadline = re.search(r'data-deadline="([0-9.]+)"', content)
    assert deadline is not None
    assert float(deadline.group(1)) == pytest.approx(attempt.deadline.timestamp())
    server_now = re.search(r'data-server-now="([0-9.]+)"', content)
    assert server_now is not None
    assert "." in server_now.group(1)


def test_attempt_beyond_limit_shows_error(learner_client, learner):
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(100), max_attempts=1
    )
    question = add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(learner, course)
    attempt = start_attempt(enrollment, exam)
    submit_attempt(enrollment, attempt.pk, {question.pk: [wrong_choice(question)]})

    page = learner_client.get(lesson_url(course, exam)).content.decode()
    assert "You have used all 1 attempts." in page
    assert "Start a new attempt" not in page

    response = learner_client.post(lesson_url(course, exam) + "attempts/", follow=True)

    assert "You have used all 1 attempts at" in response.content.decode()
    assert Attempt.objects.count() == 1


def test_other_contacts_attempt_urls_are_404(learner_client, learner):
    course, quiz = make_assessment()
    question = add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    own_enrollment = enroll_contact(learner, course)
    own_attempt = start_attempt(own_enrollment, quiz)
    # Another contact in the same course, and a course the learner is not in.
    other = make_contact()
    other_enrollment = enroll_contact(other, course)
    other_attempt = start_attempt(other_enrollment, quiz)
    submit_attempt(other_enrollment, other_attempt.pk, {})
    open_other = start_attempt(other_enrollment, quiz)
    foreign_course, foreign_quiz = make_assessment()
    add_question(foreign_quiz, QuestionKind.SINGLE_CHOICE, "Two", YES_NO)
    foreign_attempt = start_attempt(enroll_contact(other, foreign_course), foreign_quiz)
    submit_attempt(enroll_contact(other, foreign_course), foreign_attempt.pk, {})
    answers_before = Answer.objects.count()

    gets = [
        attempt_url(course, quiz, other_attempt),
        attempt_url(foreign_course, foreign_quiz, foreign_attempt),
        # The other contact's attempt under the learner's own course and lesson ids.
        attempt_url(course, quiz, foreign_attempt),
        lesson_url(foreign_course, foreign_quiz),
        # An open attempt has no result page yet, even the learner's own.
        attempt_url(course, quiz, own_attempt),
    ]
    posts = [
        attempt_url(course, quiz, open_other) + "submit/",
        attempt_url(foreign_course, foreign_quiz, foreign_attempt) + "submit/",
        lesson_url(foreign_course, foreign_quiz) + "attempts/",
        # A lesson id of another course under the learner's course slug.
        f"/learn/courses/{course.slug}/lessons/{foreign_quiz.pk}/attempts/",
    ]

    for path in gets:
        assert learner_client.get(path).status_code == 404, path
    for path in posts:
        response = learner_client.post(
            path, {f"q-{question.pk}": correct_choice(question)}
        )
        assert response.status_code == 404, path
    assert Answer.objects.count() == answers_before
    open_other.refresh_from_db()
    assert open_other.status == AttemptStatus.OPEN
    assert Attempt.objects.filter(enrollment__contact=learner).count() == 1


def test_attempt_views_need_post(learner_client, learner):
    course, quiz = make_assessment()
    add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(learner, course)
    attempt = start_attempt(enrollment, quiz)

    assert learner_client.get(lesson_url(course, quiz) + "attempts/").status_code == 405
    submit = attempt_url(course, quiz, attempt) + "submit/"
    assert learner_client.get(submit).status_code == 405
    assert Attempt.objects.count() == 1


def test_anonymous_start_redirected(client):
    course, quiz = make_assessment()
    add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)

    response = client.post(lesson_url(course, quiz) + "attempts/")

    assert response.status_code == 302
    assert response["Location"].startswith("/learn/sign-in/?next=")
    assert not Attempt.objects.exists()


def add_history(course, exam, questions, learner, extra_learners, attempts):
    """Give the learner submitted attempts and enroll more learners with attempts."""
    enrollment = enroll_contact(learner, course)
    for _ in range(attempts):
        attempt = start_attempt(enrollment, exam)
        submit_attempt(
            enrollment, attempt.pk, {questions[0].pk: [wrong_choice(questions[0])]}
        )
    for _ in range(extra_learners):
        other = enroll_contact(make_contact(), course)
        attempt = start_attempt(other, exam)
        submit_attempt(other, attempt.pk, {})
    return start_attempt(enrollment, exam)


def count_page_queries(client, course, exam):
    with CaptureQueriesContext(connection) as queries:
        response = client.get(lesson_url(course, exam))
    assert response.status_code == 200
    assert response.context["assessment"].open_attempt is not None
    return len(queries), response


def test_exam_page_query_count_is_constant(learner):
    course, exam = make_assessment(LessonKind.EXAM, pass_mark=Decimal(50))
    questions = [
        add_question(exam, QuestionKind.SINGLE_CHOICE, f"Q{n}", YES_NO)
        for n in range(3)
    ]
    client = sign_in(Client(), learner)
    add_history(course, exam, questions, learner, extra_learners=1, attempts=1)
    few, _response = count_page_queries(client, course, exam)

    # More attempts of the learner, more learners with attempts, more questions.
    enrollment = learner.enrollments.get()
    Attempt.objects.filter(enrollment=enrollment, status=AttemptStatus.OPEN).delete()
    questions += [
        add_question(exam, QuestionKind.MULTIPLE_CHOICE, f"M{n}", YES_NO)
        for n in range(4)
    ]
    for _ in range(5):
        attempt = start_attempt(enrollment, exam)
        submit_attempt(enrollment, attempt.pk, {})
    for _ in range(6):
        other = enroll_contact(make_contact(), course)
        submit_attempt(other, start_attempt(other, exam).pk, {})
    start_attempt(enrollment, exam)
    many, response = count_page_queries(client, course, exam)

    assert len(response.context["assessment"].attempts) == 7
    assert len(response.context["assessment"].questions) == 7
    assert many == few


def test_result_page_query_count_is_constant(learner):
    course, quiz = make_assessment()
    client = sign_in(Client(), learner)
    enrollment = enroll_contact(learner, course)

    def result_queries(question_total):
        for n in range(question_total):
            add_question(quiz, QuestionKind.SINGLE_CHOICE, f"Q{n}", YES_NO)
        attempt = start_attempt(enrollment, quiz)
        submit_attempt(enrollment, attempt.pk, {})
        with CaptureQueriesContext(connection) as queries:
            response = client.get(attempt_url(course, quiz, attempt))
        assert response.status_code == 200
        return len(queries)

    assert result_queries(2) == result_queries(8)


def test_exam_result_hides_answers_until_passed(learner_client, learner):
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(100), max_attempts=3
    )
    question = add_question(
        exam, QuestionKind.SINGLE_CHOICE, "One", (("Right", True), ("Wrong", False))
    )
    enrollment = enroll_contact(learner, course)
    failed = start_attempt(enrollment, exam)
    submit_attempt(enrollment, failed.pk, {question.pk: [wrong_choice(question)]})

    hidden = learner_client.get(attempt_url(course, exam, failed)).content.decode()
    assert "(correct answer)" not in hidden
    assert "shown once you pass the exam" in hidden
    assert "Not correct" in hidden

    passed = start_attempt(enrollment, exam)
    submit_attempt(enrollment, passed.pk, {question.pk: [correct_choice(question)]})
    shown = learner_client.get(attempt_url(course, exam, failed)).content.decode()
    assert 'Right <span class="state state-completed">(correct answer)</span>' in shown


def test_exam_result_shows_answers_when_none_left(learner_client, learner):
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(100), max_attempts=1
    )
    question = add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(learner, course)
    failed = start_attempt(enrollment, exam)
    submit_attempt(enrollment, failed.pk, {question.pk: [wrong_choice(question)]})

    content = learner_client.get(attempt_url(course, exam, failed)).content.decode()

    assert "(correct answer)" in content


def test_overdue_attempt_shown_as_expired(learner_client, learner):
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(50), time_limit_minutes=5
    )
    add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(learner, course)
    start_attempt(enrollment, exam, at=timezone.now() - timedelta(minutes=6))

    response = learner_client.get(lesson_url(course, exam))

    content = response.content.decode()
    assert response.context["assessment"].open_attempt is None
    assert "Time limit passed" in content
    assert "Start a new attempt" in content
    assert "Submit answers" not in content
