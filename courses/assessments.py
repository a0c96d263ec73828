"""Quizzes, exams and self-assessments: attempts, answers and scoring.

A learner starts an attempt, which draws the questions it serves, and
submits answers to those questions. The server scores the answers, stores
them with the attempt, and records the lesson's score and completion
through courses.services. Every write locks the enrollment row first, so
one learner's starts and submissions run one after another.
"""

import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction
from django.db.models import Max, QuerySet
from django.utils import timezone

from courses.models import (
    ASSESSMENT_KINDS,
    CHOICE_KINDS,
    Answer,
    Attempt,
    AttemptStatus,
    Enrollment,
    Lesson,
    LessonKind,
    Question,
    QuestionKind,
)
from courses.recertification import retake_since
from courses.services import (
    MAX_SCORE,
    announce_learning_change,
    lesson_of_course,
    lock_enrollment,
    record_assessment_result,
)

logger = logging.getLogger(__name__)


class AssessmentError(ValueError):
    """A start or submission the rules reject; the message is for the learner."""


class AttemptLimitReached(AssessmentError):
    pass


class TimeLimitExceeded(AssessmentError):
    pass


class AttemptClosed(AssessmentError):
    pass


# What a learner submits: question id to the chosen choice ids or the typed text.
Responses = Mapping[int, Sequence[int] | str]


def is_assessment(lesson: Lesson) -> bool:
    return lesson.kind in ASSESSMENT_KINDS


def assessment_questions(lesson: Lesson) -> QuerySet[Question]:
    return Question.objects.filter(lesson=lesson).order_by("order", "id")


def normalize_text(value: str) -> str:
    """Lower-case the text and collapse runs of white space, for short answers."""
    return re.sub(r"\s+", " ", value).strip().casefold()


# --- Starting an attempt ---------------------------------------------------------


@dataclass(frozen=True)
class AttemptCounts:
    used: int
    # None when the lesson has no attempt limit.
    remaining: int | None


def attempt_counts(lesson: Lesson, used: int) -> AttemptCounts:
    if lesson.max_attempts is None:
        return AttemptCounts(used=used, remaining=None)
    return AttemptCounts(used=used, remaining=max(lesson.max_attempts - used, 0))


def start_attempt(
    enrollment: Enrollment,
    lesson: Lesson,
    *,
    at: datetime | None = None,
    rng: random.Random | None = None,
) -> Attempt:
    """Return the learner's open attempt at the lesson, starting one when none is open.

    An open attempt past its deadline is closed as expired first, and
    counts as a used attempt. Raises AttemptLimitReached when the lesson's
    attempts are used up, and AssessmentError when an exam was passed
    already or the lesson has no questions. For a learner who must pass the
    lesson again to recertify, only attempts since it changed count.
    """
    started_at = at or timezone.now()
    lesson = lesson_of_course(enrollment, lesson)
    if not is_assessment(lesson):
        raise AssessmentError(
            f"“{lesson.title}” is a {lesson.get_kind_display().lower()} lesson, "
            "which has no questions to answer."
        )

    with transaction.atomic():
        locked = lock_enrollment(enrollment)
        attempts = Attempt.objects.filter(enrollment=locked, lesson=lesson)
        open_attempt = attempts.filter(status=AttemptStatus.OPEN).first()
        if open_attempt is not None:
            if not _is_past_deadline(open_attempt, started_at):
                return open_attempt
            _expire(open_attempt)

        _check_may_start(lesson, counted_attempts(attempts, locked, lesson))
        question_ids = _draw_questions(lesson, rng or random.SystemRandom())
        number = (attempts.aggregate(last=Max("number"))["last"] or 0) + 1
        attempt = Attempt.objects.create(
            enrollment=locked,
            lesson=lesson,
            number=number,
            question_ids=question_ids,
            started_at=started_at,
            deadline=_deadline(lesson, started_at),
        )
    logger.info(
        "Started attempt %s (number %s) of enrollment %s at lesson %s",
        attempt.pk,
        number,
        locked.pk,
        lesson.pk,
    )
    return attempt


def counted_attempts(
    attempts: QuerySet[Attempt], enrollment: Enrollment, lesson: Lesson
) -> QuerySet[Attempt]:
    """Return the attempts that count toward the lesson's limit and pass.

    All of them, unless the learner must pass the lesson again to
    recertify: then those started since the version that changed it.
    """
    since = retake_since(enrollment, lesson)
    return attempts if since is None else attempts.filter(started_at__gte=since)


