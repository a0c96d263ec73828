"""Recertification after a changed exam, in a real browser.

As in test_assessments.py, the tests drive headless Chromium against the
live server and save screenshots under var/test-artifacts/browser/.
"""

from collections.abc import Callable
from decimal import Decimal

import pytest
from playwright.sync_api import Page, expect

from courses.assessments import Responses, start_attempt, submit_attempt
from courses.models import CompletionRule, Lesson, LessonKind, QuestionKind
from courses.services import create_sign_in_url, enroll
from courses.versions import publish_version, record_first_version
from tests.browser.test_assessments import (
    answer_all_right,
    make_assessed_course,
    save_screenshot,
    sign_in_with_link,
)
from tests.factories import make_contact

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

OpenPage = Callable[[], Page]


def right_answers(exam: Lesson) -> Responses:
    """Return the responses that answer every question of the exam right."""
    responses: dict[int, list[int] | str] = {}
    for question in exam.questions.all():
        if question.kind == QuestionKind.SHORT_ANSWER:
            responses[question.pk] = "Export"
        else:
            correct = question.choices.filter(is_correct=True)
            responses[question.pk] = list(correct.values_list("pk", flat=True))
    return responses


def test_changed_exam_is_passed_again(new_page: OpenPage, site_url: str) -> None:
    contact = make_contact(first_name="Ada")
    course, exam = make_assessed_course(LessonKind.EXAM, pass_mark=Decimal(60))
    course.completion_rule = CompletionRule.PASS_EXAM
    course.save()
    record_first_version(course)
    enrollment, _created = enroll(contact, course)
    attempt = start_attempt(enrollment, exam)
    submit_attempt(enrollment, attempt.pk, right_answers(exam))
    question = exam.questions.get(kind=QuestionKind.SINGLE_CHOICE)
    question.text = "Where do you find saved reports?"
    question.save()
    publish_version(course, requires_recertification=True)
    page = new_page()
    sign_in_with_link(page, create_sign_in_url(contact))

    page.goto(f"{site_url}/learn/courses/{course.slug}/")
    panel = page.locator(".version-panel")
    expect(panel.locator("h2")).to_have_text("Recertification due")
    expect(panel).to_contain_text("your earlier pass does not count")
    expect(page.locator(".outline .state")).to_have_text(["Not started", "Pass again"])
    save_screenshot(page, "recertification-course")

    panel.get_by_role("link", name=exam.title).click()
    expect(page.locator(".assessment")).not_to_contain_text("You passed this exam.")
    page.get_by_role("button", name="Start").click()
    answer_all_right(page)
    page.get_by_role("button", name="Submit answers").click()
    expect(page.locator(".result-summary")).to_contain_text("Passed")

    page.goto(f"{site_url}/learn/courses/{course.slug}/")
    expect(page.locator(".version-panel")).to_have_count(0)
    expect(page.locator(".certificate-panel")).to_contain_text("for version 2")
    save_screenshot(page, "recertified-course")
