"""The text-lesson heartbeat's prepared statement across a schema change."""

from datetime import timedelta

import pytest
from django.db import connection

from courses.heartbeats import Heartbeat, record_heartbeat
from courses.models import LessonProgress
from courses.services import record_lesson_view
from tests.factories import NOW, make_contact
from tests.portal.helpers import alter_progress_column, enroll_contact, make_course

pytestmark = pytest.mark.skipif(
    connection.vendor != "postgresql", reason="the one statement runs on PostgreSQL"
)

# Enough heartbeats for psycopg to prepare the statement (prepare_threshold).
PREPARED_AFTER = 5


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_heartbeat_after_column_type_change(caplog):
    contact = make_contact()
    course, lessons = make_course(1)
    enrollment = enroll_contact(contact, course)
    record_lesson_view(enrollment, lessons[0], at=NOW)

    def send(sequence: int):
        return record_heartbeat(
            contact.pk,
            course.slug,
            lessons[0].pk,
            Heartbeat(
                view=1, sequence=sequence, active_seconds=15, position_seconds=None
            ),
            at=NOW + timedelta(seconds=15 * sequence),
        )

    beats = PREPARED_AFTER + 2
    for sequence in range(1, beats + 1):
        send(sequence)
    alter_progress_column("time_spent_seconds", "bigint")
    try:
        # Enough to prepare the statement again and run it prepared.
        later = range(beats + 1, beats + PREPARED_AFTER + 3)
        after_change = [send(sequence) for sequence in later]
    finally:
        # Later tests reuse this connection, which prepared the statement.
        connection.close()
        alter_progress_column("time_spent_seconds", "integer")

    assert all(result and result.accepted for result in after_change)
    assert len(after_change) == PREPARED_AFTER + 2
    assert caplog.text.count("A prepared statement failed, deallocating it") == 1
    spent = LessonProgress.objects.get().time_spent_seconds
    assert spent == 15 * (beats + PREPARED_AFTER + 2)