def _check_may_start(lesson: Lesson, attempts: QuerySet[Attempt]) -> None:
    # The module page's lesson inline and imports can save an exam without
    # a pass mark, and such an exam could never be passed.
    if lesson.kind == LessonKind.EXAM and lesson.pass_mark is None:
        raise AssessmentError(
            f"“{lesson.title}” has no pass mark yet, so it cannot be taken. "
            "Ask your customer success manager to set one."
        )
    if lesson.kind == LessonKind.EXAM and attempts.filter(passed=True).exists():
        raise AssessmentError(
            f"You passed “{lesson.title}” already, so there is nothing to retake."
        )
    used = attempts.count()
    if lesson.max_attempts is not None and used >= lesson.max_attempts:
        raise AttemptLimitReached(
            f"You have used all {lesson.max_attempts} attempts at “{lesson.title}”. "
            "Ask your customer success manager if you need another one."
        )


def _draw_questions(lesson: Lesson, rng: random.Random) -> list[int]:
    """Pick the questions of a new attempt: a sample of each pool, maybe shuffled.

    Drawn questions keep the authored order unless the lesson shuffles.
    """
    authored = list(assessment_questions(lesson).values_list("pk", "pool"))
    if not authored:
        raise AssessmentError(
            f"“{lesson.title}” has no questions yet, so it cannot be started."
        )
    draw_size = lesson.questions_per_attempt
    chosen: set[int] = set()
    for members in _pools(authored).values():
        if draw_size and draw_size < len(members):
            chosen.update(rng.sample(members, draw_size))
        else:
            chosen.update(members)
    question_ids = [pk for pk, _pool in authored if pk in chosen]
    if lesson.shuffle_questions:
        rng.shuffle(question_ids)
    return question_ids


def _pools(authored: list[tuple[int, str]]) -> dict[str, list[int]]:
    """Group question ids by pool name, in authored order."""
    pools: dict[str, list[int]] = {}
    for pk, pool in authored:
        pools.setdefault(pool.strip(), []).append(pk)
    return pools


def _deadline(lesson: Lesson, started_at: datetime) -> datetime | None:
    if lesson.time_limit_minutes is None:
        return None
    return started_at + timedelta(minutes=lesson.time_limit_minutes)


def _is_past_deadline(attempt: Attempt, at: datetime) -> bool:
    return attempt.deadline is not None and at > attempt.deadline


def _expire(attempt: Attempt) -> None:
    """Close an attempt whose time ran out: no answers, score 0, not passed."""
    attempt.status = AttemptStatus.EXPIRED
    attempt.submitted_at = attempt.deadline
    attempt.score = Decimal(0)
    attempt.passed = False if attempt.lesson.pass_mark is not None else None
    attempt.save(update_fields=["status", "submitted_at", "score", "passed"])
    logger.info("Attempt %s expired at its deadline", attempt.pk)


# --- Submitting answers ------------------------------------------------------------


@dataclass(frozen=True)
class ScoredAnswer:
    question: Question
    choice_ids: list[int]
    text: str
    is_correct: bool | None
    points_awarded: int


def submit_attempt(
    enrollment: Enrollment,
    attempt_id: int,
    responses: Responses,
    *,
    at: datetime | None = None,
) -> Attempt:
    """Score an open attempt, store its answers and record the lesson's result.

    Raises AssessmentError, writing nothing, when a response names a
    question the attempt did not serve or a choice of another question.
    Raises AttemptClosed for an attempt submitted or expired already, and
    TimeLimitExceeded after the deadline; then the attempt is stored as
    expired and none of the answers are kept.
    """
    submitted_at = at or timezone.now()
    expired = False
    with transaction.atomic():
        locked = lock_enrollment(enrollment)
        attempt = (
            # Only the attempt row: locking the joined lesson would make every
            # learner's submission at this lesson wait for the others.
            Attempt.objects.select_for_update(of=("self",))
            .select_related("lesson")
            .get(pk=attempt_id, enrollment=locked)
        )
        if attempt.status != AttemptStatus.OPEN:
            raise AttemptClosed(
                f"Attempt {attempt.number} at “{attempt.lesson.title}” was "
                "submitted already; start a new attempt to answer again."
            )
        if _is_past_deadline(attempt, submitted_at):
            _expire(attempt)
            expired = True
        else:
            scored = score_responses(attempt, responses)
            _store_result(locked, attempt, scored, submitted_at)
    if expired:
        # Raised after the block, so the attempt stays closed as expired.
        raise TimeLimitExceeded(
            f"The time limit of {attempt.lesson.time_limit_minutes} minutes for "
            f"“{attempt.lesson.title}” passed before your answers arrived, so "
            "they were not accepted and the attempt counts as failed."
        )
    return attempt


