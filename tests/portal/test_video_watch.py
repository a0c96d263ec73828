"""Video completion: watching 90% of an uploaded video, measured by heartbeats."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile

from courses import video_watch
from courses.content import embed_player_url
from courses.heartbeats import Heartbeat, record_heartbeat
from courses.models import EnrollmentStatus, LessonKind, LessonProgress
from courses.services import portal_user_for, record_lesson_view
from tests.factories import NOW, make_contact
from tests.portal.helpers import enroll_contact, lesson_url, make_course, sign_in

pytestmark = pytest.mark.django_db

WEBM_HEAD = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\x00" * 64
DURATION = 100


@pytest.fixture(autouse=True)
def lesson_files(settings, tmp_path):
    settings.LESSON_FILE_ROOT = tmp_path / "lesson-files"


@pytest.fixture
def video():
    """A learner who opened an uploaded 100-second video lesson, the only lesson."""
    contact = make_contact()
    course, lessons = make_course(1)
    lesson = lessons[0]
    lesson.kind = LessonKind.VIDEO
    lesson.save()
    lesson.file.save("intro.webm", ContentFile(WEBM_HEAD), save=True)
    enrollment = enroll_contact(contact, course)
    record_lesson_view(enrollment, lesson, at=NOW)
    return contact, portal_user_for(contact), course, lesson


def play(contact, course, lesson, positions: list[int], step: int = 15):
    """Send one heartbeat per position, `step` seconds apart, all active."""
    results = []
    for number, position in enumerate(positions, start=1):
        beat = Heartbeat(
            view=1,
            sequence=number,
            active_seconds=step,
            position_seconds=position,
            duration_seconds=DURATION,
        )
        at = NOW + timedelta(seconds=step * number)
        results.append(record_heartbeat(contact.pk, course.slug, lesson.pk, beat, at))
    return results


def test_watching_90_percent_completes(video):
    contact, _user, course, lesson = video

    # Watched from 0 to 90 in steps of 15 seconds.
    results = play(contact, course, lesson, [15, 30, 45, 60, 75, 90])

    progress = LessonProgress.objects.get(lesson=lesson)
    assert progress.completed_at is not None
    assert results[-1].completed
    assert not results[-2].completed
    assert progress.watched_intervals == [[0, 90]]
    assert progress.duration_seconds == DURATION
    # The PDF columns stay empty on a video lesson.
    assert progress.pages_viewed == []
    assert progress.page_count is None
    assert contact.enrollments.get().status == EnrollmentStatus.COMPLETED


def test_watching_89_percent_does_not_complete(video):
    contact, _user, course, lesson = video

    play(contact, course, lesson, [15, 30, 45, 60, 75, 89])

    assert LessonProgress.objects.get(lesson=lesson).completed_at is None


def test_seeking_to_end_does_not_complete(video):
    contact, _user, course, lesson = video

    # The learner seeks to 99 s and lets it play one interval.
    results = play(contact, course, lesson, [99, 100])

    progress = LessonProgress.objects.get(lesson=lesson)
    assert progress.completed_at is None
    assert not results[-1].completed
    # 15 credited seconds at most double speed plus slack: 32 s before 99.
    assert progress.watched_intervals == [[67, 100]]


def test_rewatching_counts_once(video):
    contact, _user, course, lesson = video

    play(contact, course, lesson, [15, 30, 0, 15, 30])

    assert LessonProgress.objects.get(lesson=lesson).watched_intervals == [[0, 30]]


def test_video_page_shows_watched_share(client, video):
    contact, _user, course, lesson = video
    play(contact, course, lesson, [15, 30])
    sign_in(client, contact)

    content = client.get(lesson_url(course, lesson)).content.decode()

    assert "you have watched 30%" in content
    assert "Mark complete" not in content


def test_uploaded_video_not_completed_by_button(client, video):
    contact, _user, course, lesson = video
    sign_in(client, contact)

    response = client.post(lesson_url(course, lesson) + "complete/", follow=True)

    assert "watched 90% of the video" in response.content.decode()
    assert LessonProgress.objects.get(lesson=lesson).completed_at is None


@pytest.mark.parametrize(
    ("previous", "position", "credited", "expected"),
    [
        (10, 25, 15, (10, 25)),
        (10, 100, 15, (68, 100)),
        (50, 40, 15, None),
        (10, 20, 0, None),
    ],
)
def test_played_interval(previous, position, credited, expected):
    assert video_watch.played_interval(previous, position, credited) == expected


def test_merge_joins_touching_intervals():
    merged = video_watch.merge([(30, 40), (0, 10), (10, 20), (35, 50)])

    assert merged == [(0, 20), (30, 50)]


def test_stored_intervals_skip_page_numbers():
    assert video_watch.stored_intervals([1, 2, 3]) == []
    assert video_watch.stored_intervals([[0, 5], [7, 6], "x"]) == [(0, 5)]


# --- Embedded players ------------------------------------------------------------


def test_embed_player_url_starts_at_position():
    youtube = embed_player_url(
        "https://www.youtube-nocookie.com/embed/abc", 75, "https://learn.example.com"
    )
    vimeo = embed_player_url("https://player.vimeo.com/video/123", 75, "")
    loom = embed_player_url("https://www.loom.com/embed/abc", 75, "")

    assert youtube == (
        "https://www.youtube-nocookie.com/embed/abc?enablejsapi=1"
        "&origin=https%3A%2F%2Flearn.example.com&rel=0&start=75"
    )
    assert vimeo == "https://player.vimeo.com/video/123?api=1#t=75s"
    assert loom == "https://www.loom.com/embed/abc"


def embedded_video_page(client, position: int, duration: int) -> str:
    """Return the page of an embedded Vimeo lesson saved at position of duration."""
    contact = make_contact()
    course, lessons = make_course(1)
    lesson = lessons[0]
    lesson.kind = LessonKind.VIDEO
    lesson.url = "https://vimeo.com/76979871"
    lesson.save()
    enrollment = enroll_contact(contact, course)
    record_lesson_view(enrollment, lesson, at=NOW)
    LessonProgress.objects.filter(lesson=lesson).update(
        position_seconds=position, duration_seconds=duration
    )
    sign_in(client, contact)
    return client.get(lesson_url(course, lesson)).content.decode()


def test_embedded_video_resumes_at_saved_position(client):
    content = embedded_video_page(client, position=42, duration=300)

    assert 'src="https://player.vimeo.com/video/76979871?api=1#t=42s"' in content
    assert "Resuming at 42 s" in content
    # An embedded video keeps its button: its player may report nothing.
    assert "Mark complete" in content


def test_embedded_video_near_end_starts_over(client):
    content = embedded_video_page(client, position=299, duration=300)

    assert 'src="https://player.vimeo.com/video/76979871?api=1"' in content
    assert "Resuming at" not in content
