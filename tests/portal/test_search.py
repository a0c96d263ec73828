"""Portal search: only what the contact may see, snippets, and a fixed query count."""

import pytest
from django.contrib.postgres.search import SearchQuery
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from courses.models import Course, Lesson, Module
from courses.search import (
    MAX_QUERY_LENGTH,
    StoredLessonDocument,
    search_portal,
    substring_snippet,
)
from courses.services import end_trigger_enrollments, enroll
from tests.factories import make_contact
from tests.portal.helpers import enroll_contact, make_course, sign_in

pytestmark = pytest.mark.django_db


def titled_course(title, *, body="", summary="", published=True, **fields):
    course, lessons = make_course(1, published=published)
    course.title = title
    course.summary = summary
    for name, value in fields.items():
        setattr(course, name, value)
    course.save()
    lessons[0].title = f"{title} basics"
    lessons[0].body = body
    lessons[0].save()
    return course, lessons[0]


def titles(hits):
    return [hit.title for hit in hits]


def test_finds_enrolled_course_and_lesson():
    contact = make_contact()
    course, lesson = titled_course(
        "Quarterly reporting", body="Build a revenue dashboard every quarter."
    )
    enroll_contact(contact, course)

    hits = search_portal(contact, "dashboard")

    assert titles(hits) == [lesson.title]
    assert hits[0].is_lesson
    assert hits[0].course_title == "Quarterly reporting"
    assert hits[0].url == f"/learn/courses/{course.slug}/lessons/{lesson.pk}/"
    assert "<mark>dashboard</mark>" in hits[0].snippet


def test_never_finds_hidden_courses():
    contact = make_contact()
    titled_course("Secret draft", body="alpha", published=False)
    draft, _lesson = titled_course("Enrolled draft", body="alpha", published=False)
    enroll_contact(contact, draft)
    titled_course("Someone else's course", body="alpha")
    titled_course(
        "Meant for admins",
        body="alpha",
        in_catalogue=True,
        audience={"field": "contact.role", "op": "==", "value": "admin"},
    )

    assert search_portal(contact, "alpha") == []
    assert search_portal(contact, "secret") == []
    assert search_portal(contact, "admins") == []


def test_unenrolled_by_trigger_is_hidden():
    contact = make_contact()
    course, _lesson = titled_course("Trigger course", body="alpha")
    enroll(contact, course, source="automatic", origin="trigger:t")
    end_trigger_enrollments("trigger:t")

    assert search_portal(contact, "alpha") == []


def test_catalogue_course_found_without_lessons():
    contact = make_contact()
    course, _lesson = titled_course(
        "Admin tour",
        summary="A tour of the settings",
        body="settings page",
        in_catalogue=True,
    )

    hits = search_portal(contact, "settings")

    assert titles(hits) == ["Admin tour"]
    assert not hits[0].is_lesson
    assert hits[0].url == f"/learn/catalogue/#course-{course.slug}"


def test_snippet_escapes_lesson_text():
    contact = make_contact()
    course, _lesson = titled_course(
        "Scripts", body="Never paste <script>alert(1)</script> into a report."
    )
    enroll_contact(contact, course)

    hits = search_portal(contact, "report")

    # PostgreSQL's headline drops the tags, and the substring snippet
    # escapes them; neither reaches the page as HTML.
    assert "<script>" not in hits[0].snippet
    assert "alert(1)" in hits[0].snippet


def test_substring_snippet_escapes_text():
    snippet = substring_snippet("Never paste <script>alert(1)</script> here", "paste")

    assert "<script>" not in snippet
    assert "&lt;script&gt;" in snippet


def test_substring_snippet_marks_match():
    text = "x" * 200 + " Invite your TEAM now " + "y" * 200

    snippet = substring_snippet(text, "team")

    assert "<mark>TEAM</mark>" in snippet
    assert snippet.startswith("…")
    assert snippet.endswith("…")
    assert len(snippet) < 200


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="stemming needs PostgreSQL"
)
def test_full_text_matches_word_forms():
    contact = make_contact()
    course, lesson = titled_course("Exports", body="Exporting reports to CSV.")
    enroll_contact(contact, course)

    # "export" and "report" match "Exporting" and "reports" by their stems;
    # the course's own title and summary lack "report".
    assert titles(search_portal(contact, "export report")) == [lesson.title]


def test_query_count_is_constant():
    contact = make_contact()

    def grow(count):
        for number in range(count):
            course, _lesson = titled_course(f"Onboarding {number}", body="onboarding")
            enroll_contact(contact, course)
            titled_course(f"Listed {number}", summary="onboarding", in_catalogue=True)

    grow(2)
    with CaptureQueriesContext(connection) as small:
        small_hits = search_portal(contact, "onboarding")
    grow(8)
    with CaptureQueriesContext(connection) as large:
        large_hits = search_portal(contact, "onboarding")

    assert len(small_hits) < len(large_hits)
    assert len(small) == len(large)
    assert len(large) <= 6


def test_search_page_lists_results(client):
    contact = make_contact()
    course, lesson = titled_course("Reporting", body="Build a dashboard.")
    enroll_contact(contact, course)
    sign_in(client, contact)

    response = client.get("/learn/search/", {"q": "dashboard"})

    page = response.content.decode()
    assert response.status_code == 200
    assert '<label for="search-query">' in page
    assert 'role="search"' in page
    assert "1 result for “dashboard”" in page
    assert f'href="/learn/courses/{course.slug}/lessons/{lesson.pk}/"' in page


def test_search_page_rejects_long_query(client):
    sign_in(client, make_contact())

    response = client.get("/learn/search/", {"q": "a" * (MAX_QUERY_LENGTH + 1)})

    assert response.status_code == 400
    assert f"use at most {MAX_QUERY_LENGTH}" in response.content.decode()


def test_search_page_rejects_nul_character(client):
    sign_in(client, make_contact())

    response = client.get("/learn/search/", {"q": "a\x00b"})

    assert response.status_code == 400
    assert "contains a NUL character" in response.content.decode()


def test_search_page_needs_contact():
    response = Client().get("/learn/search/?q=x")

    assert response.status_code == 302
    assert response["Location"].startswith("/learn/sign-in/")


@pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the GIN index is PostgreSQL only"
)
def test_lesson_match_can_use_gin_index():
    with connection.cursor() as cursor:
        # The test table is tiny, so a sequential scan would win on cost.
        cursor.execute("SET LOCAL enable_seqscan = off")

    plan = (
        Lesson.objects.annotate(document=StoredLessonDocument())
        .filter(document=SearchQuery("dashboard", config="english"))
        .explain()
    )

    assert "courses_lesson_document_gin" in plan


def test_lessons_of_catalogue_course_not_searched():
    contact = make_contact()
    course = Course.objects.create(
        slug="listed", title="Listed", in_catalogue=True, is_published=True
    )
    module = Module.objects.create(course=course, title="M", order=1)
    Lesson.objects.create(module=module, title="Hidden lesson", body="zebra")

    assert search_portal(contact, "zebra") == []
