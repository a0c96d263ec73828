"""Quiz and exam services: scoring, attempts, limits and the scores conditions read."""

import random
from datetime import timedelta
from decimal import Decimal

import pytest

from conditions import EvaluationContext, compile_condition, parse_condition
from courses.assessments import (
    AssessmentError,
    AttemptClosed,
    AttemptLimitReached,
    TimeLimitExceeded,
    start_attempt,
    submit_attempt,
)
from courses.models import (
    Answer,
    Attempt,
    AttemptStatus,
    EnrollmentStatus,
    LessonKind,
    LessonProgress,
    QuestionKind,
)
from customers.models import Contact
from tests.factories import NOW, make_contact
from tests.portal.helpers import (
    add_question,
    correct_choice,
    enroll_contact,
    make_assessment,
    run_at_once,
    wrong_choice,
)
from tests.triggers.factories import make_trigger
from triggers.models import Firing

pytestmark = pytest.mark.django_db

YES_NO = (("Yes", True), ("No", False))


def contacts_matching(text, as_of):
    tree = parse_condition(text, "contact")
    condition = compile_condition(tree, EvaluationContext("contact", as_of))
    return set(Contact.objects.filter(condition).values_list("pk", flat=True))


def test_each_question_kind_is_scored():
    course, quiz = make_assessment()
    single = add_question(quiz, QuestionKind.SINGLE_CHOICE, "Pick one", YES_NO)
    multiple = add_question(
        quiz,
        QuestionKind.MULTIPLE_CHOICE,
        "Pick all",
        (("A", True), ("B", True), ("C", False)),
        points=2,
    )
    true_false = add_question(
        quiz, QuestionKind.TRUE_FALSE, "Sky is blue", (("True", True), ("False", False))
    )
    short = add_question(
        quiz,
        QuestionKind.SHORT_ANSWER,
        "Name the menu",
        accepted_answers="Team settings\nSettings",
        points=3,
    )
    reflection = add_question(quiz, QuestionKind.REFLECTION, "What will you try?")
    enrollment = enroll_contact(make_contact(), course)
    attempt = start_attempt(enrollment, quiz, at=NOW)
    a, b, _c = multiple.choices.all()

    submitted = submit_attempt(
        enrollment,
        attempt.pk,
        {
            single.pk: [correct_choice(single)],
            # Only one of the two correct choices: all or nothing, so wrong.
            multiple.pk: [a.pk],
            true_false.pk: [correct_choice(true_false)],
            # Case and extra spaces do not matter.
            short.pk: "  team   SETTINGS ",
            reflection.pk: "Invite my team.",
        },
        at=NOW + timedelta(minutes=3),
    )

    # 1 + 0 + 1 + 3 points of 1 + 2 + 1 + 3 scored points; the reflection is unscored.
    assert submitted.score == Decimal(5 * 100 / 7).quantize(Decimal("0.01"))
    assert submitted.status == AttemptStatus.SUBMITTED
    answers = {answer.question_id: answer for answer in Answer.objects.all()}
    assert answers[single.pk].is_correct is True
    assert answers[multiple.pk].is_correct is False
    assert answers[multiple.pk].choice_ids == [a.pk]
    assert answers[true_false.pk].is_correct is True
    assert answers[short.pk].is_correct is True
    assert answers[short.pk].points_awarded == 3
    assert answers[reflection.pk].is_correct is None
    assert answers[reflection.pk].text == "Invite my team."
    assert b.is_correct


def test_unanswered_question_counts_wrong():
    course, quiz = make_assessment()
    first = add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    add_question(quiz, QuestionKind.SINGLE_CHOICE, "Two", YES_NO)
    enrollment = enroll_contact(make_contact(), course)
    attempt = start_attempt(enrollment, quiz, at=NOW)

    submitted = submit_attempt(
        enrollment, attempt.pk, {first.pk: [correct_choice(first)]}, at=NOW
    )

    assert submitted.score == Decimal("50.00")
    assert Answer.objects.count() == 2


