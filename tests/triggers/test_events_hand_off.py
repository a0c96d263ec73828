"""The event path's hand-off: all accounts of a commit reach Redis in one round trip."""

import logging
import socket
import uuid
from typing import Any

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError

from customers import services as customers
from customers.models import UsageEvent
from tests.factories import make_contact
from tests.triggers.factories import make_trigger
from triggers import events, tasks
from triggers.models import Firing

USED_TODAY = {"kind": "event_count", "days": 1, "op": ">=", "value": 1}


class CountingRedis(redis.Redis):
    """A Redis client that counts its round trips: each command and pipeline run."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.round_trips = 0

    def execute_command(self, *args: Any, **options: Any) -> Any:
        self.round_trips += 1
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> Any:
        pipe = super().pipeline(transaction, shard_hint)
        execute = pipe.execute

        # A pipeline writes all its commands, then reads all replies.
        def counted_execute(raise_on_error: bool = True) -> Any:
            self.round_trips += 1
            return execute(raise_on_error)

        pipe.execute = counted_execute  # type: ignore[method-assign]
        return pipe


class RunRecorder:
    """Stands in for the process_account_changes task and records its queuing."""

    def __init__(self, fail_for: frozenset[int] = frozenset()) -> None:
        self.queued: list[int] = []
        self.fail_for = fail_for

    def delay(self, account_id: int) -> None:
        if account_id in self.fail_for:
            raise OperationalError("connection to the broker refused")
        self.queued.append(account_id)


@pytest.fixture
def counting_coalescer(monkeypatch):
    """A coalescer on the test Redis with its own keys, used by the event path."""
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("set CELERY_BROKER_URL to a Redis URL to test the hand-off")
    client = CountingRedis.from_url(settings.CELERY_BROKER_URL)
    prefix = f"test-hand-off-{uuid.uuid4().hex}"
    coalescer = events.ChangeCoalescer(client, window_seconds=2, prefix=prefix)
    monkeypatch.setattr(events, "coalescer", lambda: coalescer)
    yield coalescer
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def record_usage_in_one_transaction(contacts, callbacks_fixture) -> None:
    now = timezone.now()
    with callbacks_fixture(execute=True), transaction.atomic():
        for contact in contacts:
            customers.record_usage_event(contact, "Report Run", now)


@pytest.mark.django_db
def test_accounts_of_commit_one_round_trip(
    counting_coalescer, monkeypatch, django_capture_on_commit_callbacks
):
    contacts = [make_contact() for _ in range(25)]
    runs = RunRecorder()
    monkeypatch.setattr(tasks, "process_account_changes", runs)

    record_usage_in_one_transaction(contacts, django_capture_on_commit_callbacks)

    assert counting_coalescer.client.round_trips == 1
    assert sorted(runs.queued) == sorted(contact.account_id for contact in contacts)
    for contact in contacts:
        assert counting_coalescer.take(contact.account_id) == {"usage"}


@pytest.mark.django_db
def test_every_account_of_commit_evaluated(
    counting_coalescer, monkeypatch, django_capture_on_commit_callbacks
):
    contacts = [make_contact() for _ in range(12)]
    trigger = make_trigger(USED_TODAY)
    runs = RunRecorder()
    with monkeypatch.context() as patch:
        patch.setattr(tasks, "process_account_changes", runs)
        record_usage_in_one_transaction(contacts, django_capture_on_commit_callbacks)

    # The queued runs, eager here, evaluate each account as a worker would.
    for account_id in runs.queued:
        tasks.process_account_changes(account_id)

    fired = set(Firing.objects.filter(trigger=trigger).values_list("contact_id"))
    assert fired == {(contact.pk,) for contact in contacts}
    assert Firing.objects.filter(trigger=trigger).count() == len(contacts)


@pytest.mark.django_db
def test_scheduled_accounts_not_queued_again(
    counting_coalescer, monkeypatch, django_capture_on_commit_callbacks
):
    contacts = [make_contact() for _ in range(5)]
    runs = RunRecorder()
    monkeypatch.setattr(tasks, "process_account_changes", runs)
    record_usage_in_one_transaction(contacts, django_capture_on_commit_callbacks)
    newcomer = make_contact()
    runs.queued.clear()
    counting_coalescer.client.round_trips = 0

    # The first five have a run scheduled already, so only the sixth
    # account needs one; the others' sources wait in pending for theirs.
    now = timezone.now()
    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        customers.record_survey_response(contacts[0], "nps", 9, now)
        customers.record_usage_event(newcomer, "Report Run", now)

    assert counting_coalescer.client.round_trips == 1
    assert runs.queued == [newcomer.account_id]
    assert counting_coalescer.take(contacts[0].account_id) == {"usage", "surveys"}


def test_large_commit_split_into_round_trips(counting_coalescer, monkeypatch):
    monkeypatch.setattr(events, "ACCOUNTS_PER_ROUND_TRIP", 2)
    changes = {account_id: {"usage"} for account_id in (11, 12, 13, 14, 15)}

    must_queue = counting_coalescer.add_many(changes)

    # Five accounts, two per transaction: 2 + 2 + 1.
    assert counting_coalescer.client.round_trips == 3
    assert must_queue == [11, 12, 13, 14, 15]


def test_account_without_sources_skipped(counting_coalescer):
    must_queue = counting_coalescer.add_many({21: {"usage"}, 22: set()})

    assert must_queue == [21]
    assert counting_coalescer.take(22) == frozenset()


@pytest.mark.django_db
def test_redis_down_keeps_commit_and_logs(
    monkeypatch, caplog, django_capture_on_commit_callbacks
):
    # Nothing listens on a port that was bound and released.
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    client = CountingRedis(host="127.0.0.1", port=closed_port)
    unreachable = events.ChangeCoalescer(client, window_seconds=2)
    monkeypatch.setattr(events, "coalescer", lambda: unreachable)
    runs = RunRecorder()
    monkeypatch.setattr(tasks, "process_account_changes", runs)
    contacts = [make_contact() for _ in range(3)]

    with caplog.at_level(logging.WARNING, logger="triggers.events"):
        record_usage_in_one_transaction(contacts, django_capture_on_commit_callbacks)

    assert UsageEvent.objects.count() == 3
    assert runs.queued == []
    # One attempt for the whole commit, not one per account.
    assert client.round_trips == 1
    warnings = [r.getMessage() for r in caplog.records if r.name == "triggers.events"]
    assert len(warnings) == 1
    assert "3 accounts wait for the next sweep" in warnings[0]
    for contact in contacts:
        assert f"{contact.account_id} (usage)" in warnings[0]


@pytest.mark.django_db
def test_failed_queuing_spares_other_accounts(
    counting_coalescer, monkeypatch, caplog, django_capture_on_commit_callbacks
):
    contacts = [make_contact() for _ in range(3)]
    failing = contacts[0].account_id
    runs = RunRecorder(fail_for=frozenset({failing}))
    monkeypatch.setattr(tasks, "process_account_changes", runs)

    with caplog.at_level(logging.ERROR, logger="triggers.events"):
        record_usage_in_one_transaction(contacts, django_capture_on_commit_callbacks)

    assert sorted(runs.queued) == sorted(c.account_id for c in contacts[1:])
    errors = [r.getMessage() for r in caplog.records if r.name == "triggers.events"]
    assert errors == [
        f"Queuing the evaluation of account {failing} failed, so the next sweep "
        "evaluates its changes"
    ]


@pytest.mark.django_db
def test_without_redis_every_account_evaluated(django_capture_on_commit_callbacks):
    # Eager tasks (the test default and the embedded demo) have no coalescer.
    assert events.coalescer() is None
    contacts = [make_contact() for _ in range(4)]
    trigger = make_trigger(USED_TODAY)

    record_usage_in_one_transaction(contacts, django_capture_on_commit_callbacks)

    fired = set(Firing.objects.filter(trigger=trigger).values_list("contact_id"))
    assert fired == {(contact.pk,) for contact in contacts}


@pytest.mark.django_db
def test_rolled_back_accounts_left_out(
    counting_coalescer, monkeypatch, django_capture_on_commit_callbacks
):
    rolled_back, committed = make_contact(), make_contact()
    runs = RunRecorder()
    monkeypatch.setattr(tasks, "process_account_changes", runs)
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=True):
        try:
            with transaction.atomic():
                customers.record_usage_event(rolled_back, "Report Run", now)
                raise RuntimeError("the request failed after recording the event")
        except RuntimeError:
            pass
        with transaction.atomic():
            customers.record_usage_event(committed, "Report Run", now)

    assert runs.queued == [committed.account_id]
    assert counting_coalescer.take(rolled_back.account_id) == frozenset()


@pytest.mark.django_db
def test_hand_off_error_keeps_commit(
    monkeypatch, caplog, django_capture_on_commit_callbacks
):
    def broken_coalescer():
        raise RuntimeError("coalescer misconfigured")

    monkeypatch.setattr(events, "coalescer", broken_coalescer)
    contact = make_contact()

    # Django logs the error of a robust callback with the callback's
    # __qualname__, so the callback must have one.
    with caplog.at_level(logging.ERROR):
        record_usage_in_one_transaction([contact], django_capture_on_commit_callbacks)

    assert UsageEvent.objects.filter(contact=contact).count() == 1
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(errors) == 1
    assert "coalescer misconfigured" in errors[0]


def test_add_many_keeps_every_source(counting_coalescer):
    changes = {31: {"usage", "crm", "tickets"}, 32: {"surveys"}}

    must_queue = counting_coalescer.add_many(changes)

    assert must_queue == [31, 32]
    client = counting_coalescer.client
    pending_key, _, scheduled_key = counting_coalescer._keys(31)
    # Both keys expire: pending after a day, the flag after 5 minutes.
    assert 0 < client.ttl(pending_key) <= events.PENDING_TTL_SECONDS
    assert 0 < client.ttl(scheduled_key) <= events.SCHEDULED_TTL_SECONDS
    assert counting_coalescer.take(31) == {"usage", "crm", "tickets"}
    assert counting_coalescer.take(32) == {"surveys"}
