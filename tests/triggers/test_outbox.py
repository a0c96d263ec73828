"""Sending the outbox: one claim per row, retries with backoff, stuck rows."""

import smtplib
from datetime import timedelta

import pytest
from django.core.mail.backends.base import BaseEmailBackend
from django.utils import timezone

from tests.factories import NOW, make_contact
from tests.triggers.factories import make_template, make_trigger
from triggers import tasks
from triggers.models import OutboxEmail
from triggers.outbox import MAX_ATTEMPTS, message_id_for, retry_delay
from triggers.services import (
    release_stuck_email,
    retry_failed_email,
    run_sweep,
    send_outbox_email,
)

pytestmark = pytest.mark.django_db

FAILING_BACKEND = "tests.triggers.test_outbox.DisconnectedBackend"


class DisconnectedBackend(BaseEmailBackend):
    """A mail backend whose server always drops the connection."""

    def send_messages(self, email_messages):
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


def make_outbox_email(**fields):
    make_contact(first_name="Ada")
    trigger = make_trigger(
        {"kind": "inactivity", "days": 10}, email_template=make_template()
    )
    run_sweep(NOW, triggers=[trigger])
    email = OutboxEmail.objects.get()
    if fields:
        OutboxEmail.objects.filter(pk=email.pk).update(**fields)
        email.refresh_from_db()
    return email


def test_send_delivers_and_marks_sent(mailoutbox):
    email = make_outbox_email()

    assert send_outbox_email(email.pk) is True

    email.refresh_from_db()
    assert email.status == "sent"
    assert email.attempts == 1
    assert email.sent_at is not None
    assert email.message_id == message_id_for(email)
    assert len(mailoutbox) == 1
    message = mailoutbox[0]
    assert message.to == [email.to_email]
    assert message.subject == "Hello Ada"
    assert message.extra_headers["Message-ID"] == email.message_id


def test_second_send_delivers_nothing(mailoutbox):
    email = make_outbox_email()

    results = [send_outbox_email(email.pk), send_outbox_email(email.pk)]

    assert results == [True, False]
    assert len(mailoutbox) == 1


def test_row_claimed_elsewhere_not_sent(mailoutbox):
    email = make_outbox_email(status="sending", attempts=1, claimed_at=timezone.now())

    assert send_outbox_email(email.pk) is False

    assert mailoutbox == []
    email.refresh_from_db()
    assert email.status == "sending"
    assert email.attempts == 1


def test_missing_row_not_sent(mailoutbox):
    assert send_outbox_email(999_999) is False
    assert mailoutbox == []


def test_backend_failure_leaves_row_pending(settings, mailoutbox):
    email = make_outbox_email()
    settings.EMAIL_BACKEND = FAILING_BACKEND
    before = timezone.now()

    assert send_outbox_email(email.pk) is False

    email.refresh_from_db()
    assert email.status == "pending"
    assert email.attempts == 1
    assert email.last_error == "SMTPServerDisconnected: Connection unexpectedly closed"
    assert email.next_attempt_at >= before + timedelta(minutes=1)
    assert email.next_attempt_at <= timezone.now() + timedelta(minutes=1)
    # Not due yet, so an immediate second call does not claim it.
    assert send_outbox_email(email.pk) is False
    email.refresh_from_db()
    assert email.attempts == 1


def test_retry_keeps_message_id(settings, mailoutbox):
    email = make_outbox_email()
    settings.EMAIL_BACKEND = FAILING_BACKEND
    send_outbox_email(email.pk)
    email.refresh_from_db()
    first_message_id = email.message_id
    OutboxEmail.objects.filter(pk=email.pk).update(next_attempt_at=timezone.now())
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"

    assert send_outbox_email(email.pk) is True

    email.refresh_from_db()
    assert email.attempts == 2
    assert email.last_error == ""
    assert mailoutbox[0].extra_headers["Message-ID"] == first_message_id


def test_last_attempt_marks_failed(settings, mailoutbox):
    email = make_outbox_email(attempts=MAX_ATTEMPTS - 1)
    settings.EMAIL_BACKEND = FAILING_BACKEND

    assert send_outbox_email(email.pk) is False

    email.refresh_from_db()
    assert email.status == "failed"
    assert email.attempts == MAX_ATTEMPTS
    assert "SMTPServerDisconnected" in email.last_error


@pytest.mark.parametrize(
    ("attempts", "expected"),
    [
        (1, timedelta(minutes=1)),
        (2, timedelta(minutes=2)),
        (5, timedelta(minutes=16)),
        (7, timedelta(hours=1)),
        (20, timedelta(hours=1)),
    ],
)
def test_retry_delay_doubles_up_to_cap(attempts, expected):
    assert retry_delay(attempts) == expected


def test_release_stuck_email():
    long_ago = timezone.now() - timedelta(minutes=30)
    stuck = make_outbox_email(status="sending", attempts=1, claimed_at=long_ago)
    exhausted = OutboxEmail.objects.create(
        firing=stuck.firing,
        contact=make_contact(),
        template=stuck.template,
        to_email="other@example.com",
        subject="Hello",
        body_text="Hi",
        status="sending",
        attempts=MAX_ATTEMPTS,
        claimed_at=long_ago,
    )
    recent = OutboxEmail.objects.create(
        firing=stuck.firing,
        contact=make_contact(),
        template=stuck.template,
        to_email="third@example.com",
        subject="Hello",
        body_text="Hi",
        status="sending",
        attempts=1,
        claimed_at=timezone.now() - timedelta(minutes=1),
    )

    assert release_stuck_email(older_than=timedelta(minutes=15)) == 2

    statuses = dict(OutboxEmail.objects.values_list("pk", "status"))
    assert statuses == {
        stuck.pk: "pending",
        exhausted.pk: "failed",
        recent.pk: "sending",
    }
    stuck.refresh_from_db()
    assert "Released after more than" in stuck.last_error


def test_retry_failed_email_sends_again(django_capture_on_commit_callbacks, mailoutbox):
    failed = make_outbox_email(status="failed", attempts=MAX_ATTEMPTS, last_error="x")

    with django_capture_on_commit_callbacks(execute=True):
        assert retry_failed_email([failed.pk]) == 1

    failed.refresh_from_db()
    assert failed.status == "sent"
    assert failed.attempts == 1
    assert len(mailoutbox) == 1


def test_retry_ignores_rows_not_failed(django_capture_on_commit_callbacks):
    pending = make_outbox_email()

    with django_capture_on_commit_callbacks(execute=True):
        assert retry_failed_email([pending.pk]) == 0

    pending.refresh_from_db()
    assert pending.status == "pending"


def test_pending_task_sends_due_rows(mailoutbox):
    due = make_outbox_email(claimed_at=None)
    waiting = OutboxEmail.objects.create(
        firing=due.firing,
        contact=make_contact(),
        template=due.template,
        to_email="later@example.com",
        subject="Hello",
        body_text="Hi",
        next_attempt_at=timezone.now() + timedelta(minutes=5),
    )

    queued = tasks.send_pending_email.delay().get()

    assert queued == 1
    assert [message.to for message in mailoutbox] == [[due.to_email]]
    waiting.refresh_from_db()
    assert waiting.status == "pending"


def test_pending_task_releases_stuck_rows(mailoutbox):
    stuck = make_outbox_email(
        status="sending", attempts=1, claimed_at=timezone.now() - timedelta(hours=1)
    )

    tasks.send_pending_email.delay()

    stuck.refresh_from_db()
    assert stuck.status == "sent"
    assert stuck.attempts == 2
    assert len(mailoutbox) == 1
