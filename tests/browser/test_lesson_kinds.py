"""Checklists, live sessions, PDFs and learning paths in a real browser.

Each test drives headless Chromium against the live server and saves a
screenshot under var/test-artifacts/browser/, which git ignores.
"""

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from fpdf import FPDF
from playwright.sync_api import Page, expect

from courses import views
from courses.models import (
    ChecklistItem,
    Course,
    LearningPath,
    Lesson,
    LessonKind,
    LessonProgress,
    PathCourse,
)
from courses.paths import enroll_in_paths
from courses.services import (
    LessonSpec,
    ModuleSpec,
    create_sign_in_url,
    enroll,
    ensure_course,
)
from customers.models import Contact
from tests.factories import make_contact

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

OpenPage = Callable[[], Page]

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "browser"

PDF_BYTES = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n"
    b"2 0 obj<</Type/Pages/Kids[3 0 R]/Count 1>>endobj\n"
    b"3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 300 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def save_screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 1000


def sign_in(page: Page, contact: Contact, next_path: str = "") -> None:
    page.goto(create_sign_in_url(contact, next_path=next_path))
    page.get_by_role("button", name="Sign in").click()


def make_kinds_course() -> Course:
    course, _created = ensure_course(
        slug="admin-setup",
        title="Set up your workspace",
        summary="Everything an admin does in the first week.",
        modules=(
            ModuleSpec(
                title="First week",
                lessons=(
                    LessonSpec(
                        "Invite your team", "Tick each step when done.", "checklist"
                    ),
                    LessonSpec("Admin Q&A", "Bring your questions.", "live_session"),
                    LessonSpec("Admin guide", "Read the guide.", "pdf"),
                ),
            ),
        ),
    )
    return course


def lesson_of(course: Course, kind: str) -> Lesson:
    return Lesson.objects.get(module__course=course, kind=kind)


def test_checklist_ticked_in_browser(new_page: OpenPage, site_url: str) -> None:
    course = make_kinds_course()
    checklist = lesson_of(course, LessonKind.CHECKLIST)
    for order, text in enumerate(("Add your logo", "Invite two colleagues"), 1):
        ChecklistItem.objects.create(lesson=checklist, text=text, order=order)
    contact = make_contact()
    enroll(contact, course)
    page = new_page()
    sign_in(page, contact, f"/learn/courses/{course.slug}/lessons/{checklist.pk}/")

    page.get_by_label("Add your logo").check()
    page.get_by_role("button", name="Save my checklist").click()
    expect(page.get_by_text("Your checklist is saved.")).to_be_visible()
    expect(page.get_by_label("Add your logo")).to_be_checked()
    page.get_by_label("Invite two colleagues").check()
    page.get_by_role("button", name="Save my checklist").click()

    expect(
        page.get_by_text("Every step of “Invite your team” is done.")
    ).to_be_visible()
    expect(page.get_by_text("Completed on")).to_be_visible()
    save_screenshot(page, "checklist-lesson")
    progress = LessonProgress.objects.get(lesson=checklist)
    assert progress.completed_at is not None


def test_live_session_in_learner_zone(new_page: OpenPage, site_url: str) -> None:
    course = make_kinds_course()
    session = lesson_of(course, LessonKind.LIVE_SESSION)
    session.starts_at = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)
    session.duration_minutes = 45
    session.url = "https://meet.example.com/abc-defg"
    session.save()
    # Paris is UTC+1 in March before the change to summer time on the 29th.
    contact = make_contact(time_zone="Europe/Paris")
    enroll(contact, course)
    page = new_page()
    sign_in(page, contact, f"/learn/courses/{course.slug}/lessons/{session.pk}/")

    expect(page.locator(".session-time")).to_contain_text(
        "Tuesday 10 March 2026, 16:30 to 17:15"
    )
    expect(page.locator(".session-time")).to_contain_text("(Europe/Paris time)")
    expect(page.get_by_role("link", name="Join the session")).to_have_attribute(
        "href", session.url
    )
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Add to my calendar (.ics)").click()
    calendar = Path(download_info.value.path()).read_text()
    assert "DTSTART:20260310T153000Z" in calendar
    assert page.get_by_role("button", name="Mark complete").count() == 0
    save_screenshot(page, "live-session-lesson")