def test_quiz_submission_completes_lesson_with_latest_score():
    course, quiz = make_assessment()
    question = add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(make_contact(), course)

    first = start_attempt(enrollment, quiz, at=NOW)
    submit_attempt(
        enrollment, first.pk, {question.pk: [correct_choice(question)]}, at=NOW
    )
    second = start_attempt(enrollment, quiz, at=NOW + timedelta(hours=1))
    submit_attempt(
        enrollment,
        second.pk,
        {question.pk: [wrong_choice(question)]},
        at=NOW + timedelta(hours=1),
    )

    progress = LessonProgress.objects.get(enrollment=enrollment, lesson=quiz)
    assert second.number == 2
    # A quiz keeps the latest score, and the first submission completed it.
    assert progress.score == Decimal(0)
    assert progress.completed_at == NOW


def test_question_not_served_is_rejected():
    course, quiz = make_assessment()
    served = add_question(quiz, QuestionKind.SINGLE_CHOICE, "Served", YES_NO)
    _other_course, other_quiz = make_assessment()
    foreign = add_question(other_quiz, QuestionKind.SINGLE_CHOICE, "Foreign", YES_NO)
    enrollment = enroll_contact(make_contact(), course)
    attempt = start_attempt(enrollment, quiz, at=NOW)

    with pytest.raises(AssessmentError, match=f"Question {foreign.pk} was not part"):
        submit_attempt(
            enrollment,
            attempt.pk,
            {
                served.pk: [correct_choice(served)],
                foreign.pk: [correct_choice(foreign)],
            },
            at=NOW,
        )

    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.OPEN
    assert attempt.score is None
    assert not Answer.objects.exists()
    assert not LessonProgress.objects.filter(score__isnull=False).exists()


def test_choice_of_other_question_is_rejected():
    course, quiz = make_assessment()
    first = add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    second = add_question(quiz, QuestionKind.SINGLE_CHOICE, "Two", YES_NO)
    enrollment = enroll_contact(make_contact(), course)
    attempt = start_attempt(enrollment, quiz, at=NOW)

    with pytest.raises(AssessmentError, match="is not an option of question"):
        submit_attempt(
            enrollment, attempt.pk, {first.pk: [correct_choice(second)]}, at=NOW
        )

    assert not Answer.objects.exists()


def test_two_answers_to_single_choice_rejected():
    course, quiz = make_assessment()
    question = add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(make_contact(), course)
    attempt = start_attempt(enrollment, quiz, at=NOW)
    both = [choice.pk for choice in question.choices.all()]

    with pytest.raises(AssessmentError, match="takes one answer, but 2 were chosen"):
        submit_attempt(enrollment, attempt.pk, {question.pk: both}, at=NOW)

    assert not Answer.objects.exists()


def test_submission_after_time_limit_rejected():
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(50), time_limit_minutes=10
    )
    question = add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(make_contact(), course)
    attempt = start_attempt(enrollment, exam, at=NOW)
    late = NOW + timedelta(minutes=10, seconds=1)

    with pytest.raises(TimeLimitExceeded, match="time limit of 10 minutes"):
        submit_attempt(
            enrollment, attempt.pk, {question.pk: [correct_choice(question)]}, at=late
        )

    attempt.refresh_from_db()
    assert attempt.status == AttemptStatus.EXPIRED
    assert attempt.score == Decimal(0)
    assert attempt.passed is False
    assert attempt.submitted_at == NOW + timedelta(minutes=10)
    assert not Answer.objects.exists()
    with pytest.raises(AttemptClosed, match="submitted already"):
        submit_attempt(enrollment, attempt.pk, {}, at=late)


