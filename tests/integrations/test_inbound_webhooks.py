"""Generic inbound webhooks: token auth, item checks, keys and partial batches."""

import gzip
import json
from base64 import b64encode

import pytest

from customers.models import Account, Contact, UsageEvent
from customers.signals import data_changed
from integrations.models import EventSource, InboundKey
from tests.factories import make_account, make_contact

pytestmark = pytest.mark.django_db

URL = "/inbound/v1/items"


@pytest.fixture
def source():
    return EventSource.objects.create(name="Zapier")


@pytest.fixture
def contact():
    account = make_account(external_id="acct-1")
    return make_contact(account, external_id="user-1", email="ada@example.com")


def post(client, body, token=None, raw=None):
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    data = raw if raw is not None else json.dumps(body)
    return client.post(URL, data=data, content_type="application/json", headers=headers)


def usage(key, **fields):
    return {"type": "usage_event", "key": key, "contact": "user-1", **fields}


def test_usage_event_is_stored(client, source, contact):
    item = usage(
        "zap-1",
        event="Report Exported",
        feature="reports",
        timestamp="2026-03-01T10:00:00Z",
        properties={"format": "csv"},
    )

    response = post(client, {"items": [item]}, source.write_key)

    assert response.status_code == 200, response.content
    assert response.json()["applied"] == 1
    event = UsageEvent.objects.get()
    assert event.contact == contact
    assert event.account == contact.account
    assert event.name == "Report Exported"
    assert event.feature == "reports"
    assert event.occurred_at.isoformat() == "2026-03-01T10:00:00+00:00"
    assert event.properties == {"format": "csv"}


def test_property_changes_reach_contact_and_account(client, source, contact):
    received = []

    def receiver(sender, account_id, source, **kwargs):
        received.append((account_id, source))

    items = [
        {
            "type": "contact_properties",
            "key": "k-1",
            "email": "ADA@example.com",
            "properties": {"nps": 9},
        },
        {
            "type": "account_properties",
            "key": "k-2",
            "account": "acct-1",
            "properties": {"tier": "gold"},
        },
    ]
    data_changed.connect(receiver)
    try:
        response = post(client, {"items": items}, source.write_key)
    finally:
        data_changed.disconnect(receiver)

    assert response.status_code == 200, response.content
    assert Contact.objects.get(pk=contact.pk).properties == {"nps": 9}
    assert Account.objects.get(pk=contact.account_id).properties == {"tier": "gold"}
    assert (contact.account_id, "crm") in received


def test_repeated_key_is_applied_once(client, source, contact):
    body = {"items": [usage("zap-7", event="Signed In")]}

    first = post(client, body, source.write_key)
    second = post(client, body, source.write_key)

    assert first.json()["applied"] == 1
    assert second.status_code == 200
    assert second.json()["applied"] == 0
    assert second.json()["duplicates"] == 1
    assert UsageEvent.objects.count() == 1
    assert InboundKey.objects.get().key == "zap-7"


def test_property_change_replayed_does_not_overwrite(client, source, contact):
    change = {
        "type": "contact_properties",
        "key": "change-1",
        "contact": "user-1",
        "properties": {"nps": 3},
    }
    post(client, {"items": [change]}, source.write_key)
    later = {**change, "key": "change-2", "properties": {"nps": 10}}
    post(client, {"items": [later]}, source.write_key)

    post(client, {"items": [change]}, source.write_key)

    assert Contact.objects.get(pk=contact.pk).properties == {"nps": 10}


