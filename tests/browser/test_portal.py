"""The learner portal in a real browser: sign-in links, lessons, completion, access.

Each test drives headless Chromium against the live server. The tests commit
their rows so that the server's thread can read them, and serialized_rollback
restores the rows seeded by data migrations after each flush.
"""

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core import mail
from playwright.sync_api import Page, expect

from courses.models import Course, EnrollmentStatus, Lesson, LessonProgress
from courses.services import (
    LessonSpec,
    ModuleSpec,
    create_sign_in_url,
    enroll,
    ensure_course,
)
from tests.factories import make_contact

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

OpenPage = Callable[[], Page]

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def make_onboarding_course(
    slug: str = "workspace-onboarding", title: str = "Workspace onboarding"
) -> tuple[Course, list[Lesson]]:
    """Create a published course of two modules and three lessons, in course order."""
    course, _created = ensure_course(
        slug=slug,
        title=title,
        summary="Set up your workspace and invite your team.",
        modules=(
            ModuleSpec(
                title="Set up",
                lessons=(
                    LessonSpec("Create your workspace", "Pick a name and a region."),
                    LessonSpec("Invite your team", "Send invitations from Settings."),
                ),
            ),
            ModuleSpec(
                title="First results",
                lessons=(LessonSpec("Build a first report", "Open Reports."),),
            ),
        ),
    )
    lessons = list(
        Lesson.objects.filter(module__course=course).order_by("module__order", "order")
    )
    return course, lessons


def sign_in_with_link(page: Page, url: str) -> None:
    """Open a sign-in link and press the confirmation button."""
    page.goto(url)
    expect(page.locator("h1")).to_have_text("Sign in to Nudgepath")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("My courses")


def test_learner_completes_course_from_link(
    new_page: OpenPage, site_url: str, tmp_path: Path
) -> None:
    contact = make_contact(first_name="Ada")
    course, lessons = make_onboarding_course()
    enrollment, _created = enroll(contact, course)
    url = create_sign_in_url(contact)
    page = new_page()

    assert url.startswith(f"{site_url}/learn/sign-in/")
    sign_in_with_link(page, url)

    assert page.url == f"{site_url}/learn/"
    expect(page.locator("main")).to_contain_text("Welcome, Ada.")
    card = page.locator(".course-card")
    expect(card).to_have_count(1)
    expect(card.locator("h2")).to_have_text("Workspace onboarding")
    expect(card.locator(".status")).to_have_text("Active")
    expect(card).to_contain_text("0 of 3 required lessons completed (0%)")

    card.get_by_role("link", name="Workspace onboarding", exact=True).click()
    expect(page.locator("h1")).to_have_text("Workspace onboarding")
    expect(page.locator(".outline .state")).to_have_text(["Not started"] * 3)

    page.get_by_role("link", name=lessons[0].title, exact=True).click()
    for position, lesson in enumerate(lessons):
        expect(page.locator("h1")).to_have_text(lesson.title)
        expect(page.locator(".lesson-body")).to_contain_text(lesson.body)
        page.get_by_role("button", name="Mark complete").click()
        if position + 1 < len(lessons):
            expect(page.locator(".messages")).to_have_text(
                f"Lesson “{lesson.title}” is marked complete."
            )

    # Completing the last required lesson leads back to the course page.
    assert page.url == f"{site_url}/learn/courses/{course.slug}/"
    expect(page.locator(".messages")).to_have_text(
        "You completed Workspace onboarding."
    )
    expect(page.locator("main .status")).to_have_text("Completed")
    expect(page.locator("main")).to_contain_text(
        "3 of 3 required lessons completed (100%)"
    )
    expect(page.locator(".outline .state")).to_have_text(["Completed"] * 3)
    expect(page.get_by_role("link", name="Resume")).to_have_count(0)

    screenshot = tmp_path / "course.png"
    page.screenshot(path=screenshot, full_page=True)
    content = screenshot.read_bytes()
    assert content.startswith(PNG_SIGNATURE)
    assert len(content) > 1000

    page.get_by_role("link", name="My courses").first.click()
    expect(card.locator(".status")).to_have_text("Completed")
    expect(card).to_contain_text("3 of 3 required lessons completed (100%)")

    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert enrollment.completed_at is not None
    progress = LessonProgress.objects.filter(enrollment=enrollment)
    assert sorted(row.lesson_id for row in progress) == sorted(
        lesson.pk for lesson in lessons
    )
    assert all(row.completed_at is not None for row in progress)


