"""Webhook requests signed as HubSpot's v3 rule says, against a fake HubSpot."""

import base64
import hashlib
import hmac
import json
import time

import pytest

from customers.models import Account, Contact
from customers.signals import data_changed
from integrations.hubspot.models import HubSpotLink, WebhookEvent
from integrations.hubspot.sync import claim_run, create_run, execute_run
from integrations.hubspot.webhooks import InvalidWebhook, check_signature
from tests.integrations.hubspot.conftest import APP_SECRET, at

pytestmark = pytest.mark.django_db


def sign(method, uri, body, timestamp, secret=APP_SECRET):
    """HubSpot's v3 signature, written from its documentation.

    base64 of HMAC-SHA256 keyed with the app secret over method, the full
    URI with URL-encoded characters decoded, the body and the timestamp.
    """
    message = f"{method}{uri}{body}{timestamp}".encode()
    return base64.b64encode(
        hmac.new(secret.encode(), message, hashlib.sha256).digest()
    ).decode()


def event(event_id, object_id, subscription_type="company.propertyChange", **extra):
    return {
        "eventId": event_id,
        "subscriptionId": 2001,
        "portalId": 62515,
        "appId": 54321,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": subscription_type,
        "attemptNumber": 0,
        "objectId": int(object_id),
        "changeSource": "CRM",
        **extra,
    }


def post(
    client,
    connection,
    events,
    *,
    path_suffix="",
    decoded_suffix=None,
    secret=APP_SECRET,
    timestamp=None,
    body=None,
    signed_body=None,
):
    path = f"/hubspot/webhooks/{connection.pk}"
    body = json.dumps(events) if body is None else body
    timestamp = str(int(time.time() * 1000)) if timestamp is None else timestamp
    suffix = path_suffix if decoded_suffix is None else decoded_suffix
    uri = f"http://testserver{path}{suffix}"
    signature = sign(
        "POST", uri, body if signed_body is None else signed_body, timestamp, secret
    )
    return client.post(
        path + path_suffix,
        data=body,
        content_type="application/json",
        headers={
            "X-HubSpot-Signature-v3": signature,
            "X-HubSpot-Request-Timestamp": timestamp,
        },
    )


@pytest.fixture
def synced_company(connection, fake_hubspot):
    fake_hubspot.put("companies", "1", at(1), name="Before", plan_tier="pro")
    claimed = claim_run(create_run(connection, "company", "full").pk)
    assert claimed is not None
    execute_run(claimed)
    fake_hubspot.put("companies", "1", at(5), name="After", plan_tier="enterprise")
    return Account.objects.get(external_id="1")


def test_signed_webhook_updates_the_account(
    client, connection, fake_hubspot, synced_company, django_capture_on_commit_callbacks
):
    received = []

    def receiver(sender, account_id, source, **kwargs):
        received.append((account_id, source))

    data_changed.connect(receiver)
    try:
        with django_capture_on_commit_callbacks(execute=True):
            response = post(
                client,
                connection,
                [event(1, "1", propertyName="name", propertyValue="After")],
            )
    finally:
        data_changed.disconnect(receiver)

    assert response.status_code == 200, response.content
    synced_company.refresh_from_db()
    assert synced_company.name == "After"
    assert synced_company.plan == "Enterprise"
    assert received == [(synced_company.pk, "crm")]
    assert WebhookEvent.objects.get(event_id=1).processed_at is not None


def test_duplicate_event_id_is_applied_once(
    client, connection, fake_hubspot, synced_company, django_capture_on_commit_callbacks
):
    events = [event(7, "1", propertyName="name", propertyValue="After")]
    with django_capture_on_commit_callbacks(execute=True):
        first = post(client, connection, events)
    reads_after_first = len(
        [r for r in fake_hubspot.requests if r[1].endswith("/batch/read")]
    )
    with django_capture_on_commit_callbacks(execute=True):
        second = post(client, connection, events)

    assert first.status_code == 200
    assert second.status_code == 200
    assert WebhookEvent.objects.filter(event_id=7).count() == 1
    assert reads_after_first == 1
    assert len([r for r in fake_hubspot.requests if r[1].endswith("/batch/read")]) == 1


def test_query_string_is_signed_decoded(
    client, connection, fake_hubspot, synced_company
):
    response = post(
        client,
        connection,
        [event(2, "1")],
        path_suffix="?source=a%20b",
        decoded_suffix="?source=a b",
    )

    assert response.status_code == 200, response.content