def test_bad_items_are_listed_and_good_kept(client, source, contact):
    items = [
        usage("ok-1", event="Signed In"),
        usage("bad-1"),
        {"type": "usage_event", "contact": "user-1", "event": "Signed In"},
        usage("bad-3", event="Signed In", contact="ghost"),
        {"type": "screen", "key": "bad-4"},
        usage("bad-5", event="Signed In", timestamp="yesterday"),
        usage("bad-6", event="Signed In", properties={"note": "a\u0000b"}),
        {"type": "account_properties", "key": "bad-7", "account": "nowhere"},
        "not an object",
        usage("bad-9", event="Signed In", account="acct-2"),
    ]
    make_account(external_id="acct-2")

    response = post(client, {"items": items}, source.write_key)

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["received"], body["accepted"], body["applied"]) == (10, 1, 1)
    codes = {item["index"]: item["code"] for item in body["rejected"]}
    assert codes == {
        1: "missing_event",
        2: "missing_key",
        3: "unknown_contact",
        4: "invalid_type",
        5: "invalid_timestamp",
        6: "invalid_properties",
        7: "unknown_account",
        8: "invalid_item",
        9: "not_in_account",
    }
    assert body["rejected"][2]["key"] == "bad-3"
    assert "'ghost'" in body["rejected"][2]["reason"]
    assert UsageEvent.objects.count() == 1
    # A rejected item leaves no key, so it can be sent again once fixed.
    assert list(InboundKey.objects.values_list("key", flat=True)) == ["ok-1"]


def test_all_items_rejected_is_400(client, source, contact):
    response = post(client, {"items": [usage("x")]}, source.write_key)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_items"
    assert response.json()["rejected"][0]["code"] == "missing_event"


@pytest.mark.parametrize(
    ("token", "status", "code"),
    [
        (None, 401, "missing_token"),
        ("wrong-key", 401, "unknown_token"),
    ],
)
def test_bad_token_is_rejected(client, source, contact, token, status, code):
    response = post(client, {"items": [usage("k", event="E")]}, token)

    assert response.status_code == status
    assert response.json()["code"] == code
    assert not UsageEvent.objects.exists()


def test_basic_auth_is_not_a_token(client, source, contact):
    response = client.post(
        URL,
        data=json.dumps({"items": [usage("k", event="E")]}),
        content_type="application/json",
        headers={"Authorization": f"Basic {source.write_key}"},
    )

    assert response.status_code == 401


def test_inactive_source_is_forbidden(client, source, contact):
    source.is_active = False
    source.save()

    response = post(client, {"items": [usage("k", event="E")]}, source.write_key)

    assert response.status_code == 403
    assert response.json()["code"] == "inactive_source"


@pytest.mark.parametrize(
    ("raw", "code"),
    [
        ("", "invalid_json"),
        ("{", "invalid_json"),
        ("[]", "invalid_json"),
        ('{"items": NaN}', "invalid_json"),
        ("[" * 100_000 + "]" * 100_000, "invalid_json"),
        ('{"items": []}', "invalid_batch"),
        ('{"items": {}}', "invalid_batch"),
    ],
)
def test_unreadable_body_is_400(client, source, raw, code):
    response = post(client, None, source.write_key, raw=raw)

    assert response.status_code == 400
    assert response.json()["code"] == code


def test_too_many_items_is_413(client, source, contact):
    items = [usage(f"k-{n}", event="E") for n in range(501)]

    response = post(client, {"items": items}, source.write_key)

    assert response.status_code == 413
    assert response.json()["code"] == "too_many_items"
    assert not UsageEvent.objects.exists()


def test_get_is_not_allowed(client):
    response = client.get(URL)

    assert response.status_code == 405
    assert response["Allow"] == "POST"


def test_gzip_body_is_read(client, source, contact):
    body = gzip.compress(json.dumps({"items": [usage("gz-1", event="E")]}).encode())

    response = client.post(
        URL,
        data=body,
        content_type="application/json",
        headers={
            "Authorization": f"Bearer {source.write_key}",
            "Content-Encoding": "gzip",
        },
    )

    assert response.status_code == 200, response.content
    assert UsageEvent.objects.get().name == "E"