def test_used_link_offers_new_link(new_page: OpenPage, site_url: str) -> None:
    contact = make_contact()
    url = create_sign_in_url(contact)
    signed_in = new_page()
    sign_in_with_link(signed_in, url)

    again = signed_in.goto(url)

    assert again is not None
    assert again.status == 410
    expect(signed_in.locator("h1")).to_have_text("This sign-in link no longer works")
    expect(signed_in.get_by_role("link", name="Go to my courses")).to_be_visible()

    # A visitor without a session, as on another device, gets the same page
    # and requests a new link from it.
    page = new_page()
    response = page.goto(url)

    assert response is not None
    assert response.status == 410
    expect(page.locator("h1")).to_have_text("This sign-in link no longer works")
    expect(page.get_by_role("link", name="Go to my courses")).to_have_count(0)
    expect(page.get_by_role("heading", name="Request a new link")).to_be_visible()
    expect(page.get_by_role("button", name="Sign in")).to_have_count(0)

    page.get_by_label("Email address").fill(contact.email)
    page.get_by_role("button", name="Email me a sign-in link").click()

    expect(page.locator("h1")).to_have_text("Check your email")
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == [contact.email]
    new_url = next(
        line for line in mail.outbox[0].body.splitlines() if line.startswith(site_url)
    )
    assert new_url != url
    sign_in_with_link(page, new_url)


def test_other_contacts_course_is_not_found(new_page: OpenPage, site_url: str) -> None:
    learner = make_contact()
    other = make_contact()
    own_course, _own_lessons = make_onboarding_course("own-course", "Own course")
    course, lessons = make_onboarding_course()
    enroll(learner, own_course)
    enroll(other, course)
    page = new_page()
    sign_in_with_link(page, create_sign_in_url(learner))

    course_response = page.goto(f"{site_url}/learn/courses/{course.slug}/")

    assert course_response is not None
    assert course_response.status == 404
    expect(page.locator("body")).to_contain_text(re.compile("not found", re.I))
    expect(page.locator("body")).not_to_contain_text(course.title)

    lesson_response = page.goto(
        f"{site_url}/learn/courses/{course.slug}/lessons/{lessons[0].pk}/"
    )

    assert lesson_response is not None
    assert lesson_response.status == 404
    expect(page.locator("body")).not_to_contain_text(lessons[0].title)
    # A lesson page records a view, so no progress row means the view never ran.
    assert not LessonProgress.objects.exists()

    page.goto(f"{site_url}/learn/")
    expect(page.locator(".course-card h2")).to_have_text(["Own course"])


def request_link_page_text(page: Page, site_url: str, email: str) -> str:
    """Request a sign-in link for an address and return the text of the reply."""
    page.goto(f"{site_url}/learn/sign-in/")
    page.get_by_label("Email address").fill(email)
    page.get_by_role("button", name="Email me a sign-in link").click()
    expect(page.locator("h1")).to_have_text("Check your email")
    return f"{page.url}\n{page.title()}\n{page.locator('body').inner_text()}"


def test_link_request_reveals_no_contact(new_page: OpenPage, site_url: str) -> None:
    known = make_contact(email="known@example.com")

    known_text = request_link_page_text(new_page(), site_url, known.email)
    sent_after_known = len(mail.outbox)
    unknown_text = request_link_page_text(new_page(), site_url, "nobody@example.com")

    assert known_text == unknown_text
    # Only the known address got an email, so the two requests really took
    # different paths behind the identical page.
    assert sent_after_known == 1
    assert len(mail.outbox) == 1
    assert mail.outbox[0].to == ["known@example.com"]
