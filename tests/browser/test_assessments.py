"""Quizzes, exams and certificates in a real browser.

Each test drives headless Chromium against the live server, as in
test_portal.py. Screenshots of the key pages are saved under
var/test-artifacts/browser/, which git ignores, for a person to look at.
"""

import io
import re
from collections.abc import Callable
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone
from playwright.sync_api import Browser, Page, ViewportSize, expect
from pypdf import PdfReader

from courses.models import (
    Attempt,
    Certificate,
    CompletionRule,
    Course,
    EnrollmentStatus,
    Lesson,
    LessonKind,
    QuestionKind,
)
from courses.services import (
    LessonSpec,
    ModuleSpec,
    create_sign_in_url,
    enroll,
    ensure_course,
)
from tests.browser.conftest import TIMEOUT_MS
from tests.factories import make_contact
from tests.portal.helpers import add_question

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

OpenPage = Callable[[], Page]

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "browser"

# A phone in portrait, in CSS pixels.
PHONE_VIEWPORT: ViewportSize = {"width": 390, "height": 844}


def save_screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 1000
    return path


def make_assessed_course(
    kind: str = LessonKind.QUIZ, **rules: object
) -> tuple[Course, Lesson]:
    """Create a course of a text lesson and an assessment of three questions."""
    course, _created = ensure_course(
        slug="reporting-basics",
        title="Reporting basics",
        summary="Build and share your first report.",
        modules=(
            ModuleSpec(
                title="Reports",
                lessons=(
                    LessonSpec("Open Reports", "Reports are in the left menu."),
                    LessonSpec(
                        "Check what you learned", "Answer three questions.", kind
                    ),
                ),
            ),
        ),
    )
    lesson = Lesson.objects.get(module__course=course, kind=kind)
    for name, value in rules.items():
        setattr(lesson, name, value)
    lesson.save()
    add_question(
        lesson,
        QuestionKind.SINGLE_CHOICE,
        "Where are reports?",
        (("In the left menu", True), ("Under Billing", False)),
        feedback="Reports sit in the left menu of every page.",
    )
    add_question(
        lesson,
        QuestionKind.MULTIPLE_CHOICE,
        "Which can you share a report with?",
        (("A teammate", True), ("A public link", True), ("A printer driver", False)),
    )
    add_question(
        lesson,
        QuestionKind.SHORT_ANSWER,
        "Which button exports a report?",
        accepted_answers="Export",
    )
    return course, lesson


def sign_in_with_link(page: Page, url: str) -> None:
    page.goto(url)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("My courses")


def open_assessment(page: Page, site_url: str, course: Course, lesson: Lesson) -> None:
    page.goto(f"{site_url}/learn/courses/{course.slug}/lessons/{lesson.pk}/")
    expect(page.locator("h1")).to_have_text(lesson.title)


def answer_all_right(page: Page) -> None:
    page.get_by_label("In the left menu").check()
    page.get_by_label("A teammate").check()
    page.get_by_label("A public link").check()
    page.get_by_label("Your answer").fill("  export ")


def test_learner_passes_quiz(new_page: OpenPage, site_url: str) -> None:
    contact = make_contact(first_name="Ada")
    course, quiz = make_assessed_course(LessonKind.QUIZ, pass_mark=Decimal(60))
    enroll(contact, course)
    page = new_page()
    sign_in_with_link(page, create_sign_in_url(contact))

    open_assessment(page, site_url, course, quiz)
    expect(page.get_by_role("button", name="Mark complete")).to_have_count(0)
    expect(page.locator(".rules")).to_contain_text("Pass mark: 60%")
    page.get_by_role("button", name="Start").click()
    expect(page.locator("fieldset.question")).to_have_count(3)
    save_screenshot(page, "quiz-form")

    # Keyboard only: Tab reaches the first choice, Space picks it.
    page.locator("fieldset.question input").first.focus()
    page.keyboard.press("Space")
    expect(page.get_by_label("In the left menu")).to_be_checked()
    page.get_by_label("A teammate").check()
    page.get_by_label("Your answer").fill("Export")
    page.get_by_role("button", name="Submit answers").click()

    # Two of three right: the multiple-choice answer misses a correct choice.
    expect(page.locator(".result-summary")).to_contain_text("Score: 66.67%")
    expect(page.locator(".result-summary")).to_contain_text("Passed")
    expect(page.locator(".feedback")).to_contain_text(
        "Reports sit in the left menu of every page."
    )
    expect(page.locator(".question-result .verdict")).to_have_text(
        ["Correct", "Not correct", "Correct"]
    )
    save_screenshot(page, "quiz-result")

    page.get_by_role("link", name=f"Back to {quiz.title}").click()
    expect(page.locator("table.attempts tbody tr")).to_have_count(1)
    expect(page.get_by_role("button", name="Start a new attempt")).to_be_visible()