def score_responses(attempt: Attempt, responses: Responses) -> list[ScoredAnswer]:
    """Check the responses against the served questions and score each of them.

    A served question without a response counts as answered wrong.
    """
    served = set(attempt.question_ids)
    foreign = sorted(set(responses) - served)
    if foreign:
        raise AssessmentError(
            f"Question {foreign[0]} was not part of attempt {attempt.number}, so "
            "the answers were not accepted. Reload the page and answer the "
            "questions shown."
        )
    questions = {
        question.pk: question
        for question in Question.objects.filter(pk__in=served).prefetch_related(
            "choices"
        )
    }
    return [
        _score_one(questions[pk], responses.get(pk))
        for pk in attempt.question_ids
        if pk in questions
    ]


def _score_one(
    question: Question, response: Sequence[int] | str | None
) -> ScoredAnswer:
    if question.kind in CHOICE_KINDS:
        chosen = _chosen_ids(question, response)
        correct = {choice.pk for choice in question.choices.all() if choice.is_correct}
        is_correct = bool(chosen) and set(chosen) == correct
        text = ""
    else:
        chosen = []
        text = response if isinstance(response, str) else ""
        if question.kind == QuestionKind.REFLECTION:
            return ScoredAnswer(question, [], text, None, 0)
        accepted = {
            normalize_text(line)
            for line in question.accepted_answers.splitlines()
            if line.strip()
        }
        is_correct = normalize_text(text) in accepted
    points = question.points if is_correct else 0
    return ScoredAnswer(question, chosen, text, is_correct, points)


def _chosen_ids(question: Question, response: Sequence[int] | str | None) -> list[int]:
    if response is None or isinstance(response, str):
        return []
    own = {choice.pk for choice in question.choices.all()}
    chosen = sorted(set(response))
    if not set(chosen) <= own:
        raise AssessmentError(
            f"Choice {sorted(set(chosen) - own)[0]} is not an option of question "
            f"{question.pk}, so the answers were not accepted. Reload the page "
            "and try again."
        )
    if question.kind != QuestionKind.MULTIPLE_CHOICE and len(chosen) > 1:
        raise AssessmentError(
            f"Question {question.pk} takes one answer, but {len(chosen)} were "
            "chosen. Pick one and submit again."
        )
    return chosen


def attempt_score(scored: Sequence[ScoredAnswer]) -> Decimal | None:
    """Return the points earned over the points possible, in percent.

    None when no served question is scored, as in a self-assessment.
    """
    possible = sum(
        item.question.points for item in scored if item.is_correct is not None
    )
    if not possible:
        return None
    earned = sum(item.points_awarded for item in scored)
    return (Decimal(earned) * MAX_SCORE / possible).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )


def _store_result(
    locked: Enrollment,
    attempt: Attempt,
    scored: list[ScoredAnswer],
    submitted_at: datetime,
) -> None:
    Answer.objects.bulk_create(
        Answer(
            attempt=attempt,
            question=item.question,
            choice_ids=item.choice_ids,
            text=item.text,
            is_correct=item.is_correct,
            points_awarded=item.points_awarded,
        )
        for item in scored
    )
    attempt.status = AttemptStatus.SUBMITTED
    attempt.submitted_at = submitted_at
    attempt.score = attempt_score(scored)
    pass_mark = attempt.lesson.pass_mark
    if pass_mark is not None and attempt.score is not None:
        attempt.passed = attempt.score >= pass_mark
    attempt.save(update_fields=["status", "submitted_at", "score", "passed"])
    logger.info(
        "Attempt %s of enrollment %s scored %s (passed=%s)",
        attempt.pk,
        locked.pk,
        attempt.score,
        attempt.passed,
    )
    if record_assessment_result(locked, attempt.lesson, attempt, submitted_at):
        announce_learning_change(locked.contact.account_id)


# --- Reading attempts for the portal -------------------------------------------------


@dataclass(frozen=True)
class ServedQuestion:
    question: Question
    # For a result page: the learner's answer; None while the attempt is open.
    answer: Answer | None = None


@dataclass(frozen=True)
class AssessmentState:
    lesson: Lesson
    attempts: list[Attempt]
    open_attempt: Attempt | None
    questions: list[ServedQuestion]
    counts: AttemptCounts
    # Why a new attempt cannot start; empty when it can.
    blocked_reason: str
    # Open attempts whose deadline passed; they are closed at the next start.
    overdue_ids: frozenset[int] = frozenset()
    # When the learner must pass the lesson again to recertify, the
    # publication of the version that changed it; earlier attempts do not
    # count. None otherwise.
    retake_since: datetime | None = None
    # The attempts started before retake_since, which the page lists apart.
    earlier_attempts: tuple[Attempt, ...] = ()
    # Whether an attempt since retake_since completes the lesson again: a
    # passed exam, or a submitted quiz.
    retake_met: bool = False

    @property
    def attempt_groups(self) -> list["AttemptGroup"]:
        """Return the attempts to list: those that count, then the earlier ones."""
        earlier_ids = {attempt.pk for attempt in self.earlier_attempts}
        current = [a for a in self.attempts if a.pk not in earlier_ids]
        groups = [
            AttemptGroup(before_change=False, attempts=current),
            AttemptGroup(before_change=True, attempts=list(self.earlier_attempts)),
        ]
        return [group for group in groups if group.attempts]


