"""A learner watches a video lesson, and the time and position are kept.

Drives headless Chromium against the live server, as test_portal.py does.
The video is a grey WebM built in Python (tests/browser/webm.py), served
by the portal like any uploaded lesson file. Screenshots go to
var/test-artifacts/browser/, which git ignores.
"""

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.files.base import ContentFile
from playwright.sync_api import Browser, Page, ViewportSize, expect

from courses import views
from courses.models import Lesson, LessonKind, LessonProgress
from courses.services import (
    LessonSpec,
    ModuleSpec,
    create_sign_in_url,
    enroll,
    ensure_course,
)
from tests.browser.conftest import TIMEOUT_MS
from tests.browser.webm import grey_webm
from tests.factories import make_contact

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

OpenPage = Callable[[], Page]

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "browser"

VIDEO_SECONDS = 8
# The page sends heartbeats this often in the test, so it need not wait 15 s.
TEST_INTERVAL_SECONDS = 2
# Seconds of playback before the learner pauses.
WATCH_SECONDS = 3

VIDEO = "document.getElementById('lesson-video')"


def save_screenshot(page: Page, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=path, full_page=True)
    assert path.stat().st_size > 1000


@pytest.fixture
def video_lesson(settings, tmp_path, monkeypatch) -> Lesson:
    settings.LESSON_FILE_ROOT = tmp_path / "lesson-files"
    monkeypatch.setattr(views, "HEARTBEAT_INTERVAL_SECONDS", TEST_INTERVAL_SECONDS)
    course, _created = ensure_course(
        slug="reports-tour",
        title="A tour of reports",
        summary="Watch how a report is built.",
        modules=(
            ModuleSpec(
                title="Reports",
                lessons=(
                    LessonSpec("Build a report", "Watch the **whole** video.", "video"),
                    LessonSpec("Share it", "Send the report to your team."),
                ),
            ),
        ),
    )
    lesson = Lesson.objects.get(module__course=course, kind=LessonKind.VIDEO)
    lesson.file.save("build-a-report.webm", ContentFile(grey_webm(VIDEO_SECONDS)))
    return lesson


def test_video_time_recorded_and_resumed(
    new_page: OpenPage, site_url: str, video_lesson: Lesson
) -> None:
    course = video_lesson.module.course
    contact = make_contact(first_name="Grace")
    enroll(contact, course)
    lesson_url = f"{site_url}/learn/courses/{course.slug}/lessons/{video_lesson.pk}/"
    page = new_page()
    page.goto(create_sign_in_url(contact, next_path=lesson_url.removeprefix(site_url)))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Build a report")).to_be_visible()
    opened_at = time.monotonic()

    # The page loads the video's metadata from the portal's file endpoint.
    page.wait_for_function(f"{VIDEO}.readyState >= 1")
    assert page.evaluate(f"{VIDEO}.duration") == VIDEO_SECONDS
    expect(page.locator(".lesson-body strong")).to_have_text("whole")

    # A click gives the page a user gesture, which Chromium wants for play().
    page.get_by_role("heading", name="Build a report").click()
    page.evaluate(f"{VIDEO}.muted = true; {VIDEO}.play()")
    page.wait_for_function(f"{VIDEO}.currentTime >= {WATCH_SECONDS}")
    page.evaluate(f"{VIDEO}.pause()")
    paused_at = page.evaluate(f"Math.floor({VIDEO}.currentTime)")
    save_screenshot(page, "video-lesson-paused")

    # Pausing sends a heartbeat with the position; wait for its answer.
    page.wait_for_function(
        "document.getElementById('lesson-tracker').dataset.timeSpent > 0"
    )
    page.wait_for_function(
        "Number(document.getElementById('lesson-tracker').dataset.timeSpent) >= "
        f"{WATCH_SECONDS - 1}"
    )
    elapsed = time.monotonic() - opened_at
    progress = LessonProgress.objects.get(lesson=video_lesson)
    shown = int(page.locator("#lesson-tracker").get_attribute("data-time-spent") or 0)
    assert progress.position_seconds == paused_at
    assert progress.time_spent_seconds == shown
    # The page counts a second for each second it was open and playing, so
    # the total lies between the playback time and the time the page was open.
    assert progress.time_spent_seconds >= WATCH_SECONDS - 1
    assert progress.time_spent_seconds <= elapsed + 1
    assert progress.views == 1

    # Opening the lesson again starts the video where the learner paused.
    second = new_page()
    # A cookie read from a context is a valid cookie to set. Playwright types
    # the two with TypedDicts that differ only in which keys are optional.
    second.context.add_cookies(page.context.cookies())  # type: ignore[arg-type]
    second.goto(lesson_url)
    second.wait_for_function(f"{VIDEO}.readyState >= 1")
    second.wait_for_function(f"{VIDEO}.currentTime >= {paused_at}")
    expect(second.locator("#resume-note")).to_have_text(
        f"Resuming at {paused_at} s, where you left off."
    )
    save_screenshot(second, "video-lesson-resumed")
    progress.refresh_from_db()
    assert progress.views == 2
    assert progress.heartbeat_view == 2


