"""Heartbeats: time spent per lesson, capped, replay-safe and per learner."""

import dataclasses
import random
import threading
from datetime import timedelta
from urllib.parse import urlsplit

import pytest
from django.conf import settings
from django.contrib.auth.models import User
from django.db import close_old_connections, connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from courses import heartbeats
from courses.heartbeats import (
    ELAPSED_SLACK_SECONDS,
    MAX_HEARTBEAT_SECONDS,
    Heartbeat,
    credit_for,
    parse_heartbeat,
    record_heartbeat,
)
from courses.models import LessonKind, LessonProgress
from courses.portal_session import CONTACT_ID_SESSION_KEY
from courses.services import (
    create_sign_in_url,
    portal_user_for,
    record_lesson_view,
)
from tests.factories import NOW, make_contact
from tests.portal.helpers import enroll_contact, lesson_url, make_course, sign_in

pytestmark = pytest.mark.django_db


def beat_url(course, lesson) -> str:
    return lesson_url(course, lesson) + "heartbeat/"


@pytest.fixture
def viewed():
    """A learner who opened the first lesson once, at NOW."""
    contact = make_contact()
    course, lessons = make_course(2)
    enrollment = enroll_contact(contact, course)
    record_lesson_view(enrollment, lessons[0], at=NOW)
    user = portal_user_for(contact)
    return contact, user, course, lessons[0]


def beat(sequence: int, active: int, *, view: int = 1, position=None) -> Heartbeat:
    return Heartbeat(
        view=view, sequence=sequence, active_seconds=active, position_seconds=position
    )


def progress_of(lesson) -> LessonProgress:
    return LessonProgress.objects.get(lesson=lesson)


def make_kind(lesson, kind: str) -> None:
    lesson.kind = kind
    lesson.save(update_fields=["kind"])


def test_heartbeat_adds_active_seconds(viewed):
    contact, _user, course, lesson = viewed

    first = record_heartbeat(
        contact.pk, course.slug, lesson.pk, beat(1, 15), at=NOW + timedelta(seconds=15)
    )
    second = record_heartbeat(
        contact.pk, course.slug, lesson.pk, beat(2, 12), at=NOW + timedelta(seconds=30)
    )

    assert first is not None
    assert first.accepted
    assert first.credited_seconds == 15
    assert second is not None
    assert second.time_spent_seconds == 27
    assert progress_of(lesson).time_spent_seconds == 27


def test_heartbeat_capped_per_interval(viewed):
    contact, _user, course, lesson = viewed

    # A tab left open overnight reports 8 hours in its next heartbeat.
    result = record_heartbeat(
        contact.pk,
        course.slug,
        lesson.pk,
        beat(1, 8 * 3600),
        at=NOW + timedelta(hours=8),
    )

    assert result is not None
    assert result.credited_seconds == MAX_HEARTBEAT_SECONDS
    assert progress_of(lesson).time_spent_seconds == MAX_HEARTBEAT_SECONDS


def test_heartbeat_capped_by_elapsed_time(viewed):
    contact, _user, course, lesson = viewed

    # Three heartbeats posted 1 second apart, each claiming 15 seconds.
    for number in (1, 2, 3):
        record_heartbeat(
            contact.pk,
            course.slug,
            lesson.pk,
            beat(number, 15),
            at=NOW + timedelta(seconds=number),
        )

    # The slack is allowed once, not once per heartbeat: 3 s passed.
    assert progress_of(lesson).time_spent_seconds == 3 + ELAPSED_SLACK_SECONDS


def test_heartbeat_mark_stays_within_slack_of_now(viewed):
    contact, _user, course, lesson = viewed

    # Two heartbeats 0.5 s and 0.6 s after the page view, each claiming 15 s.
    for number, milliseconds in ((1, 500), (2, 600)):
        record_heartbeat(
            contact.pk,
            course.slug,
            lesson.pk,
            beat(number, 15),
            at=NOW + timedelta(milliseconds=milliseconds),
        )

    # The credited time may reach at most the slack past now: 0.6 s + 2 s,
    # so 2 whole seconds.
    assert progress_of(lesson).time_spent_seconds == ELAPSED_SLACK_SECONDS