def test_submission_at_deadline_accepted():
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(50), time_limit_minutes=10
    )
    question = add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(make_contact(), course)
    attempt = start_attempt(enrollment, exam, at=NOW)

    submitted = submit_attempt(
        enrollment,
        attempt.pk,
        {question.pk: [correct_choice(question)]},
        at=NOW + timedelta(minutes=10),
    )

    assert submitted.passed is True


def test_attempt_limit_enforced():
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(100), max_attempts=2
    )
    question = add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(make_contact(), course)
    for hour in range(2):
        attempt = start_attempt(enrollment, exam, at=NOW + timedelta(hours=hour))
        submit_attempt(
            enrollment,
            attempt.pk,
            {question.pk: [wrong_choice(question)]},
            at=NOW + timedelta(hours=hour),
        )

    with pytest.raises(AttemptLimitReached, match="used all 2 attempts"):
        start_attempt(enrollment, exam, at=NOW + timedelta(hours=3))

    assert Attempt.objects.count() == 2


def test_expired_attempt_counts_toward_limit():
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(50), max_attempts=2, time_limit_minutes=5
    )
    add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(make_contact(), course)
    first = start_attempt(enrollment, exam, at=NOW)

    second = start_attempt(enrollment, exam, at=NOW + timedelta(minutes=6))

    first.refresh_from_db()
    assert first.status == AttemptStatus.EXPIRED
    assert second.number == 2
    assert second.deadline == NOW + timedelta(minutes=11)
    with pytest.raises(AttemptLimitReached):
        start_attempt(enrollment, exam, at=NOW + timedelta(minutes=20))


def test_start_returns_open_attempt():
    course, quiz = make_assessment()
    add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(make_contact(), course)

    first = start_attempt(enrollment, quiz, at=NOW)
    again = start_attempt(enrollment, quiz, at=NOW + timedelta(minutes=1))

    assert again.pk == first.pk
    assert Attempt.objects.count() == 1


def test_failed_exam_then_retake_passes():
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(60), max_attempts=3
    )
    first_q = add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    second_q = add_question(exam, QuestionKind.SINGLE_CHOICE, "Two", YES_NO)
    enrollment = enroll_contact(make_contact(), course)

    failed = start_attempt(enrollment, exam, at=NOW)
    submit_attempt(
        enrollment, failed.pk, {first_q.pk: [correct_choice(first_q)]}, at=NOW
    )
    progress = LessonProgress.objects.get(enrollment=enrollment, lesson=exam)
    assert progress.score == Decimal(50)
    assert progress.completed_at is None

    later = NOW + timedelta(days=1)
    passed = start_attempt(enrollment, exam, at=later)
    result = submit_attempt(
        enrollment,
        passed.pk,
        {
            first_q.pk: [correct_choice(first_q)],
            second_q.pk: [correct_choice(second_q)],
        },
        at=later,
    )

    assert result.passed is True
    progress.refresh_from_db()
    assert progress.score == Decimal(100)
    assert progress.completed_at == later
    with pytest.raises(AssessmentError, match=r"passed .* already"):
        start_attempt(enrollment, exam, at=later)


def test_exam_keeps_best_score():
    course, exam = make_assessment(LessonKind.EXAM, pass_mark=Decimal(100))
    first_q = add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    add_question(exam, QuestionKind.SINGLE_CHOICE, "Two", YES_NO)
    enrollment = enroll_contact(make_contact(), course)
    good = start_attempt(enrollment, exam, at=NOW)
    submit_attempt(enrollment, good.pk, {first_q.pk: [correct_choice(first_q)]}, at=NOW)
    worse = start_attempt(enrollment, exam, at=NOW)
    submit_attempt(enrollment, worse.pk, {}, at=NOW)

    progress = LessonProgress.objects.get(enrollment=enrollment, lesson=exam)
    assert progress.score == Decimal(50)


