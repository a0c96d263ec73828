"""Search, the champion's team pages and the staff preview in Chromium.

Each test runs at a phone's width (375 CSS pixels) and moves through the
page with the keyboard only: Tab to a labelled control or link, type,
and press Enter.
"""

from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from django.test import Client
from playwright.sync_api import Page, ViewportSize, expect

from courses.models import Lesson, LessonProgress, Module
from courses.services import (
    LessonSpec,
    ModuleSpec,
    complete_lesson,
    enroll,
    ensure_course,
    portal_user_for,
)
from tests.factories import make_account, make_contact

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

OpenPage = Callable[[], Page]

PHONE: ViewportSize = {"width": 375, "height": 740}
# Tab presses allowed to reach a control; the header has fewer links.
MAX_TABS = 30


def signed_in_page(new_page: OpenPage, site_url: str, user: User) -> Page:
    """Return a phone-sized page whose browser carries the user's session."""
    client = Client()
    client.force_login(user)
    page = new_page()
    page.set_viewport_size(PHONE)
    page.context.add_cookies(
        [
            {
                "name": "sessionid",
                "value": client.cookies["sessionid"].value,
                "url": site_url,
            }
        ]
    )
    return page


def tab_to(page: Page, selector: str) -> None:
    """Press Tab until the element matching the selector has the focus."""
    target = page.locator(selector)
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if target.evaluate("element => element === document.activeElement"):
            return
    raise AssertionError(f"{selector} was not reached with {MAX_TABS} Tab presses")


def assert_fits_phone(page: Page) -> None:
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 0, f"the page is {overflow} px wider than the phone"


def make_reporting_course() -> tuple[int, Lesson]:
    course, _created = ensure_course(
        slug="reporting",
        title="Reporting",
        summary="Reports for your team.",
        modules=(
            ModuleSpec(
                title="Dashboards",
                lessons=(
                    LessonSpec("Build a dashboard", "Pick the charts for the week."),
                    LessonSpec("Share it", "Send the link to your team."),
                ),
            ),
        ),
    )
    lesson = Lesson.objects.get(module__course=course, title="Build a dashboard")
    return course.pk, lesson


def test_learner_searches_with_keyboard(new_page: OpenPage, site_url: str) -> None:
    contact = make_contact(first_name="Ada")
    course_id, lesson = make_reporting_course()
    enroll(contact, Module.objects.get(course_id=course_id).course)
    page = signed_in_page(new_page, site_url, portal_user_for(contact))

    page.goto(f"{site_url}/learn/")
    tab_to(page, "#home-search")
    expect(page.get_by_label("Search courses and lessons")).to_be_focused()
    page.keyboard.type("charts")
    page.keyboard.press("Enter")

    expect(page.locator("h1")).to_have_text("Search courses and lessons")
    results = page.locator(".search-results li")
    expect(results).to_have_count(1)
    expect(results.locator("h3")).to_have_text(lesson.title)
    expect(results.locator("mark").first).to_have_text("charts")
    assert_fits_phone(page)

    tab_to(page, ".search-results a")
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text(lesson.title)


def test_champion_reads_team_on_phone(new_page: OpenPage, site_url: str) -> None:
    account = make_account(name="Acme")
    champion = make_contact(account, first_name="Chloe", is_champion=True)
    teammate = make_contact(account, first_name="Tom", last_name="Mate")
    make_contact(make_account(), first_name="Olga")
    course_id, lesson = make_reporting_course()
    enrollment, _created = enroll(
        teammate, Module.objects.get(course_id=course_id).course
    )
    complete_lesson(enrollment, lesson)
    page = signed_in_page(new_page, site_url, portal_user_for(champion))

    page.goto(f"{site_url}/learn/")
    tab_to(page, "a[href='/learn/team/']")
    page.keyboard.press("Enter")

    expect(page.locator("h1")).to_have_text("Your team at Acme")
    expect(page.locator("main")).not_to_contain_text("Olga")
    expect(page.locator("main")).to_contain_text("1 of 2 required lessons (50%)")
    # The table scrolls inside its region, so the page itself fits.
    assert_fits_phone(page)
    tab_to(page, ".table-scroll")
    tab_to(page, f"a[href='/learn/team/{teammate.pk}/']")
    page.keyboard.press("Enter")

    expect(page.locator("h1")).to_have_text("Tom Mate")
    assert_fits_phone(page)


def test_staff_preview_writes_nothing(new_page: OpenPage, site_url: str) -> None:
    course_id, lesson = make_reporting_course()
    contact = make_contact(first_name="Grace")
    staff = User.objects.create_superuser("csm", "csm@example.com", "a password")
    page = signed_in_page(new_page, site_url, staff)

    course_slug = Module.objects.get(course_id=course_id).course.slug
    page.goto(
        f"{site_url}/admin/courses/course/preview/{course_slug}/?contact={contact.pk}"
    )
    expect(page.locator(".preview-banner")).to_contain_text("Shown as Grace")
    tab_to(page, f"main a:text-is('{lesson.title}')")
    page.keyboard.press("Enter")

    expect(page.locator("h1")).to_have_text(lesson.title)
    expect(page.get_by_role("button", name="Mark complete")).to_be_disabled()
    assert_fits_phone(page)
    assert LessonProgress.objects.count() == 0