def test_learner_fails_and_retakes_exam(new_page: OpenPage, site_url: str) -> None:
    contact = make_contact(first_name="Grace", last_name="Hopper")
    course, exam = make_assessed_course(
        LessonKind.EXAM, pass_mark=Decimal(100), max_attempts=2, time_limit_minutes=20
    )
    course.completion_rule = CompletionRule.PASS_EXAM
    course.save()
    enrollment, _created = enroll(contact, course)
    page = new_page()
    sign_in_with_link(page, create_sign_in_url(contact))

    open_assessment(page, site_url, course, exam)
    expect(page.locator(".rules")).to_contain_text("Attempts: 0 of 2 used")
    expect(page.locator(".rules")).to_contain_text("Time limit: 20 minutes")
    page.get_by_role("button", name="Start").click()
    page.get_by_label("Under Billing").check()
    page.get_by_role("button", name="Submit answers").click()
    expect(page.locator(".result-summary")).to_contain_text("Score: 0%")
    expect(page.locator(".result-summary")).to_contain_text("Not passed")
    save_screenshot(page, "exam-failed")

    page.get_by_role("link", name=f"Back to {exam.title}").click()
    expect(page.locator(".rules")).to_contain_text("Attempts: 1 of 2 used")
    page.get_by_role("button", name="Start a new attempt").click()
    answer_all_right(page)
    page.get_by_role("button", name="Submit answers").click()
    expect(page.locator(".result-summary")).to_contain_text("Score: 100%")
    expect(page.locator(".result-summary")).to_contain_text("Passed")
    expect(page.locator("main")).to_contain_text(f"You completed {course.title}.")

    page.get_by_role("link", name=f"Back to {exam.title}").click()
    expect(page.locator(".assessment")).to_contain_text("You passed this exam.")
    expect(page.get_by_role("button", name=re.compile("Start"))).to_have_count(0)
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert enrollment.score == Decimal(100)


def test_certificate_download_and_verify(
    new_page: OpenPage, site_url: str, tmp_path: Path
) -> None:
    contact = make_contact(first_name="Katherine", last_name="Johnson")
    course, quiz = make_assessed_course(LessonKind.QUIZ)
    course.certificate_valid_days = 365
    course.save()
    enroll(contact, course)
    page = new_page()
    sign_in_with_link(page, create_sign_in_url(contact))

    # Complete the text lesson with its button, then the quiz by submitting.
    page.goto(f"{site_url}/learn/courses/{course.slug}/")
    page.get_by_role("link", name="Open Reports").click()
    page.get_by_role("button", name="Mark complete").click()
    expect(page.locator("h1")).to_have_text(quiz.title)
    page.get_by_role("button", name="Start").click()
    answer_all_right(page)
    page.get_by_role("button", name="Submit answers").click()
    expect(page.locator("main")).to_contain_text(f"You completed {course.title}.")

    page.get_by_role("link", name="Open the course page").click()
    expect(page.locator(".certificate-panel")).to_be_visible()
    save_screenshot(page, "course-with-certificate")
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Download the certificate (PDF)").click()
    download = download_info.value
    assert download.suggested_filename == f"certificate-{course.slug}.pdf"
    pdf_path = tmp_path / download.suggested_filename
    download.save_as(pdf_path)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "certificate.pdf").write_bytes(pdf_path.read_bytes())

    certificate = Certificate.objects.get()
    text = "\n".join(
        pdf_page.extract_text()
        for pdf_page in PdfReader(io.BytesIO(pdf_path.read_bytes())).pages
    )
    assert "Katherine Johnson" in text
    assert course.title in text
    verify_url = f"{site_url}/learn/certificates/{certificate.code}/"
    assert verify_url in text

    # Anyone can open the verification URL printed on the PDF.
    visitor = new_page()
    response = visitor.goto(verify_url)
    assert response is not None
    assert response.status == 200
    expect(visitor.locator("h1")).to_have_text("Certificate verification")
    expect(visitor.locator("main")).to_contain_text("This certificate is valid")
    expect(visitor.locator("dl")).to_contain_text("Katherine Johnson")
    expect(visitor.locator("dl")).to_contain_text(course.title)
    expect(visitor.locator("main")).not_to_contain_text(contact.email)
    save_screenshot(visitor, "certificate-verification")

    unknown = visitor.goto(f"{site_url}/learn/certificates/{'0' * 32}/")
    assert unknown is not None
    assert unknown.status == 404
    expect(visitor.locator("h1")).to_have_text("Certificate not found")