def test_heartbeat_loop_adds_no_more_than_time_passed(viewed):
    contact, _user, course, lesson = viewed

    # A script posts 50 heartbeats in 4 seconds, each claiming 20 seconds.
    for number in range(1, 51):
        record_heartbeat(
            contact.pk,
            course.slug,
            lesson.pk,
            beat(number, 20),
            at=NOW + timedelta(milliseconds=80 * number),
        )

    spent = progress_of(lesson).time_spent_seconds
    assert spent <= 4 + ELAPSED_SLACK_SECONDS
    assert spent >= 4


def test_hidden_night_not_claimable_later(viewed):
    contact, _user, course, lesson = viewed
    morning = NOW + timedelta(hours=8)

    # After a night with no heartbeat, a burst claims at most one interval
    # plus the slack, not the night.
    for number in range(1, 21):
        record_heartbeat(
            contact.pk,
            course.slug,
            lesson.pk,
            beat(number, 20),
            at=morning + timedelta(milliseconds=50 * number),
        )

    spent = progress_of(lesson).time_spent_seconds
    assert spent <= MAX_HEARTBEAT_SECONDS + 1 + ELAPSED_SLACK_SECONDS


def test_replayed_heartbeat_counts_once(viewed):
    contact, _user, course, lesson = viewed
    at = NOW + timedelta(seconds=15)

    first = record_heartbeat(contact.pk, course.slug, lesson.pk, beat(1, 10), at=at)
    replay = record_heartbeat(
        contact.pk, course.slug, lesson.pk, beat(1, 10), at=at + timedelta(seconds=15)
    )
    older = record_heartbeat(
        contact.pk, course.slug, lesson.pk, beat(0, 10), at=at + timedelta(seconds=30)
    )

    assert first is not None and first.accepted
    assert replay is not None
    assert not replay.accepted
    assert replay.reason == "replayed"
    assert older is not None
    assert not older.accepted
    assert progress_of(lesson).time_spent_seconds == 10


def test_older_view_is_superseded(viewed):
    contact, _user, course, lesson = viewed
    enrollment = contact.enrollments.get()
    # A second tab opens the lesson again: view 2 counts from now on.
    record_lesson_view(enrollment, lesson, at=NOW + timedelta(seconds=5))

    old_tab = record_heartbeat(
        contact.pk,
        course.slug,
        lesson.pk,
        beat(1, 10, view=1),
        at=NOW + timedelta(seconds=15),
    )
    new_tab = record_heartbeat(
        contact.pk,
        course.slug,
        lesson.pk,
        beat(1, 10, view=2),
        at=NOW + timedelta(seconds=20),
    )

    assert old_tab is not None
    assert old_tab.reason == "superseded"
    assert new_tab is not None
    assert new_tab.accepted
    assert progress_of(lesson).time_spent_seconds == 10


def test_heartbeat_stores_video_position(viewed):
    contact, _user, course, lesson = viewed
    make_kind(lesson, LessonKind.VIDEO)

    record_heartbeat(
        contact.pk,
        course.slug,
        lesson.pk,
        beat(1, 5, position=42),
        at=NOW + timedelta(seconds=5),
    )

    assert progress_of(lesson).position_seconds == 42


def test_heartbeat_of_another_learner_not_found(viewed):
    _contact, _user, course, lesson = viewed
    stranger = portal_user_for(make_contact())

    result = record_heartbeat(stranger.pk, course.slug, lesson.pk, beat(1, 10))

    assert result is None
    assert progress_of(lesson).time_spent_seconds == 0


def test_credit_without_previous_time():
    assert credit_for(beat(1, 5), None, NOW) == 5
    assert credit_for(beat(1, 500), None, NOW) == MAX_HEARTBEAT_SECONDS


