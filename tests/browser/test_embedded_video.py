"""Embedded YouTube and Vimeo players report their position, and the lesson resumes.

The players' hosts cannot be reached here, so Playwright serves a local
stand-in page at the player's address. The stand-in speaks the host's
postMessage protocol: YouTube's "infoDelivery" messages after the page
posts {"event": "listening"}, and Vimeo's "ready", then the events the
page subscribes to with {"method": "addEventListener"}. The stand-in plays
in real time from the start position in its address. What it checks is
static/portal/embed_player.js and the server's handling of the positions,
not the real players.
"""

import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from playwright.sync_api import Page, Route, expect

from courses import views
from courses.models import Lesson, LessonKind, LessonProgress
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

ARTIFACTS = Path(__file__).resolve().parents[2] / "var" / "test-artifacts" / "browser"

# The page sends heartbeats this often in the test, so it need not wait 15 s.
TEST_INTERVAL_SECONDS = 2
VIDEO_SECONDS = 600
# Seconds of playback before the position is read.
WATCH_SECONDS = 5
# How long a saved position may take: playback plus a few heartbeats.
WAIT_SECONDS = 20

# Each stand-in reports its position four times a second, counted from the
# start its address gives, and starts playing once the page listens.
YOUTUBE_STAND_IN = """<!doctype html><title>player</title><script>
const start = Number(new URLSearchParams(location.search).get("start") || 0);
let began = null;
function report() {
  const position = start + (Date.now() - began) / 1000;
  parent.postMessage(JSON.stringify({event: "infoDelivery",
    info: {currentTime: position, duration: %(duration)s, playerState: 1}}), "*");
}
addEventListener("message", (event) => {
  const message = JSON.parse(event.data);
  if (message.event === "listening" && began === null) {
    began = Date.now();
    setInterval(report, 250);
  }
});
</script>"""

VIMEO_STAND_IN = """<!doctype html><title>player</title><script>
const start = Number((location.hash.match(/t=(\\d+)s/) || [0, 0])[1]);
const subscribed = new Set();
let began = null;
function send(name, data) {
  if (subscribed.has(name)) {
    parent.postMessage(JSON.stringify({event: name, data: data}), "*");
  }
}
function report() {
  const seconds = start + (Date.now() - began) / 1000;
  send("timeupdate", {seconds: seconds, duration: %(duration)s});
}
addEventListener("message", (event) => {
  const message = JSON.parse(event.data);
  if (message.method === "addEventListener") {
    subscribed.add(message.value);
    if (subscribed.has("timeupdate") && subscribed.has("play") && began === null) {
      began = Date.now();
      send("play", {seconds: start, duration: %(duration)s});
      setInterval(report, 250);
    }
  }
});
parent.postMessage(JSON.stringify({event: "ready"}), "*");
</script>"""

PLAYERS = {
    "youtube": (
        "https://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://www.youtube-nocookie.com/embed/**",
        YOUTUBE_STAND_IN,
    ),
    "vimeo": (
        "https://vimeo.com/76979871",
        "https://player.vimeo.com/video/**",
        VIMEO_STAND_IN,
    ),
}


def stand_in(page: Page, pattern: str, html: str) -> list[str]:
    """Serve the stand-in at the player's address; return the URLs requested."""
    requested: list[str] = []

    def answer(route: Route) -> None:
        requested.append(route.request.url)
        route.fulfill(
            status=200,
            content_type="text/html",
            body=html % {"duration": VIDEO_SECONDS},
        )

    page.route(pattern, answer)
    return requested


def embedded_lesson(url: str) -> Lesson:
    course, _created = ensure_course(
        slug="embedded-tour",
        title="An embedded tour",
        summary="Watch the tour.",
        modules=(
            ModuleSpec(
                title="Tour",
                lessons=(LessonSpec("Watch the tour", "The tour.", "video"),),
            ),
        ),
    )
    lesson = Lesson.objects.get(module__course=course, kind=LessonKind.VIDEO)
    lesson.url = url
    lesson.save()
    return lesson


def saved_past(page: Page, lesson: Lesson, seconds: int) -> LessonProgress:
    """Wait until a heartbeat saved a position past ``seconds``; return the row."""
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        progress = LessonProgress.objects.filter(lesson=lesson).first()
        if progress is not None and progress.position_seconds >= seconds:
            return progress
        page.wait_for_timeout(250)
    raise AssertionError(f"No position past {seconds} s saved in {WAIT_SECONDS} s")


def frame_address(page: Page) -> str:
    # The page's own address of the player: a request loses Vimeo's #t=.
    return page.locator("#lesson-embed").get_attribute("src") or ""


def start_of(address: str, player: str) -> int:
    parts = urlsplit(address)
    if player == "youtube":
        return int(parse_qs(parts.query).get("start", ["0"])[0])
    fragment = parts.fragment
    return int(fragment.removeprefix("t=").removesuffix("s")) if fragment else 0


@pytest.mark.parametrize("player", list(PLAYERS))
def test_embedded_position_saved_and_resumed(
    new_page: OpenPage,
    site_url: str,
    monkeypatch: pytest.MonkeyPatch,
    player: str,
) -> None:
    monkeypatch.setattr(views, "HEARTBEAT_INTERVAL_SECONDS", TEST_INTERVAL_SECONDS)
    share_url, pattern, html = PLAYERS[player]
    lesson = embedded_lesson(share_url)
    contact = make_contact()
    enroll(contact, lesson.module.course)
    lesson_path = f"/learn/courses/{lesson.module.course.slug}/lessons/{lesson.pk}/"
    page = new_page()
    requested = stand_in(page, pattern, html)

    page.goto(create_sign_in_url(contact, next_path=lesson_path))
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Watch the tour")).to_be_visible()
    # The heartbeats carry the stand-in's position.
    progress = saved_past(page, lesson, WATCH_SECONDS)

    assert requested
    assert start_of(frame_address(page), player) == 0
    assert progress.duration_seconds == VIDEO_SECONDS
    assert progress.position_seconds >= WATCH_SECONDS
    assert progress.time_spent_seconds > 0

    # Opening the lesson again starts the player at the saved position.
    second = new_page()
    second.context.add_cookies(page.context.cookies())  # type: ignore[arg-type]
    requested_again = stand_in(second, pattern, html)
    page.close()
    # Closing the page sends a last heartbeat with the position.
    second.wait_for_timeout(1000)
    progress.refresh_from_db()
    saved = progress.position_seconds
    second.goto(site_url + lesson_path)
    expect(second.locator("#resume-note")).to_have_text(
        f"Resuming at {saved} s, where you left off."
    )
    second.wait_for_timeout(500)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    second.screenshot(path=ARTIFACTS / f"embedded-{player}-resumed.png", full_page=True)

    assert requested_again
    assert start_of(frame_address(second), player) == saved