@dataclass(frozen=True)
class AttemptGroup:
    """Attempts listed together: those that count, or those before a change."""

    before_change: bool
    attempts: list[Attempt]


def assessment_state(
    enrollment: Enrollment, lesson: Lesson, at: datetime | None = None
) -> AssessmentState:
    """Collect the learner's attempts at a lesson and the open attempt's questions.

    Three queries at most, however many attempts, enrollments or questions
    there are: the attempts, and the open attempt's questions with their
    choices. A learner due for recertification adds three for the course's
    versions (courses.recertification).
    """
    now = at or timezone.now()
    attempts = list(
        Attempt.objects.filter(enrollment=enrollment, lesson=lesson).order_by("number")
    )
    since = retake_since(enrollment, lesson)
    # The attempts before a recertification's retake stay listed but do not
    # count toward the limit or as a pass.
    counted = [a for a in attempts if since is None or a.started_at >= since]
    earlier = tuple(a for a in attempts if since is not None and a.started_at < since)
    open_attempt = next(
        (
            attempt
            for attempt in attempts
            if attempt.status == AttemptStatus.OPEN
            and not _is_past_deadline(attempt, now)
        ),
        None,
    )
    # An open attempt past its deadline is closed when the next one starts,
    # so it already counts as used here.
    counts = attempt_counts(lesson, len(counted))
    questions = served_questions(open_attempt.question_ids) if open_attempt else []
    return AssessmentState(
        lesson=lesson,
        attempts=attempts,
        open_attempt=open_attempt,
        questions=questions,
        counts=counts,
        blocked_reason=_blocked_reason(lesson, counted, counts),
        retake_since=since,
        earlier_attempts=earlier,
        retake_met=since is not None
        and any(_completes_lesson(lesson, attempt) for attempt in counted),
        overdue_ids=frozenset(
            attempt.pk
            for attempt in attempts
            if attempt.status == AttemptStatus.OPEN and _is_past_deadline(attempt, now)
        ),
    )


def _completes_lesson(lesson: Lesson, attempt: Attempt) -> bool:
    # As courses.recertification.COUNTING_ATTEMPT: an exam completes when
    # passed, a quiz with any submission.
    if attempt.passed:
        return True
    return lesson.kind == LessonKind.QUIZ and attempt.status == AttemptStatus.SUBMITTED


def _blocked_reason(
    lesson: Lesson, attempts: list[Attempt], counts: AttemptCounts
) -> str:
    if lesson.kind == LessonKind.EXAM and any(a.passed for a in attempts):
        return "You passed this exam."
    if lesson.kind == LessonKind.EXAM and lesson.pass_mark is None:
        return "This exam has no pass mark yet, so it cannot be taken."
    if counts.remaining == 0:
        return f"You have used all {lesson.max_attempts} attempts."
    return ""


def served_questions(
    question_ids: Sequence[int], answers: Sequence[Answer] = ()
) -> list[ServedQuestion]:
    """Return the questions in the order served, with choices prefetched and answers."""
    by_id = {
        question.pk: question
        for question in Question.objects.filter(pk__in=question_ids).prefetch_related(
            "choices"
        )
    }
    answer_by_question = {answer.question_id: answer for answer in answers}
    return [
        ServedQuestion(question=by_id[pk], answer=answer_by_question.get(pk))
        for pk in question_ids
        if pk in by_id
    ]


def attempt_result(attempt: Attempt) -> list[ServedQuestion]:
    """Return a submitted attempt's questions with the learner's answers."""
    return served_questions(attempt.question_ids, list(attempt.answers.all()))


def reveals_correct_answers(
    attempt: Attempt, enrollment: Enrollment | None = None
) -> bool:
    """Return whether the result page may show the correct choices.

    A quiz shows them after every attempt. An exam shows them only once it
    is passed or no attempt is left, so a retake cannot copy them. A pass
    from before a recertification's retake does not count. Pass the
    attempt's enrollment when it is loaded, to save reading it again.
    """
    lesson = attempt.lesson
    if lesson.kind != LessonKind.EXAM:
        return True
    attempts = counted_attempts(
        Attempt.objects.filter(enrollment_id=attempt.enrollment_id, lesson=lesson),
        enrollment or attempt.enrollment,
        lesson,
    )
    if attempts.filter(passed=True).exists():
        return True
    return lesson.max_attempts is not None and attempts.count() >= lesson.max_attempts