def test_heartbeat_merges_pdf_pages(viewed):
    contact, _user, course, lesson = viewed
    make_kind(lesson, LessonKind.PDF)
    first = Heartbeat(1, 1, 5, None, pages=frozenset({1, 2}), page_count=4)
    second = Heartbeat(1, 2, 5, None, pages=frozenset({2, 4}), page_count=4)

    record_heartbeat(
        contact.pk, course.slug, lesson.pk, first, at=NOW + timedelta(seconds=5)
    )
    record_heartbeat(
        contact.pk, course.slug, lesson.pk, second, at=NOW + timedelta(seconds=10)
    )

    progress = progress_of(lesson)
    assert progress.pages_viewed == [1, 2, 4]
    assert progress.page_count == 4


def test_parse_reads_pages():
    beat = parse_heartbeat(
        {
            "view": "1",
            "sequence": "1",
            "active_seconds": "3",
            "pages": "3,1,3",
            "page_count": "3",
        }
    )

    assert beat.pages == frozenset({1, 3})
    assert beat.page_count == 3


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (
            {"view": "1", "sequence": "1", "active_seconds": "1", "pages": "1,x"},
            "pages",
        ),
        (
            {
                "view": "1",
                "sequence": "1",
                "active_seconds": "1",
                "pages": "4",
                "page_count": "3",
            },
            "pages",
        ),
        (
            {"view": "1", "sequence": "1", "active_seconds": "1", "pages": "0"},
            "pages",
        ),
        ({"view": "1", "sequence": "x", "active_seconds": "1"}, "sequence"),
        ({"view": "1", "sequence": "0", "active_seconds": "1"}, "sequence"),
        ({"view": "1", "sequence": "1", "active_seconds": "-3"}, "active_seconds"),
        ({"sequence": "1", "active_seconds": "1"}, "view"),
        (
            {"view": "1", "sequence": "1", "active_seconds": "1", "position": "1e9"},
            "position",
        ),
    ],
)
def test_parse_rejects_bad_field(data, field):
    with pytest.raises(ValueError, match=field):
        parse_heartbeat(data)


# --- The endpoint ------------------------------------------------------------


def post_beat(client: Client, course, lesson, **fields):
    data = {"view": "1", "sequence": "1", "active_seconds": "5", **fields}
    return client.post(beat_url(course, lesson), data)


def test_endpoint_records_heartbeat(client, viewed):
    contact, _user, course, lesson = viewed
    make_kind(lesson, LessonKind.VIDEO)
    sign_in(client, contact)

    response = post_beat(client, course, lesson, position="7")

    body = response.json()
    assert response.status_code == 200
    assert body["accepted"] is True
    assert body["credited_seconds"] == 5
    assert body["time_spent_seconds"] == 5
    assert progress_of(lesson).position_seconds == 7


def test_endpoint_replay_answers_200(client, viewed):
    contact, _user, course, lesson = viewed
    sign_in(client, contact)

    post_beat(client, course, lesson)
    replay = post_beat(client, course, lesson)

    assert replay.status_code == 200
    assert replay.json()["accepted"] is False
    assert progress_of(lesson).time_spent_seconds == 5


@pytest.mark.parametrize("lesson_id", [2**63 - 1, 2**63])
def test_endpoint_lesson_id_beyond_any_row_gets_404(client, viewed, lesson_id):
    contact, _user, course, lesson = viewed
    sign_in(client, contact)

    # The address takes any number of digits. The largest bigint matches no
    # row; one past it does not fit the column's type at all.
    response = client.post(
        f"/learn/courses/{course.slug}/lessons/{lesson_id}/heartbeat/",
        {"view": "1", "sequence": "1", "active_seconds": "5"},
    )

    assert response.status_code == 404
    assert progress_of(lesson).time_spent_seconds == 0


def test_endpoint_other_contact_gets_404(client, viewed):
    _contact, _user, course, lesson = viewed
    sign_in(client, make_contact())

    response = post_beat(client, course, lesson)

    assert response.status_code == 404
    assert progress_of(lesson).time_spent_seconds == 0