def test_pool_draws_questions_per_attempt():
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(50), questions_per_attempt=3
    )
    pool = [
        add_question(exam, QuestionKind.SINGLE_CHOICE, f"Q{n}", YES_NO).pk
        for n in range(8)
    ]
    enrollment = enroll_contact(make_contact(), course)

    attempt = start_attempt(enrollment, exam, at=NOW, rng=random.Random(7))

    assert len(attempt.question_ids) == 3
    assert set(attempt.question_ids) <= set(pool)
    # Without shuffling the drawn questions keep the authored order.
    assert attempt.question_ids == sorted(attempt.question_ids, key=pool.index)
    # The same seed draws the same sample, computed here with the standard library.
    assert set(attempt.question_ids) == set(random.Random(7).sample(pool, 3))


def test_each_pool_gives_questions_per_attempt():
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(50), questions_per_attempt=2
    )
    pools: dict[str, list[int]] = {"basics": [], "advanced": [], "": []}
    for pool, size in (("basics", 4), ("advanced", 3), ("", 1)):
        for n in range(size):
            question = add_question(
                exam, QuestionKind.SINGLE_CHOICE, f"{pool} {n}", YES_NO, pool=pool
            )
            pools[pool].append(question.pk)
    enrollment = enroll_contact(make_contact(), course)

    attempt = start_attempt(enrollment, exam, at=NOW, rng=random.Random(3))

    served = set(attempt.question_ids)
    assert len(served & set(pools["basics"])) == 2
    assert len(served & set(pools["advanced"])) == 2
    # A pool smaller than the draw size is served whole.
    assert served & set(pools[""]) == set(pools[""])
    assert len(attempt.question_ids) == 5


def test_shuffle_changes_order():
    course, quiz = make_assessment(shuffle_questions=True)
    pool = [
        add_question(quiz, QuestionKind.SINGLE_CHOICE, f"Q{n}", YES_NO).pk
        for n in range(6)
    ]
    orders = set()
    for seed in range(5):
        enrollment = enroll_contact(make_contact(), course)
        attempt = start_attempt(enrollment, quiz, at=NOW, rng=random.Random(seed))
        assert sorted(attempt.question_ids) == sorted(pool)
        orders.add(tuple(attempt.question_ids))

    # Five shuffles of six questions all equal to the authored order would
    # happen with a chance of (1/720)^5.
    assert orders != {tuple(pool)}


def test_lesson_without_questions_cannot_start():
    course, quiz = make_assessment()
    enrollment = enroll_contact(make_contact(), course)

    with pytest.raises(AssessmentError, match="has no questions yet"):
        start_attempt(enrollment, quiz, at=NOW)


def test_text_lesson_cannot_start():
    course, quiz = make_assessment()
    enrollment = enroll_contact(make_contact(), course)
    text_lesson = quiz.module.lessons.get(kind=LessonKind.TEXT)

    with pytest.raises(AssessmentError, match="has no questions to answer"):
        start_attempt(enrollment, text_lesson, at=NOW)


def test_self_assessment_is_unscored_and_completes():
    course, reflection_lesson = make_assessment(LessonKind.SELF_ASSESSMENT)
    question = add_question(reflection_lesson, QuestionKind.REFLECTION, "How sure?")
    enrollment = enroll_contact(make_contact(), course)
    attempt = start_attempt(enrollment, reflection_lesson, at=NOW)

    submitted = submit_attempt(enrollment, attempt.pk, {question.pk: "Fairly"}, at=NOW)

    assert submitted.score is None
    progress = LessonProgress.objects.get(
        enrollment=enrollment, lesson=reflection_lesson
    )
    assert progress.completed_at == NOW
    assert progress.score is None


