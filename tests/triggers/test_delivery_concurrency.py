"""Parallel senders on real PostgreSQL connections: the claim and the cap hold."""

import threading
import time
from datetime import time as clock_time

import pytest
from django.core.mail.backends.locmem import EmailBackend
from django.db import connection

from tests.factories import NOW, make_contact
from tests.triggers.factories import make_template, make_trigger
from triggers.models import DeliveryRules, OutboxEmail
from triggers.services import run_sweep, send_outbox_email

# The threads need committed rows, so these tests commit. serialized_rollback
# restores the rows that data migrations seed, which the closing flush removes.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

SLOW_BACKEND = "tests.triggers.test_delivery_concurrency.SlowBackend"


class SlowBackend(EmailBackend):
    """The in-memory backend with a mail server that takes a while to respond.

    A slow send keeps rows in "sending" while other workers decide, which
    is the case the cap has to count.
    """

    def send_messages(self, messages):
        time.sleep(0.2)
        return super().send_messages(messages)


def send_in_parallel(outbox_ids: list[int]) -> list[bool]:
    """Send each row from its own thread, each with its own database connection."""
    barrier = threading.Barrier(len(outbox_ids))
    results: list[bool | None] = [None] * len(outbox_ids)

    def send(index: int, outbox_id: int) -> None:
        try:
            barrier.wait(timeout=10)
            results[index] = send_outbox_email(outbox_id)
        finally:
            connection.close()

    threads = [
        threading.Thread(target=send, args=(index, outbox_id))
        for index, outbox_id in enumerate(outbox_ids)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert all(result is not None for result in results), "a sender thread failed"
    return [bool(result) for result in results]


def write_emails(count: int) -> list[int]:
    make_contact()
    triggers = [
        make_trigger({"kind": "inactivity", "days": 10}, email_template=make_template())
        for _ in range(count)
    ]
    run_sweep(NOW, triggers=triggers, queue_email=False)
    return list(OutboxEmail.objects.order_by("pk").values_list("pk", flat=True))


def test_parallel_senders_keep_cap(settings, mailoutbox):
    settings.EMAIL_BACKEND = SLOW_BACKEND
    DeliveryRules.objects.create(
        cap_emails=2,
        cap_window_days=7,
        # Longer than the window, so the emails over the cap wait instead of
        # being dropped: their slot is a week after the first sends, which
        # happen after the emails were written.
        max_deferral_days=8,
        quiet_hours_enabled=False,
        send_from=clock_time(9, 0),
        send_until=clock_time(17, 0),
    )
    outbox_ids = write_emails(6)

    results = send_in_parallel(outbox_ids)

    assert sum(results) == 2
    assert len(mailoutbox) == 2
    statuses = list(OutboxEmail.objects.values_list("status", flat=True))
    assert statuses.count("sent") == 2
    assert statuses.count("pending") == 4
    deferred = OutboxEmail.objects.filter(status="pending")
    assert all(email.next_attempt_at is not None for email in deferred)


def test_parallel_claims_send_row_once(mailoutbox):
    [outbox_id] = write_emails(1)

    results = send_in_parallel([outbox_id] * 4)

    assert sum(results) == 1
    assert len(mailoutbox) == 1
    email = OutboxEmail.objects.get()
    assert email.status == "sent"
    assert email.attempts == 1