def test_endpoint_signed_out_gets_403(client, viewed):
    _contact, _user, course, lesson = viewed

    response = post_beat(client, course, lesson)

    assert response.status_code == 403
    assert "sign in" in response.json()["error"]


def test_endpoint_bad_field_gets_400(client, viewed):
    contact, _user, course, lesson = viewed
    sign_in(client, contact)

    response = post_beat(client, course, lesson, active_seconds="lots")

    assert response.status_code == 400
    assert "active_seconds" in response.json()["error"]


def test_endpoint_rejects_get(client, viewed):
    contact, _user, course, lesson = viewed
    sign_in(client, contact)

    assert client.get(beat_url(course, lesson)).status_code == 405


def test_endpoint_query_count(client, viewed):
    contact, _user, course, lesson = viewed
    sign_in(client, contact)
    # More enrollments with progress must not add queries.
    for _ in range(5):
        other_course, other_lessons = make_course(1)
        record_lesson_view(
            enroll_contact(contact, other_course), other_lessons[0], at=NOW
        )
    # The first heartbeat stores the contact id in the session.
    post_beat(client, course, lesson, sequence="1")

    with CaptureQueriesContext(connection) as queries:
        response = post_beat(client, course, lesson, sequence="2")

    assert response.json()["accepted"]
    sql = [q["sql"] for q in queries.captured_queries]
    # The session and the user come from the session cache, and the
    # heartbeat of a text lesson is one statement, with no transaction,
    # SET LOCAL or contact lookup around it.
    assert "sessions" in settings.CACHES
    assert len(sql) == 1
    assert sql[0].startswith("WITH locked AS")
    assert "customers_contact" not in sql[0]
    assert "auth_user" not in sql[0]


def test_video_heartbeat_reads_then_writes(client, viewed):
    contact, _user, course, lesson = viewed
    make_kind(lesson, LessonKind.VIDEO)
    sign_in(client, contact)
    post_beat(client, course, lesson, sequence="1", position="5")

    with CaptureQueriesContext(connection) as queries:
        response = post_beat(client, course, lesson, sequence="2", position="10")

    assert response.json()["accepted"]
    sql = [q["sql"] for q in queries.captured_queries]
    # A video position is merged into the watched intervals in Python, so
    # the row is read first and written only if nothing changed it since.
    assert len(sql) == 2
    assert sql[0].startswith("SELECT")
    assert sql[1].startswith("UPDATE")


def _script(seed: int) -> list[tuple[int, Heartbeat, int]]:
    """Return (seconds after NOW, heartbeat, page view) steps of one learner.

    Gaps and active seconds fall on both sides of every cap, and some steps
    repeat a sequence number or come from an older page view.
    """
    generator = random.Random(seed)
    steps = []
    second, sequence, view = 0, 0, 1
    for _ in range(40):
        second += generator.choice([0, 1, 3, 14, 15, 16, 22, 45, 3600])
        roll = generator.random()
        if roll < 0.1:
            view += 1
            sequence = 0
        sent_view = view - 1 if roll > 0.9 else view
        if roll < 0.8 or sequence == 0:
            sequence += 1
        active = generator.choice([0, 1, 5, 15, 19, 20, 21, 600])
        steps.append((second, beat(sequence, active, view=sent_view), view))
    return steps


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_one_statement_matches_general_path(viewed, monkeypatch, seed):
    contact, _user, course, lesson = viewed
    other = make_contact()
    record_lesson_view(enroll_contact(other, course), lesson, at=NOW)

    def run(contact_id: int) -> list[tuple[object, ...] | None]:
        results: list[tuple[object, ...] | None] = []
        views_opened = 1
        for second, sent, view in _script(seed):
            at = NOW + timedelta(seconds=second)
            while views_opened < view:
                enrollment = LessonProgress.objects.get(
                    lesson=lesson, enrollment__contact_id=contact_id
                ).enrollment
                record_lesson_view(enrollment, lesson, at=at)
                views_opened += 1
            result = record_heartbeat(contact_id, course.slug, lesson.pk, sent, at=at)
            results.append(dataclasses.astuple(result) if result else None)
        row = LessonProgress.objects.get(
            lesson=lesson, enrollment__contact_id=contact_id
        )
        results.append(
            (row.time_spent_seconds, row.heartbeat_sequence, row.heartbeat_at)
        )
        return results

    with CaptureQueriesContext(connection) as queries:
        one_statement = run(contact.pk)
    assert any(q["sql"].startswith("WITH locked AS") for q in queries)
    # The general path, which the unit tests above check against the caps,
    # is the specification.
    monkeypatch.setattr(heartbeats, "_record_in_one_statement", lambda *a: None)
    general = run(other.pk)

    assert one_statement == general


