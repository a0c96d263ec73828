"""customers.batches stores many usage events with one statement, each once."""

from datetime import datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.batches import UsageEventBatch, UsageEventRow, store_usage_events
from customers.models import UsageDay, UsageEvent
from customers.signals import data_changed
from tests.factories import NOW, make_account, make_contact

pytestmark = pytest.mark.django_db


def row(contact, external_id: str = "", **fields) -> UsageEventRow:
    values = {
        "account_id": contact.account_id,
        "contact_id": contact.pk,
        "external_id": external_id,
        "name": "Signed In",
        "occurred_at": NOW,
    }
    values.update(fields)
    return UsageEventRow(**values)


@pytest.fixture
def sent_signals():
    received: list[tuple[int, str]] = []

    def receiver(sender, account_id, source, **kwargs):
        received.append((account_id, source))

    data_changed.connect(receiver, dispatch_uid="test_usage_batches")
    yield received
    data_changed.disconnect(dispatch_uid="test_usage_batches")


def test_store_returns_new_flags_and_writes_rows():
    contact = make_contact()
    rows = [
        row(contact, "m-1", feature="reports", properties={"plan": "pro"}),
        row(contact, "m-2", name="Invite Sent"),
    ]

    assert store_usage_events(rows) == [True, True]

    first = UsageEvent.objects.get(external_id="m-1")
    assert first.contact_id == contact.pk
    assert first.account_id == contact.account_id
    assert first.name == "Signed In"
    assert first.feature == "reports"
    assert first.properties == {"plan": "pro"}
    assert first.occurred_at == NOW
    assert UsageEvent.objects.get(external_id="m-2").name == "Invite Sent"


def test_store_skips_ids_already_stored_or_repeated():
    contact = make_contact()
    store_usage_events([row(contact, "m-1")])

    flags = store_usage_events(
        [row(contact, "m-1"), row(contact, "m-2"), row(contact, "m-2")]
    )

    assert flags == [False, True, False]
    assert UsageEvent.objects.filter(external_id="m-1").count() == 1
    assert UsageEvent.objects.filter(external_id="m-2").count() == 1


def test_store_counts_new_events_in_roll_up():
    contact = make_contact()
    rows = [
        row(contact, f"m-{n}", occurred_at=NOW + timedelta(minutes=n)) for n in range(3)
    ]
    store_usage_events(rows)
    store_usage_events(rows)

    day = UsageDay.objects.get(contact=contact, name="Signed In")
    assert day.count == 3
    assert day.day == NOW.date()


def test_store_signals_each_account_once(sent_signals):
    first = make_contact()
    second = make_contact()
    store_usage_events([row(first, "old")])
    sent_signals.clear()

    store_usage_events(
        [
            row(first, "a-1"),
            row(first, "a-2"),
            row(second, "old-for-second", account_id=second.account_id),
            row(first, "old"),
        ]
    )

    assert sorted(sent_signals) == sorted(
        [(first.account_id, "usage"), (second.account_id, "usage")]
    )


def test_store_sends_no_signal_when_nothing_is_new(sent_signals):
    contact = make_contact()
    store_usage_events([row(contact, "m-1")])
    sent_signals.clear()

    assert store_usage_events([row(contact, "m-1")]) == [False]
    assert sent_signals == []


@pytest.mark.parametrize("count", [1, 50, 500])
def test_store_query_count_is_constant(count):
    account = make_account()
    contacts = [make_contact(account) for _ in range(5)]
    rows = [row(contacts[n % 5], f"q-{count}-{n}") for n in range(count)]

    with CaptureQueriesContext(connection) as queries:
        store_usage_events(rows)

    # The INSERT alone, whatever the count: the test's transaction is the
    # caller's, where no savepoint is made.
    assert len(queries) == 1
    stored = UsageEvent.objects.filter(external_id__startswith=f"q-{count}-")
    assert stored.count() == count


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"external_id": ""}, "external_id is blank"),
        ({"name": " "}, "name is blank"),
        ({"name": "x" * 101}, "more than the maximum of 100"),
        ({"feature": "f\x00"}, "NUL character"),
        ({"occurred_at": datetime(2024, 6, 15, 12, 0)}, "must be an aware datetime"),  # noqa: DTZ001
        ({"properties": {"score": float("nan")}}, "JSON cannot store"),
        ({"properties": ["a"]}, "must be a mapping"),
        ({"properties": {"when": NOW}}, "JSON cannot store"),
        ({"properties": {"nested": {"note": "a\x00b"}}}, "NUL character"),
        ({"name": "Signed \ud800In"}, "name .* unpaired UTF-16 surrogate"),
        ({"feature": "\udfff"}, "feature .* unpaired UTF-16 surrogate"),
        ({"properties": {"note": ["a\udc00"]}}, "unpaired UTF-16 surrogate"),
        ({"properties": {"\ud800": 1}}, "key .* unpaired UTF-16 surrogate"),
        ({"account_id": True}, "account_id=True must be"),
        ({"contact_id": "5"}, "contact_id='5' must be"),
    ],
)
def test_store_rejects_bad_row_and_writes_nothing(fields, message):
    contact = make_contact()
    values = {"external_id": "bad", **fields}
    rows = [row(contact, "good"), row(contact, **values)]

    with pytest.raises(ValueError, match=message):
        store_usage_events(rows)

    assert not UsageEvent.objects.exists()


def test_store_of_empty_list_writes_nothing():
    with CaptureQueriesContext(connection) as queries:
        assert store_usage_events([]) == []
    assert len(queries) == 0


def test_store_keeps_paired_surrogates():
    # An emoji is written as a surrogate pair in JSON, and jsonb stores it.
    contact = make_contact()

    store_usage_events([row(contact, "emoji", properties={"note": "ok \U0001f600"})])

    stored = UsageEvent.objects.get(external_id="emoji")
    assert stored.properties == {"note": "ok \U0001f600"}


def test_batch_add_rejects_one_row_and_keeps_others():
    contact = make_contact()
    batch = UsageEventBatch()
    batch.add(row(contact, "good-1"))
    with pytest.raises(ValueError, match="name is blank"):
        batch.add(row(contact, "bad", name=" "))
    batch.add(row(contact, "good-2", feature="reports"))

    assert batch.store() == [True, True]

    stored = set(UsageEvent.objects.values_list("external_id", flat=True))
    assert stored == {"good-1", "good-2"}


def test_batch_store_flags_repeats_in_order():
    contact = make_contact()
    store_usage_events([row(contact, "old")])
    batch = UsageEventBatch()
    for external_id in ["new-1", "old", "new-1", "new-2", "new-2"]:
        batch.add(row(contact, external_id))

    assert batch.store() == [True, False, False, True, False]
    assert UsageEvent.objects.count() == 3


def test_batch_writes_properties_and_text_exactly():
    contact = make_contact()
    properties = {
        "quote": 'say "hi"\\',
        "accent": "caf\u00e9",
        "nested": {"list": [1, 2.5, None, True]},
    }
    batch = UsageEventBatch()
    batch.add(
        row(
            contact,
            'id "quoted" \u00e9',
            name="Caf\u00e9 \\ Opened",
            properties=properties,
        )
    )

    batch.store()

    stored = UsageEvent.objects.get()
    assert stored.external_id == 'id "quoted" \u00e9'
    assert stored.name == "Caf\u00e9 \\ Opened"
    assert stored.properties == properties


def test_empty_batch_stores_nothing():
    with CaptureQueriesContext(connection) as queries:
        assert UsageEventBatch().store() == []
    assert len(queries) == 0
