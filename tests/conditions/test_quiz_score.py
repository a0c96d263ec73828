"""quiz_score over a course or one lesson, against averages made in Python."""

import operator
from datetime import timedelta
from decimal import Decimal

import pytest

from conditions import EvaluationContext, compile_condition
from courses.models import Enrollment, Lesson, LessonProgress, Module
from customers.models import Contact
from tests.factories import NOW, make_contact
from tests.triggers.factories import make_course

pytestmark = pytest.mark.django_db

OPERATORS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
}
# Each contact's (quiz score, final score, days before NOW completed).
SCORES = [(90, 70, 1), (60, 80, 1), (80, 80, 3), (None, 95, 2), (100, 40, -1)]


def build_scores():
    course = make_course(slug="analytics")
    module = Module.objects.create(course=course, title="Basics", order=1)
    quiz = Lesson.objects.create(module=module, title="Quiz", kind="quiz", order=1)
    final = Lesson.objects.create(module=module, title="Final", kind="quiz", order=2)
    results = {}
    for quiz_score, final_score, days_ago in SCORES:
        contact = make_contact()
        enrollment = Enrollment.objects.create(
            contact=contact,
            course=course,
            source="manual",
            enrolled_at=NOW - timedelta(days=30),
        )
        # A score completed after NOW (days_ago < 0) is not known as of NOW.
        completed = NOW - timedelta(days=days_ago)
        known = {}
        for lesson, score in ((quiz, quiz_score), (final, final_score)):
            if score is None:
                continue
            LessonProgress.objects.create(
                enrollment=enrollment,
                lesson=lesson,
                started_at=completed - timedelta(hours=1),
                completed_at=completed,
                score=Decimal(score),
            )
            if days_ago >= 0:
                known[lesson.title] = score
        results[contact.pk] = known
    make_contact()  # never enrolled
    return results


def expected(results, op, value, lesson=None):
    chosen = set()
    for contact, known in results.items():
        scores = [known[lesson]] if lesson in known else []
        if lesson is None:
            scores = list(known.values())
        if scores and OPERATORS[op](sum(scores) / len(scores), value):
            chosen.add(contact)
    return chosen


def matched(tree):
    condition = compile_condition(tree, EvaluationContext("contact", NOW))
    return set(Contact.objects.filter(condition).values_list("pk", flat=True))


@pytest.mark.parametrize("op", list(OPERATORS))
@pytest.mark.parametrize("value", [70, 75, 80])
def test_course_average_comparisons(op, value):
    results = build_scores()
    tree = {"kind": "quiz_score", "course": "analytics", "op": op, "value": value}

    assert matched(tree) == expected(results, op, value)


@pytest.mark.parametrize("op", [">=", "<"])
def test_one_lesson_and_its_negation(op):
    results = build_scores()
    tree = {
        "kind": "quiz_score",
        "course": "analytics",
        "lesson": "Final",
        "op": op,
        "value": 80,
    }
    everyone = set(Contact.objects.values_list("pk", flat=True))

    assert matched(tree) == expected(results, op, 80, lesson="Final")
    # Without a score the comparison is false, so its negation is true.
    assert matched({"not": tree}) == everyone - expected(results, op, 80, "Final")