def test_first_heartbeat_stores_contact_id(client, viewed):
    contact, user, course, lesson = viewed
    # A session begun before sign-in stored the contact's id.
    client.force_login(user)
    assert CONTACT_ID_SESSION_KEY not in client.session

    with CaptureQueriesContext(connection) as queries:
        response = post_beat(client, course, lesson)

    assert response.json()["accepted"]
    assert client.session[CONTACT_ID_SESSION_KEY] == contact.pk
    contact_lookups = [
        q["sql"] for q in queries.captured_queries if "customers_contact" in q["sql"]
    ]
    assert len(contact_lookups) == 1


def test_link_sign_in_stores_contact_id(client, viewed):
    contact, _user, _course, _lesson = viewed
    url = urlsplit(create_sign_in_url(contact)).path

    client.post(url)

    assert client.session[CONTACT_ID_SESSION_KEY] == contact.pk


def test_user_without_contact_gets_404(client, viewed):
    _contact, _user, course, lesson = viewed
    client.force_login(User.objects.create_user("csm", password="a password"))

    response = post_beat(client, course, lesson)

    assert response.status_code == 404
    assert CONTACT_ID_SESSION_KEY not in client.session


def test_interval_constant_is_in_page(client, viewed):
    contact, _user, course, lesson = viewed
    sign_in(client, contact)

    content = client.get(lesson_url(course, lesson)).content.decode()

    assert f'data-interval="{heartbeats.HEARTBEAT_INTERVAL_SECONDS}"' in content
    # The page view just recorded is the second, so its heartbeats carry 2.
    assert 'data-view="2"' in content
    assert beat_url(course, lesson) in content


def test_admin_shows_time_spent(admin_client, viewed):
    contact, _user, course, lesson = viewed
    record_heartbeat(
        contact.pk, course.slug, lesson.pk, beat(1, 14), at=NOW + timedelta(seconds=15)
    )
    enrollment = contact.enrollments.get()

    page = admin_client.get(f"/admin/courses/enrollment/{enrollment.pk}/change/")
    listing = admin_client.get("/admin/courses/lessonprogress/")

    assert "Time spent seconds" in page.content.decode()
    assert '<td class="field-time_spent_seconds">14</td>' in listing.content.decode()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_replays_count_once():
    contact = make_contact()
    course, lessons = make_course(1)
    enrollment = enroll_contact(contact, course)
    record_lesson_view(enrollment, lessons[0], at=NOW)
    sent = beat(1, 15)
    start = threading.Barrier(4)
    results = []

    def post() -> None:
        start.wait()
        try:
            results.append(
                record_heartbeat(
                    contact.pk,
                    course.slug,
                    lessons[0].pk,
                    sent,
                    at=NOW + timedelta(seconds=15),
                )
            )
        finally:
            close_old_connections()
            connection.close()

    threads = [threading.Thread(target=post) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    accepted = [result for result in results if result and result.accepted]
    assert len(results) == 4
    assert len(accepted) == 1
    assert LessonProgress.objects.get(lesson=lessons[0]).time_spent_seconds == 15