@pytest.mark.parametrize(
    "case",
    [
        "wrong secret",
        "old timestamp",
        "future timestamp",
        "changed body",
        "no signature",
    ],
)
def test_bad_signature_is_rejected(client, connection, fake_hubspot, case):
    events = [event(3, "1")]
    now = int(time.time() * 1000)
    options = {
        "wrong secret": {"secret": "another-secret"},
        "old timestamp": {"timestamp": str(now - 5 * 60 * 1000 - 1000)},
        "future timestamp": {"timestamp": str(now + 2 * 60 * 1000)},
        "changed body": {"signed_body": json.dumps([event(4, "1")])},
        "no signature": None,
    }[case]
    if options is None:
        response = client.post(
            f"/hubspot/webhooks/{connection.pk}",
            data=json.dumps(events),
            content_type="application/json",
        )
    else:
        response = post(client, connection, events, **options)

    assert response.status_code == 401
    assert not WebhookEvent.objects.exists()


def test_timestamp_within_five_minutes_is_accepted(
    client, connection, fake_hubspot, synced_company
):
    four_minutes_ago = str(int(time.time() * 1000) - 4 * 60 * 1000)

    response = post(client, connection, [event(5, "1")], timestamp=four_minutes_ago)

    assert response.status_code == 200


NOW_MS = 1_767_225_600_000  # 2026-01-01 00:00:00 UTC


@pytest.mark.parametrize(
    ("offset_ms", "accepted"),
    [
        (1, True),  # 1 ms ahead: the clocks differ a little
        (60 * 1000, True),  # the 60 s of clock skew allowed
        (60 * 1000 + 1, False),
        (-5 * 60 * 1000, True),  # exactly five minutes old
        (-5 * 60 * 1000 - 1, False),
    ],
)
def test_timestamp_window_allows_clock_skew(offset_ms, accepted):
    uri = "https://nudgepath.example/hubspot/webhooks/1"
    body = b"[]"
    timestamp = str(NOW_MS + offset_ms)
    signature = sign("POST", uri, body.decode(), timestamp)

    def check():
        check_signature(
            APP_SECRET, "POST", uri, body, timestamp, signature, now_ms=NOW_MS
        )

    if accepted:
        check()
    else:
        with pytest.raises(InvalidWebhook, match="timestamp"):
            check()


def test_deletion_marks_the_link_archived(
    client, connection, fake_hubspot, synced_company, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, connection, [event(6, "1", "company.deletion")])

    assert response.status_code == 200
    assert HubSpotLink.objects.get(hubspot_id="1").archived_at is not None
    assert Account.objects.filter(pk=synced_company.pk).exists()


def test_record_gone_since_the_event_is_marked_archived(
    client, connection, fake_hubspot, synced_company, django_capture_on_commit_callbacks
):
    fake_hubspot.remove("companies", "1")

    with django_capture_on_commit_callbacks(execute=True):
        post(client, connection, [event(8, "1")])

    assert HubSpotLink.objects.get(hubspot_id="1").archived_at is not None
    assert WebhookEvent.objects.get(event_id=8).processed_at is not None


def test_body_that_is_not_a_list_is_rejected(client, connection, fake_hubspot):
    body = json.dumps({"eventId": 1})

    response = post(client, connection, None, body=body)

    assert response.status_code == 400
    assert "JSON array" in response.json()["error"]


def test_contact_event_updates_the_contact(
    client, connection, fake_hubspot, synced_company, django_capture_on_commit_callbacks
):
    fake_hubspot.put(
        "contacts", "501", at(6), email="ada@one.example", associatedcompanyid="1"
    )
    with django_capture_on_commit_callbacks(execute=True):
        created = post(client, connection, [event(11, "501", "contact.creation")])
    fake_hubspot.put(
        "contacts",
        "501",
        at(7),
        email="ada@one.example",
        firstname="Ada",
        jobtitle="Head of Ops",
        associatedcompanyid="1",
    )
    with django_capture_on_commit_callbacks(execute=True):
        changed = post(client, connection, [event(12, "501", "contact.propertyChange")])

    assert created.status_code == 200
    assert changed.status_code == 200
    contact = Contact.objects.get(external_id="501")
    assert contact.account == synced_company
    assert contact.first_name == "Ada"
    assert contact.role == "Head of Ops"
