"""The counter statements' quick form: asynchronous commit, in their own transaction."""

from datetime import timedelta

import psycopg
import pytest
from django.db import OperationalError, connection, transaction

from courses.heartbeats import (
    ONE_STATEMENT,
    Heartbeat,
    one_statement_params,
    record_heartbeat,
)
from courses.lesson_page import (
    REPEAT_VIEW,
    repeat_view_in_one_statement,
    repeat_view_params,
)
from courses.models import LessonProgress
from courses.prepared import CounterStatement, fetch_prepared
from courses.services import record_lesson_view
from tests.factories import NOW, make_contact
from tests.portal.helpers import enroll_contact, make_course

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the statements run on PostgreSQL"
)


def synchronous_commit() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return cursor.fetchone()[0]


def viewed_lesson():
    """A learner who has opened a text lesson once; return (contact, course, lesson)."""
    contact = make_contact()
    course, lessons = make_course(2)
    enrollment = enroll_contact(contact, course)
    record_lesson_view(enrollment, lessons[0], at=NOW)
    return contact, course, lessons[0]


def beat(view: int) -> Heartbeat:
    """The first heartbeat of the lesson's page view number ``view``."""
    return Heartbeat(view=view, sequence=1, active_seconds=15, position_seconds=None)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_quick_form_commits_and_resets():
    contact, course, lesson = viewed_lesson()

    page = repeat_view_in_one_statement(contact.pk, course.slug, lesson.pk, at=NOW)
    after_view = synchronous_commit()
    counted = record_heartbeat(
        contact.pk, course.slug, lesson.pk, beat(2), at=NOW + timedelta(seconds=15)
    )
    after_beat = synchronous_commit()

    assert page is not None
    assert page.progress is not None
    assert page.progress.views == 2
    assert counted is not None
    assert counted.accepted
    # Both writes were committed, each as its own transaction, so a second
    # connection reads them.
    with psycopg.connect(**connection.get_connection_params()) as other:
        written = other.execute(
            f"SELECT views, time_spent_seconds FROM {LessonProgress._meta.db_table}"
            " WHERE lesson_id = %s",
            [lesson.pk],
        ).fetchone()
    assert written == (2, 15)
    # The setting lasted only as long as each statement's transaction.
    assert after_view == after_beat == "on"


def page_view_params(contact, course, lesson):
    return repeat_view_params(contact.pk, course.slug, lesson.pk, NOW)


def heartbeat_params(contact, course, lesson):
    at = NOW + timedelta(seconds=15)
    return one_statement_params(contact.pk, course.slug, lesson.pk, beat(1), at)


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
@pytest.mark.parametrize(
    "statement, params",
    [(REPEAT_VIEW, page_view_params), (ONE_STATEMENT, heartbeat_params)],
)
def test_quick_form_commits_asynchronously(statement, params):
    contact, course, lesson = viewed_lesson()

    with transaction.atomic():
        row = fetch_prepared(statement.quick, params(contact, course, lesson))
        inside = synchronous_commit()
    after = synchronous_commit()

    # The last column is the setting's new value, which fetch_counted drops.
    assert row is not None
    assert row[-1] == "off"
    assert (inside, after) == ("off", "on")


@pytest.mark.django_db
def test_durable_form_inside_a_transaction():
    contact, course, lesson = viewed_lesson()

    # The test runs inside a transaction, which a caller's other writes
    # share, so the durable form runs.
    page = repeat_view_in_one_statement(contact.pk, course.slug, lesson.pk, at=NOW)
    counted = record_heartbeat(
        contact.pk, course.slug, lesson.pk, beat(2), at=NOW + timedelta(seconds=15)
    )

    assert page is not None
    assert page.progress is not None
    assert page.progress.views == 2
    assert counted is not None
    assert counted.accepted
    assert synchronous_commit() == "on"


@pytest.mark.django_db
def test_prepared_datetimes_equal_orm():
    contact, course, lesson = viewed_lesson()

    page = repeat_view_in_one_statement(contact.pk, course.slug, lesson.pk, at=NOW)
    stored = LessonProgress.objects.get(lesson=lesson)

    assert page is not None
    assert page.progress is not None
    for name in ("started_at", "heartbeat_at", "updated_at"):
        prepared, orm = getattr(page.progress, name), getattr(stored, name)
        assert prepared == orm, name
        # The same time zone object, not only the same instant.
        assert prepared.tzinfo is orm.tzinfo, name


def test_statement_without_marker_rejected():
    with pytest.raises(ValueError, match="must contain COMMIT_COLUMN exactly once"):
        CounterStatement.marked("UPDATE t SET n = n + 1 RETURNING n")


def test_statements_fit_psycopg_query_cache():
    # psycopg parses the placeholders of a longer statement again on every
    # call. The lesson page's statement uses short aliases to stay under it.
    from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

    for statement in (REPEAT_VIEW, ONE_STATEMENT):
        assert len(statement.quick.encode()) <= MAX_CACHED_STATEMENT_LENGTH


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_statement_reconnects_after_server_close():
    contact, course, lesson = viewed_lesson()
    repeat_view_in_one_statement(contact.pk, course.slug, lesson.pk, at=NOW)
    closed_pid = connection.connection.info.backend_pid
    with psycopg.connect(**connection.get_connection_params()) as other:
        other.execute("SELECT pg_terminate_backend(%s)", [closed_pid])
    # What Django runs when the next request starts, with CONN_HEALTH_CHECKS.
    connection.close_if_unusable_or_obsolete()

    page = repeat_view_in_one_statement(contact.pk, course.slug, lesson.pk, at=NOW)

    assert page is not None
    assert page.progress is not None
    assert page.progress.views == 3
    assert connection.connection.info.backend_pid != closed_pid


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_unreachable_server_raises(monkeypatch, caplog):
    contact, course, lesson = viewed_lesson()
    connection.close()

    def refuse_connection():
        raise OperationalError("connection refused")

    monkeypatch.setattr(connection, "ensure_connection", refuse_connection)

    with pytest.raises(OperationalError, match="connection refused"):
        fetch_prepared(REPEAT_VIEW.durable, page_view_params(contact, course, lesson))
    # No connection was made, so there is nothing the server closed and no
    # reason to retry.
    assert "Reconnecting" not in caplog.text
