"""The lesson page's general path: a repeat view's queries; text rendered once."""

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from courses import content, views
from courses.models import Enrollment, LessonProgress
from courses.services import count_repeat_view, record_lesson_view
from tests.factories import NOW, make_contact
from tests.portal.helpers import enroll_contact, lesson_url, make_course, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def empty_cache():
    cache.clear()


def page_queries(client: Client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    # The test runs in a transaction, so the view's own transaction is a
    # savepoint here; in production it is the outermost one.
    return [
        query["sql"]
        for query in queries.captured_queries
        if "SAVEPOINT" not in query["sql"]
    ]


def test_general_path_repeat_view_costs_five_queries(monkeypatch):
    # On SQLite, or for a kind whose page reads more, views take this path.
    monkeypatch.setattr(views, "repeat_view_in_one_statement", lambda *args: None)
    contact = make_contact()
    course, lessons = make_course(5, 5)
    enroll_contact(contact, course)
    client = sign_in(Client(), contact)
    for lesson in lessons:
        client.get(lesson_url(course, lesson))

    sql = page_queries(client, lesson_url(course, lessons[2]))

    # The session and the user come from the session cache. Then the
    # contact, the enrollment, the outline's lessons (the current lesson is
    # one of them), the view's UPDATE in autocommit and the progress rows.
    assert len(sql) == 5
    assert not any("django_session" in s or "SAVEPOINT" in s for s in sql)
    assert [s for s in sql if s.startswith("UPDATE")] == [
        s for s in sql if "courses_lessonprogress" in s and s.startswith("UPDATE")
    ]
    assert not any("FOR UPDATE" in s for s in sql)
    assert LessonProgress.objects.get(lesson=lessons[2]).views == 2


def test_general_path_cost_independent_of_course_size(monkeypatch):
    monkeypatch.setattr(views, "repeat_view_in_one_statement", lambda *args: None)
    contact = make_contact()
    small, small_lessons = make_course(2)
    large, large_lessons = make_course(10, 10, 10)
    enroll_contact(contact, small)
    enroll_contact(contact, large)
    client = sign_in(Client(), contact)
    client.get(lesson_url(small, small_lessons[0]))
    client.get(lesson_url(large, large_lessons[0]))

    small_sql = page_queries(client, lesson_url(small, small_lessons[0]))
    large_sql = page_queries(client, lesson_url(large, large_lessons[0]))

    assert len(small_sql) == len(large_sql)


def test_view_past_furthest_takes_locked_path():
    contact = make_contact()
    course, lessons = make_course(3)
    enrollment = enroll_contact(contact, course)
    record_lesson_view(enrollment, lessons[0], at=NOW)
    record_lesson_view(enrollment, lessons[1], at=NOW)
    enrollment = Enrollment.objects.select_related("furthest_lesson__module").get(
        pk=enrollment.pk
    )

    # Lesson 2 has no row yet and lies past the furthest lesson.
    assert not count_repeat_view(enrollment, lessons[2], at=NOW)
    # Lesson 1 is behind the furthest lesson and has a row.
    assert count_repeat_view(enrollment, lessons[0], at=NOW)
    assert LessonProgress.objects.get(lesson=lessons[0]).views == 2
    assert not LessonProgress.objects.filter(lesson=lessons[2]).exists()


def test_repeat_view_starts_new_heartbeat_view():
    contact = make_contact()
    course, lessons = make_course(2)
    enrollment = enroll_contact(contact, course)
    record_lesson_view(enrollment, lessons[1], at=NOW)
    enrollment = Enrollment.objects.select_related("furthest_lesson__module").get(
        pk=enrollment.pk
    )
    LessonProgress.objects.filter(lesson=lessons[1]).update(heartbeat_sequence=7)

    assert count_repeat_view(enrollment, lessons[1], at=NOW)

    progress = LessonProgress.objects.get(lesson=lessons[1])
    assert progress.views == 2
    assert progress.heartbeat_view == 2
    assert progress.heartbeat_sequence == 0
    assert progress.heartbeat_at == NOW


def test_edited_text_shown_at_once(client):
    contact = make_contact()
    course, lessons = make_course(1)
    enroll_contact(contact, course)
    sign_in(client, contact)
    lesson = lessons[0]
    lesson.body = "**First** text"
    lesson.save()
    first = client.get(lesson_url(course, lesson)).content.decode()

    lesson.body = "**Second** text"
    lesson.save()
    second = client.get(lesson_url(course, lesson)).content.decode()

    assert "<strong>First</strong>" in first
    assert "<strong>Second</strong>" in second
    assert "First" not in second


def test_text_rendered_once(client, monkeypatch):
    contact = make_contact()
    course, lessons = make_course(1)
    enroll_contact(contact, course)
    sign_in(client, contact)
    calls: list[str] = []
    real = content.render_markdown

    def counting_render(text: str):
        calls.append(text)
        return real(text)

    monkeypatch.setattr(content, "render_markdown", counting_render)

    client.get(lesson_url(course, lessons[0]))
    client.get(lesson_url(course, lessons[0]))

    assert len(calls) == 1