def test_pdf_file_served_to_viewer(
    new_page: OpenPage, site_url: str, settings, tmp_path
) -> None:
    settings.LESSON_FILE_ROOT = tmp_path / "lesson-files"
    course = make_kinds_course()
    guide = lesson_of(course, LessonKind.PDF)
    guide.file.save("admin-guide.pdf", ContentFile(PDF_BYTES))
    contact = make_contact()
    enroll(contact, course)
    page = new_page()
    sign_in(page, contact, f"/learn/courses/{course.slug}/lessons/{guide.pk}/")

    viewer = page.locator("#pdf-viewer")
    file_path = viewer.get_attribute("data-url") or ""
    response = page.request.get(site_url + file_path)
    assert response.status == 200
    assert response.body() == PDF_BYTES
    save_screenshot(page, "pdf-lesson")


def three_page_pdf() -> bytes:
    document = FPDF()
    document.set_font("Helvetica", size=28)
    for number in (1, 2, 3):
        document.add_page()
        document.cell(text=f"Admin guide, page {number}")
    return bytes(document.output())


def test_pdf_pages_tracked_with_pdfjs(
    new_page: OpenPage, site_url: str, settings, tmp_path, monkeypatch
) -> None:
    settings.LESSON_FILE_ROOT = tmp_path / "lesson-files"
    monkeypatch.setattr(views, "HEARTBEAT_INTERVAL_SECONDS", 2)
    course = make_kinds_course()
    guide = lesson_of(course, LessonKind.PDF)
    guide.file.save("admin-guide.pdf", ContentFile(three_page_pdf()))
    contact = make_contact()
    enroll(contact, course)
    page = new_page()
    sign_in(page, contact, f"/learn/courses/{course.slug}/lessons/{guide.pk}/")

    # PDF.js replaces the browser's viewer with one canvas per page.
    expect(page.get_by_role("img", name="Page 1 of 3")).to_be_visible()
    page.wait_for_function(
        "document.getElementById('lesson-tracker').dataset.pagesSeen === '1'"
    )
    save_screenshot(page, "pdf-lesson-pdfjs")
    for number in (2, 3):
        page.get_by_role("img", name=f"Page {number} of 3").scroll_into_view_if_needed()
        page.wait_for_function(
            "document.getElementById('lesson-tracker').dataset.pagesSeen"
            f".split(',').includes('{number}')"
        )

    # The next heartbeat carries the pages; wait for the server to store them.
    progress = LessonProgress.objects.get(lesson=guide)
    for _ in range(50):
        progress.refresh_from_db()
        if progress.pages_viewed == [1, 2, 3]:
            break
        page.wait_for_timeout(200)
    assert progress.pages_viewed == [1, 2, 3]
    assert progress.page_count == 3

    page.reload()
    expect(page.locator("#pdf-progress")).to_have_text("You have viewed 3 of 3 pages.")


def test_path_shows_locked_course(new_page: OpenPage, site_url: str) -> None:
    basics = make_kinds_course()
    reports, _created = ensure_course(
        slug="reports",
        title="Reports for admins",
        summary="",
        modules=(ModuleSpec(title="Reports", lessons=(LessonSpec("Build one"),)),),
    )
    path = LearningPath.objects.create(slug="admin-track", title="Admin track")
    PathCourse.objects.create(path=path, course=basics, order=1)
    PathCourse.objects.create(path=path, course=reports, order=2).prerequisites.set(
        [basics]
    )
    contact = make_contact()
    enroll_in_paths([(contact.pk, path.pk)])
    page = new_page()
    sign_in(page, contact)

    paths = page.get_by_role("region", name="My learning paths")
    expect(paths.get_by_role("link", name=basics.title)).to_be_visible()
    expect(paths.get_by_role("link", name=reports.title)).to_have_count(0)
    expect(paths).to_contain_text(f"Opens after you complete {basics.title}.")
    expect(paths).to_contain_text("0 of 2 courses completed.")
    save_screenshot(page, "home-learning-paths")


def test_catalogue_enroll_in_browser(new_page: OpenPage, site_url: str) -> None:
    course = make_kinds_course()
    course.in_catalogue = True
    course.tags = ["admin", "setup"]
    course.save()
    contact = make_contact()
    page = new_page()
    sign_in(page, contact)

    page.get_by_role("link", name="Catalogue").click()
    expect(page.get_by_role("heading", name="Course catalogue")).to_be_visible()
    expect(page.get_by_role("link", name="setup")).to_be_visible()
    save_screenshot(page, "catalogue")
    page.get_by_role("button", name=f"Enroll in {course.title}").click()

    expect(page.get_by_text(f"You are enrolled in {course.title}.")).to_be_visible()
    expect(page.get_by_role("heading", name=course.title, level=1)).to_be_visible()
    assert contact.enrollments.get().origin == "catalogue"