def test_video_file_needs_enrollment(
    new_page: OpenPage, site_url: str, video_lesson: Lesson
) -> None:
    course = video_lesson.module.course
    enroll(make_contact(), course)
    stranger = make_contact()
    page = new_page()
    page.goto(create_sign_in_url(stranger))
    page.get_by_role("button", name="Sign in").click()

    base = f"{site_url}/learn/courses/{course.slug}/lessons/{video_lesson.pk}/"
    page_response = page.goto(base)
    file_response = page.goto(base + "file/")

    assert page_response is not None
    assert page_response.status == 404
    assert file_response is not None
    assert file_response.status == 404


# A phone in portrait, in CSS pixels.
PHONE_VIEWPORT: ViewportSize = {"width": 390, "height": 844}


def test_video_lesson_fits_phone(
    browser: Browser, site_url: str, video_lesson: Lesson
) -> None:
    course = video_lesson.module.course
    contact = make_contact()
    enroll(contact, course)
    context = browser.new_context(viewport=PHONE_VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        page = context.new_page()
        lesson_path = f"/learn/courses/{course.slug}/lessons/{video_lesson.pk}/"
        page.goto(create_sign_in_url(contact, next_path=lesson_path))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_function(f"{VIDEO}.readyState >= 1")

        root = "document.documentElement"
        overflow = page.evaluate(f"{root}.scrollWidth - {root}.clientWidth")
        assert overflow <= 0
        video_box = page.locator("#lesson-video").bounding_box()
        assert video_box is not None
        assert video_box["x"] + video_box["width"] <= PHONE_VIEWPORT["width"]
        save_screenshot(page, "video-lesson-phone")
    finally:
        context.close()


def test_watching_video_completes_lesson(
    new_page: OpenPage, site_url: str, video_lesson: Lesson
) -> None:
    course = video_lesson.module.course
    contact = make_contact(first_name="Ada")
    enroll(contact, course)
    lesson_path = f"/learn/courses/{course.slug}/lessons/{video_lesson.pk}/"
    page = new_page()
    page.goto(create_sign_in_url(contact, next_path=lesson_path))
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_function(f"{VIDEO}.readyState >= 1")
    # An uploaded video has no button: watching it completes the lesson.
    expect(page.get_by_role("button", name="Mark complete")).to_have_count(0)
    expect(page.locator("#video-progress")).to_contain_text("watched 90% of the video")

    # Halfway through, the lesson is not completed yet.
    page.get_by_role("heading", name="Build a report").click()
    page.evaluate(f"{VIDEO}.muted = true; {VIDEO}.play()")
    page.wait_for_function(f"{VIDEO}.currentTime >= {VIDEO_SECONDS // 2}")
    page.evaluate(f"{VIDEO}.pause()")
    page.wait_for_function(
        "Number(document.getElementById('lesson-tracker').dataset.timeSpent) >= "
        f"{VIDEO_SECONDS // 2 - 1}"
    )
    progress = LessonProgress.objects.get(lesson=video_lesson)
    assert progress.completed_at is None
    assert progress.duration_seconds == VIDEO_SECONDS

    # Watching the rest, to the end, completes it.
    page.evaluate(f"{VIDEO}.play()")
    page.wait_for_function(f"{VIDEO}.ended")
    # The ended event sends the last heartbeat, and its response updates the text.
    expect(page.locator("#video-progress")).to_have_text(
        "You have watched this video. The lesson is completed.", timeout=10_000
    )
    progress.refresh_from_db()
    assert progress.completed_at is not None
    save_screenshot(page, "video-lesson-completed")
