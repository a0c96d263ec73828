"""Segment's own Python library delivers to the API over HTTP, unchanged.

The library (segment-analytics-python) runs against Django's live server
with its host set to the server's /segment URL, the way a product would
configure it.
"""

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime

import pytest
from django.db import connection
from segment.analytics import Client
from segment.analytics.request import APIError, post

from customers.models import Contact, UsageDay, UsageEvent
from tests.factories import make_account, make_contact
from tests.integrations.segment_calls import make_source

# The live server's thread reads committed rows, so these tests commit.
# serialized_rollback keeps the flush after each test from recreating
# content types with new ids, which would clash with the rows that later
# committing tests restore.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

OCCURRED = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


@pytest.fixture(scope="module", autouse=True)
def restore_seeded_rows(django_db_setup, django_db_blocker):
    """Put back the rows that data migrations seed, after the module's last test.

    serialized_rollback restores them only when the next committing test
    starts, so a run that ends here would leave a reused database without
    them.
    """
    yield
    snapshot = getattr(connection, "_test_serialized_contents", None)
    if snapshot:
        with django_db_blocker.unblock():
            connection.creation.deserialize_db_from_string(snapshot)


@pytest.fixture
def host(live_server):
    return live_server.url + "/segment"


@pytest.fixture
def source():
    return make_source()


@pytest.fixture
def contact():
    return make_contact(make_account(external_id="acct-1"), external_id="user-1")


@pytest.fixture
def client_factory(host):
    clients = []

    def build(write_key: str, **options) -> Client:
        errors: list[Exception] = []
        client = Client(
            write_key,
            host=host,
            max_retries=1,
            on_error=lambda error, batch: errors.append(error),
            **options,
        )
        client.errors = errors
        clients.append(client)
        return client

    yield build
    for client in clients:
        # A sync_mode client has no consumer threads, and its shutdown()
        # fails on that in version 2.4.0.
        if not client.sync_mode:
            client.shutdown()


def test_library_events_land(client_factory, source, contact):
    client = client_factory(source.write_key, gzip=True, upload_size=10)

    for number in range(25):
        client.track(
            "user-1",
            "Report Exported",
            {"feature": "reports", "number": number},
            timestamp=OCCURRED,
            message_id=f"lib-{number}",
        )
    client.flush()

    assert client.errors == []
    events = UsageEvent.objects.filter(contact=contact)
    assert events.count() == 25
    assert set(events.values_list("feature", flat=True)) == {"reports"}
    assert sorted(event.properties["number"] for event in events) == list(range(25))
    assert UsageDay.objects.get(contact=contact).count == 25


def test_library_redelivery_counts_once(client_factory, source, contact):
    client = client_factory(source.write_key, sync_mode=True)

    for _ in range(3):
        client.track("user-1", "Signed In", timestamp=OCCURRED, message_id="same-1")

    assert UsageEvent.objects.filter(external_id="same-1").count() == 1
    assert UsageDay.objects.get(contact=contact, name="Signed In").count == 1


def test_library_identify_group_track(client_factory, source):
    account = make_account(external_id="acct-7")
    client = client_factory(source.write_key)

    client.identify("user-7", {"email": "mo@example.com", "name": "Mo Diaz"})
    client.group("user-7", "acct-7")
    client.track("user-7", "Invite Sent", {"invitee_role": "admin"})
    client.page("user-7", "Settings", "Billing", {"path": "/billing"})
    client.flush()

    assert client.errors == []
    created = Contact.objects.get(external_id="user-7")
    assert created.account == account
    assert created.first_name == "Mo"
    assert created.last_name == "Diaz"
    names = set(
        UsageEvent.objects.filter(contact=created).values_list("name", flat=True)
    )
    assert names == {"Invite Sent", "Page Viewed"}


def test_library_partial_batch_keeps_good(host, source, contact):
    # The library's own HTTP function, to read the response to one batch.
    batch = [
        {"type": "track", "userId": "user-1", "event": "Signed In", "messageId": "g-1"},
        {"type": "track", "userId": "ghost", "event": "Signed In", "messageId": "b-1"},
        {
            "type": "track",
            "userId": "user-1",
            "event": "Trial Started",
            "messageId": "g-2",
        },
    ]

    response = post(source.write_key, host=host, gzip=True, batch=batch)

    assert response.status_code == 200
    body = response.json()
    assert body["stored"] == 2
    assert [(item["index"], item["code"]) for item in body["rejected"]] == [
        (1, "unknown_user")
    ]
    stored = set(UsageEvent.objects.values_list("external_id", flat=True))
    assert stored == {"g-1", "g-2"}


def test_library_bad_write_key_rejected(host, contact):
    client = Client("not-a-key", host=host, sync_mode=True)

    with pytest.raises(APIError) as raised:
        client.track("user-1", "Signed In")

    assert raised.value.status == 401
    assert raised.value.code == "unknown_write_key"
    assert not UsageEvent.objects.exists()


def test_library_sees_rejected_call(client_factory, source, contact):
    client = client_factory(source.write_key, sync_mode=True)

    with pytest.raises(APIError) as raised:
        client.track("nobody", "Signed In")

    assert raised.value.status == 400
    assert raised.value.code == "invalid_messages"


def test_concurrent_redelivery_stores_each_once(host, source, contact):
    # Two copies of the same batch arrive at once, as after a client's
    # timeout and retry; every event is stored by exactly one of them.
    batch = [
        {
            "type": "track",
            "userId": "user-1",
            "event": "Signed In",
            "messageId": f"c-{n}",
        }
        for n in range(200)
    ]

    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(post, source.write_key, host=host, batch=list(batch))
            for _ in range(2)
        ]
        responses = [future.result() for future in futures]

    assert [response.status_code for response in responses] == [200, 200]
    stored = [response.json()["stored"] for response in responses]
    assert sum(stored) == 200
    assert [response.json()["rejected"] for response in responses] == [[], []]
    assert UsageEvent.objects.count() == 200
    assert UsageDay.objects.get(contact=contact).count == 200