def test_conditions_read_attempt_scores():
    course, quiz = make_assessment()
    quiz.title = "Final quiz"
    quiz.save()
    first = add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    second = add_question(quiz, QuestionKind.SINGLE_CHOICE, "Two", YES_NO)
    text_lesson = quiz.module.lessons.get(kind=LessonKind.TEXT)
    learner = make_contact()
    enrollment = enroll_contact(learner, course)
    attempt = start_attempt(enrollment, quiz, at=NOW)
    submit_attempt(
        enrollment,
        attempt.pk,
        {first.pk: [correct_choice(first)], second.pk: [wrong_choice(second)]},
        at=NOW,
    )
    later = NOW + timedelta(hours=1)
    from courses.services import complete_lesson

    complete_lesson(enrollment, text_lesson, at=later)

    slug = course.slug
    assert contacts_matching(
        f'quiz_score("{slug}", lesson "Final quiz") == 50', later
    ) == {learner.pk}
    assert contacts_matching(f'quiz_score("{slug}") > 50', later) == set()
    # The course completed with one scored lesson, so its grade is that score.
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert enrollment.score == Decimal(50)
    assert contacts_matching(f'course_score("{slug}") >= 50', later) == {learner.pk}
    assert contacts_matching(f'course_score("{slug}") >= 50', NOW) == set()


def test_course_grade_uses_lesson_weights():
    course, quiz = make_assessment(weight=30)
    _other_course, _unused = make_assessment()
    exam = quiz.module.lessons.get(kind=LessonKind.TEXT)
    exam.kind = LessonKind.EXAM
    exam.weight = 70
    exam.pass_mark = Decimal(0)
    exam.save()
    quiz_q = add_question(quiz, QuestionKind.SINGLE_CHOICE, "Quiz", YES_NO)
    exam_q = add_question(exam, QuestionKind.SINGLE_CHOICE, "Exam", YES_NO)
    enrollment = enroll_contact(make_contact(), course)

    quiz_attempt = start_attempt(enrollment, quiz, at=NOW)
    submit_attempt(
        enrollment, quiz_attempt.pk, {quiz_q.pk: [correct_choice(quiz_q)]}, at=NOW
    )
    exam_attempt = start_attempt(enrollment, exam, at=NOW)
    submit_attempt(
        enrollment, exam_attempt.pk, {exam_q.pk: [wrong_choice(exam_q)]}, at=NOW
    )

    enrollment.refresh_from_db()
    # 100 with weight 30 and 0 with weight 70.
    assert enrollment.score == Decimal("30.00")


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_starts_create_one_attempt():
    course, exam = make_assessment(
        LessonKind.EXAM, pass_mark=Decimal(50), max_attempts=1
    )
    add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(make_contact(), course)

    errors = run_at_once(*[lambda: start_attempt(enrollment, exam)] * 4)

    assert errors == []
    assert Attempt.objects.count() == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_submissions_score_once():
    course, quiz = make_assessment()
    question = add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(make_contact(), course)
    attempt = start_attempt(enrollment, quiz)
    right = {question.pk: [correct_choice(question)]}

    errors = run_at_once(*[lambda: submit_attempt(enrollment, attempt.pk, right)] * 3)

    assert len(errors) == 2
    assert all(isinstance(error, AttemptClosed) for error in errors)
    assert Answer.objects.count() == 1
    attempt.refresh_from_db()
    assert attempt.score == Decimal(100)


def test_submission_evaluates_learning_triggers(django_capture_on_commit_callbacks):
    course, quiz = make_assessment()
    question = add_question(quiz, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    contact = make_contact()
    enrollment = enroll_contact(contact, course)
    passed = make_trigger(
        {"kind": "quiz_score", "course": course.slug, "op": ">=", "value": 80}
    )
    attempt = start_attempt(enrollment, quiz)

    with django_capture_on_commit_callbacks(execute=True):
        submit_attempt(
            enrollment, attempt.pk, {question.pk: [correct_choice(question)]}
        )

    assert Firing.objects.get(trigger=passed).contact_id == contact.pk


def test_exam_without_pass_mark_cannot_start():
    course, exam = make_assessment(LessonKind.EXAM)
    add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(make_contact(), course)

    with pytest.raises(AssessmentError, match="has no pass mark yet"):
        start_attempt(enrollment, exam, at=NOW)

    assert not Attempt.objects.exists()
