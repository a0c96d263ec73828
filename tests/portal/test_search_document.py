"""The lessons' stored search document: current after every write, same ranking.

On PostgreSQL a trigger (migration 0015) keeps each lesson's
search_document equal to its title weighted A and text weighted B. The
expected documents here come from Django's SearchVector for that
definition, compiled by the ORM, and not from the trigger's SQL. SQLite
has no such column, and its search must still work.
"""

import importlib

import pytest
from django.contrib.postgres.search import SearchQuery, SearchRank
from django.db import connection

from courses.models import Lesson
from courses.search import (
    SEARCH_CONFIG,
    StoredLessonDocument,
    search_portal,
    weighted_document,
)
from tests.factories import make_contact
from tests.portal.helpers import enroll_contact, make_course
from tests.sqlite_child import run_on_sqlite

pytestmark = pytest.mark.django_db

postgresql_only = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the stored document is PostgreSQL only"
)
migration = importlib.import_module("courses.migrations.0015_lesson_search_document")


def stored_and_expected(lessons):
    """Return {lesson id: (stored document, document computed now)} as text."""
    rows = (
        Lesson.objects.filter(pk__in=[lesson.pk for lesson in lessons])
        .annotate(stored=StoredLessonDocument(), expected=weighted_document("body"))
        .values_list("pk", "stored", "expected")
    )
    return {pk: (stored, expected) for pk, stored, expected in rows}


def assert_current(lessons):
    documents = stored_and_expected(lessons)
    assert len(documents) == len(lessons)
    for pk, (stored, expected) in documents.items():
        assert stored == expected, f"lesson {pk}"


@postgresql_only
def test_document_weights_title_and_text():
    _course, lessons = make_course(1)
    Lesson.objects.filter(pk=lessons[0].pk).update(title="Export", body="reports")

    stored, _expected = stored_and_expected(lessons)[lessons[0].pk]

    # PostgreSQL's text form: each lexeme with its positions and weight.
    assert stored == "'export':1A 'report':2B"


@postgresql_only
def test_document_set_on_create():
    _course, lessons = make_course(2)

    assert_current(lessons)


@postgresql_only
def test_document_follows_save():
    _course, lessons = make_course(1)
    lesson = lessons[0]
    before = stored_and_expected(lessons)[lesson.pk][0]

    lesson.title = "Scheduling exports"
    lesson.body = "Send the weekly report by email."
    lesson.save()

    assert_current(lessons)
    assert stored_and_expected(lessons)[lesson.pk][0] != before


@postgresql_only
def test_document_follows_save_of_some_fields():
    _course, lessons = make_course(1)
    lesson = lessons[0]

    lesson.body = "Invite the whole team."
    lesson.save(update_fields=["body"])

    assert_current(lessons)
    assert "'invit':" in stored_and_expected(lessons)[lesson.pk][0]


@postgresql_only
def test_document_set_by_bulk_create():
    _course, lessons = make_course(1)
    module = lessons[0].module

    created = Lesson.objects.bulk_create(
        Lesson(module=module, title=f"Audit {number}", body="roles", order=number)
        for number in range(2, 5)
    )

    assert_current(created)


@postgresql_only
def test_document_follows_queryset_update():
    _course, lessons = make_course(3)

    Lesson.objects.filter(pk__in=[lesson.pk for lesson in lessons]).update(
        body="Billing settings"
    )

    assert_current(lessons)
    assert all(
        "'bill':" in stored for stored, _ in stored_and_expected(lessons).values()
    )


@postgresql_only
def test_document_follows_bulk_update():
    _course, lessons = make_course(2)
    for lesson in lessons:
        lesson.title = f"Calendar sync {lesson.pk}"

    Lesson.objects.bulk_update(lessons, ["title"])

    assert_current(lessons)


@postgresql_only
def test_direct_write_of_document_is_replaced():
    _course, lessons = make_course(1)

    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE courses_lesson SET search_document = 'wrong' WHERE id = %s",
            [lessons[0].pk],
        )

    assert_current(lessons)


@postgresql_only
def test_migration_fills_existing_rows():
    _course, lessons = make_course(2)
    with connection.cursor() as cursor:
        # Rows as they stood before the migration, with no document. In
        # the replica role PostgreSQL fires no ordinary trigger.
        cursor.execute("SET LOCAL session_replication_role = replica")
        cursor.execute("UPDATE courses_lesson SET search_document = NULL")
        cursor.execute("SET LOCAL session_replication_role = DEFAULT")
        documents = stored_and_expected(lessons).values()
        assert all(stored is None for stored, _expected in documents)

        cursor.execute(migration.FILL)

    assert_current(lessons)


@postgresql_only
def test_ranking_matches_computed_document():
    contact = make_contact()
    course, lessons = make_course(5)
    enroll_contact(contact, course)
    texts = [
        ("Dashboard basics", "Open the dashboard."),
        ("Getting started", "A dashboard, a second dashboard, a third dashboard."),
        ("Getting started again", "One dashboard."),
        ("Dashboards for teams", "Share it."),
        ("Exports", "Nothing to see here."),
    ]
    for lesson, (title, body) in zip(lessons, texts, strict=True):
        lesson.title = title
        lesson.body = body
        lesson.save()
    search = SearchQuery("dashboard", search_type="websearch", config=SEARCH_CONFIG)
    # The order that ranking by a document computed per search gives.
    expected = list(
        Lesson.objects.filter(module__course=course)
        .annotate(rank=SearchRank(weighted_document("body"), search))
        .filter(rank__gt=0)
        .order_by("-rank", "pk")
        .values_list("title", flat=True)
    )

    found = [hit.title for hit in search_portal(contact, "dashboard") if hit.is_lesson]

    assert found == expected
    assert len(found) == 4
    # A match in the title outranks text that repeats the word.
    assert found.index("Dashboard basics") < found.index("Getting started")
    assert found.index("Getting started") < found.index("Getting started again")


# The child process: migrate an empty SQLite database, then search.
SQLITE_SCRIPT = """
import json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from courses.search import search_portal
from tests.factories import make_contact
from tests.portal.helpers import enroll_contact, make_course
contact = make_contact()
course, lessons = make_course(2)
enroll_contact(contact, course)
lessons[1].body = "Build a revenue Dashboard every quarter."
lessons[1].save()
hits = search_portal(contact, "dashboard")
print(json.dumps([[hit.title, str(hit.snippet)] for hit in hits]))
"""


def test_sqlite_search_still_matches(tmp_path):
    hits = run_on_sqlite(SQLITE_SCRIPT, tmp_path)

    assert len(hits) == 1
    title, snippet = hits[0]
    assert title.endswith(".1.2")
    assert "<mark>Dashboard</mark>" in snippet