def test_segment_batch_nested_too_deeply_is_400(client, source):
    response = client.post(
        "/segment/v1/batch",
        data="[" * 100_000 + "]" * 100_000,
        content_type="application/json",
        headers={
            "Authorization": "Basic "
            + b64encode(f"{source.write_key}:".encode()).decode()
        },
    )

    assert response.status_code == 400
    assert response.json()["message"] == "request body is nested too deeply to be read"


@pytest.mark.parametrize(
    ("item", "code", "reason"),
    [
        (usage(123, event="Signed In"), "invalid_key", "key is 123, a JSON number"),
        (usage(None, event="Signed In"), "missing_key", "key is None"),
        (usage("  ", event="Signed In"), "missing_key", "send a unique string"),
        (
            usage("k-1", event="Signed In", contact=1.5),
            "invalid_id",
            "contact is 1.5; send the external id as a string or a whole number",
        ),
        (
            usage("k-2", event="Signed In", email="ada@example.com"),
            "invalid_item",
            "both contact 'user-1' and email 'ada@example.com'",
        ),
        (
            usage("k-3", event="Signed In", timestamp="0001-01-01T00:00:00Z"),
            "invalid_timestamp",
            "is before 2000-01-01",
        ),
        (
            usage("k-4", event="Signed In", timestamp="1999-12-31T23:59:59Z"),
            "invalid_timestamp",
            "is before 2000-01-01",
        ),
    ],
)
def test_bad_item_gets_its_code(client, source, contact, item, code, reason):
    response = post(client, {"items": [item]}, source.write_key)

    assert response.status_code == 400, response.content
    rejected = response.json()["rejected"]
    assert len(rejected) == 1
    assert rejected[0]["code"] == code
    assert reason in rejected[0]["reason"]
    assert not UsageEvent.objects.exists()


def test_timestamp_at_the_floor_is_accepted(client, source, contact):
    item = usage("k-5", event="Signed In", timestamp="2000-01-01T00:00:00Z")

    response = post(client, {"items": [item]}, source.write_key)

    assert response.status_code == 200, response.content
    assert UsageEvent.objects.get().occurred_at.year == 2000


# A JSON body's "\ud800" escape decodes to an unpaired UTF-16 surrogate,
# which PostgreSQL cannot store. json.dumps writes it back as that escape.
@pytest.mark.parametrize(
    ("item", "code", "named"),
    [
        (usage("s-1", event="Signed \ud800In"), "invalid_item", "event 'Signed"),
        (
            usage("s-2", event="Signed In", feature="rep\udfff"),
            "invalid_item",
            "feature 'rep",
        ),
        (
            usage("s-3", event="Signed In", properties={"k": "\ud800"}),
            "invalid_properties",
            "properties contains",
        ),
        (
            usage("s-4", event="Signed In", properties={"\ud800": 1}),
            "invalid_properties",
            "properties contains",
        ),
        (usage("k-\ud800", event="Signed In"), "invalid_key", "key 'k-"),
        (
            usage("s-6", event="Signed In", contact="user-\ud800"),
            "invalid_id",
            "contact 'user-",
        ),
        (
            {"type": "usage_event", "key": "s-7", "email": "a\ud800@example.com"},
            "invalid_item",
            "email 'a",
        ),
        (
            {"type": "account_properties", "key": "s-8", "account": "acct-\ud800"},
            "invalid_id",
            "account 'acct-",
        ),
    ],
)
def test_surrogate_in_item_rejected(client, source, contact, item, code, named):
    item.setdefault("event", "Signed In")

    response = post(client, {"items": [item]}, source.write_key)

    assert response.status_code == 400, response.content
    rejected = response.json()["rejected"]
    assert len(rejected) == 1
    assert rejected[0]["code"] == code
    assert rejected[0]["reason"].startswith(named)
    assert "unpaired UTF-16 surrogate" in rejected[0]["reason"]
    assert not UsageEvent.objects.exists()
    assert not InboundKey.objects.exists()
