"""Portal views for quizzes, exams and self-assessments.

The lesson page (courses.views.lesson) shows the assessment; these views
start attempts, take submissions and show results. Each looks the lesson up
through the signed-in contact's own enrollment, and the attempt through
that enrollment, so another learner's attempt is a 404.
"""

import logging
import re

from django.contrib import messages
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_POST

from courses.assessments import (
    AssessmentError,
    Responses,
    attempt_result,
    reveals_correct_answers,
    start_attempt,
    submit_attempt,
)
from courses.models import Attempt, AttemptStatus
from courses.services import lesson_path
from courses.views import contact_required, enrolled_lesson
from customers.models import Contact

logger = logging.getLogger(__name__)

# Choice answers are named q-<question id>, typed answers t-<question id>.
ANSWER_FIELD = re.compile(r"^([qt])-(\d+)$")


@contact_required
@require_POST
def start(
    request: HttpRequest, contact: Contact, slug: str, lesson_id: int
) -> HttpResponse:
    enrollment, lesson = enrolled_lesson(contact, slug, lesson_id)
    try:
        start_attempt(enrollment, lesson)
    except AssessmentError as exc:
        logger.info(
            "Attempt at lesson %s by enrollment %s not started: %s",
            lesson.pk,
            enrollment.pk,
            type(exc).__name__,
        )
        messages.error(request, str(exc))
    return redirect(lesson_path(enrollment.course, lesson))


@contact_required
@require_POST
def submit(
    request: HttpRequest, contact: Contact, slug: str, lesson_id: int, attempt_id: int
) -> HttpResponse:
    enrollment, lesson = enrolled_lesson(contact, slug, lesson_id)
    attempt = get_object_or_404(
        Attempt, pk=attempt_id, enrollment=enrollment, lesson=lesson
    )
    try:
        responses = parse_responses(request.POST)
        submit_attempt(enrollment, attempt.pk, responses)
    except AssessmentError as exc:
        logger.info(
            "Submission of attempt %s by enrollment %s rejected: %s",
            attempt.pk,
            enrollment.pk,
            exc,
        )
        messages.error(request, str(exc))
        return redirect(lesson_path(enrollment.course, lesson))
    return redirect(
        "portal:attempt", slug=slug, lesson_id=lesson.pk, attempt_id=attempt.pk
    )


def parse_responses(data: QueryDict) -> Responses:
    """Read the answers: q-<id> fields carry choice ids, t-<id> fields typed text.

    Raises AssessmentError for a choice value that is not a whole number.
    """
    responses: dict[int, list[int] | str] = {}
    for name in data:
        match = ANSWER_FIELD.match(name)
        if match is None:
            continue
        prefix, question_id = match.group(1), int(match.group(2))
        if prefix == "t":
            responses[question_id] = data.get(name, "")
            continue
        values = data.getlist(name)
        if not all(value.isdigit() for value in values):
            raise AssessmentError(
                f"The answer to question {question_id} is not one of its choices; "
                "reload the page and pick a choice."
            )
        responses[question_id] = [int(value) for value in values]
    return responses


@contact_required
@require_GET
def result(
    request: HttpRequest, contact: Contact, slug: str, lesson_id: int, attempt_id: int
) -> HttpResponse:
    enrollment, lesson = enrolled_lesson(contact, slug, lesson_id)
    attempt = get_object_or_404(
        Attempt.objects.exclude(status=AttemptStatus.OPEN),
        pk=attempt_id,
        enrollment=enrollment,
        lesson=lesson,
    )
    context = {
        "course": enrollment.course,
        "enrollment": enrollment,
        "lesson": lesson,
        "attempt": attempt,
        "questions": attempt_result(attempt),
        "reveal_answers": reveals_correct_answers(attempt, enrollment),
    }
    return render(request, "portal/attempt_result.html", context)