def test_quiz_fits_phone_width(browser: Browser, site_url: str) -> None:
    contact = make_contact()
    course, quiz = make_assessed_course(LessonKind.QUIZ)
    enroll(contact, course)
    context = browser.new_context(viewport=PHONE_VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        sign_in_with_link(page, create_sign_in_url(contact))
        open_assessment(page, site_url, course, quiz)
        page.get_by_role("button", name="Start").click()
        expect(page.locator("fieldset.question")).to_have_count(3)

        root = "document.documentElement"
        overflow = page.evaluate(f"{root}.scrollWidth - {root}.clientWidth")
        assert overflow <= 0
        submit_box = page.get_by_role("button", name="Submit answers").bounding_box()
        assert submit_box is not None
        assert submit_box["x"] + submit_box["width"] <= PHONE_VIEWPORT["width"]
        save_screenshot(page, "quiz-phone")
    finally:
        context.close()


def test_exam_countdown_and_late_submit(new_page: OpenPage, site_url: str) -> None:
    contact = make_contact()
    course, exam = make_assessed_course(
        LessonKind.EXAM, pass_mark=Decimal(50), time_limit_minutes=20
    )
    enroll(contact, course)
    page = new_page()
    sign_in_with_link(page, create_sign_in_url(contact))
    open_assessment(page, site_url, course, exam)
    page.get_by_role("button", name="Start").click()

    # The countdown shows the time left from the server's deadline.
    clock = page.locator("#exam-timer-clock")
    expect(clock).to_have_text(re.compile(r"^(20:00|19:5\d)$"))
    announcer = page.locator("#exam-timer-announce")
    expect(announcer).to_have_attribute("aria-live", "polite")
    # Nothing is announced on opening, because the visible text shows the time.
    expect(announcer).to_have_text("")

    # The deadline moves to 12 seconds from now, and the page is reloaded.
    attempt = Attempt.objects.get(enrollment__contact=contact, lesson=exam)
    attempt.deadline = timezone.now() + timedelta(seconds=12)
    attempt.save(update_fields=["deadline"])
    page.reload()
    expect(clock).to_have_text(re.compile(r"^0:1[0-2]$"))
    expect(page.locator("#exam-timer")).to_have_class(re.compile("exam-timer-warning"))
    # Screen readers hear the 10-second mark, then the end, not every second.
    expect(announcer).to_have_text("10 seconds left to submit.", timeout=5_000)
    expect(page.locator("#exam-timer-expired")).to_be_visible(timeout=15_000)
    expect(announcer).to_have_text(
        "Time is up. Answers submitted now are not accepted."
    )
    save_screenshot(page, "exam-time-up")

    # The server still rejects answers submitted after the deadline.
    answer_all_right(page)
    page.get_by_role("button", name="Submit answers").click()
    expect(page.locator("main")).to_contain_text("passed before your answers arrived")
    attempt.refresh_from_db()
    assert attempt.score is None or attempt.score == 0
