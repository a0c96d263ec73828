"""Malformed webhook bodies, HubSpot out of reach, and a broker that is down."""

import json
import time
from datetime import timedelta
from typing import Any

import pytest
from django.core.signals import request_finished
from django.db import close_old_connections
from django.test import RequestFactory
from django.utils import timezone

from config.celery import app as celery_app
from integrations.hubspot.models import SyncRun, WebhookEvent
from integrations.hubspot.services import queue_due_webhook_events
from integrations.hubspot.views import webhook
from integrations.hubspot.webhooks import (
    MAX_WEBHOOK_ATTEMPTS,
    process_events,
    retry_delay,
)
from tests.integrations.hubspot.test_hubspot_webhooks import (
    event,
    post,
    sign,
    synced_company,  # noqa: F401 (a fixture)
)

pytestmark = pytest.mark.django_db

# A port that nothing listens on: connections to it are refused at once.
CLOSED_PORT_URL = "http://127.0.0.1:9"


def nested(depth):
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (json.dumps([event(10**30, "1")]), "eventId 1000000000000000000000000000000"),
        (json.dumps([event(True, "1")]), "eventId true"),
        (json.dumps([event(-5, "1")]), "eventId -5, outside 1 to"),
        (json.dumps([event(0, "1")]), "eventId 0, outside"),
        (json.dumps([event(1.5, "1")]), "eventId 1.5"),
        (json.dumps([event("12", "1")]), 'eventId "12"'),
        (json.dumps([{**event(1, "1"), "objectId": 2**64}]), "objectId"),
        (json.dumps([{**event(1, "1"), "objectId": None}]), "objectId null"),
        (json.dumps([event(1, "1", subscriptionType=7)]), "subscriptionType 7"),
        (json.dumps([event(1, "1", "company")]), 'subscriptionType "company"'),
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        (json.dumps([event(1, "1", extra=nested(30))]), "nested more than 20"),
        (json.dumps([event(1, "1", propertyValue="a\u0000b")]), "NUL character"),
        (
            '[{"eventId": 1, "objectId": 1, "subscriptionType": "company.creation",'
            ' "propertyValue": "\\ud800"}]',
            "unpaired UTF-16 surrogate",
        ),
        ('[{"eventId": NaN}]', "NaN is not a JSON number"),
        ("[1]", "event 0 is not a JSON object"),
        ("not json", "body is not JSON"),
        (b"\xff\xfe[", "body is not JSON"),
    ],
)
def test_malformed_body_gets_400(client, connection, fake_hubspot, body, expected):
    good = event(99, "1")
    if isinstance(body, str) and body.startswith("[{") and "NaN" not in body:
        # The bad event comes second, so the good one first must not be stored.
        body = "[" + json.dumps(good) + "," + body[1:]
    text = body.decode("latin-1") if isinstance(body, bytes) else body

    response = post(client, connection, None, body=text)

    assert response.status_code == 400, response.content
    assert expected in response.json()["error"]
    assert not WebhookEvent.objects.exists()


def test_largest_64_bit_event_id_is_stored(client, connection, fake_hubspot):
    response = post(client, connection, [event(2**63 - 1, "1")])

    assert response.status_code == 200, response.content
    assert WebhookEvent.objects.get().event_id == 2**63 - 1


def test_unreachable_hubspot_leaves_events_to_retry(
    client,
    connection,
    fake_hubspot,
    synced_company,  # noqa: F811
    settings,
    django_capture_on_commit_callbacks,
):
    settings.NUDGEPATH_HUBSPOT_MAX_ATTEMPTS = 1
    connection.host = CLOSED_PORT_URL
    connection.save(update_fields=["host"])

    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, connection, [event(21, "1")])

    assert response.status_code == 200, response.content
    stored = WebhookEvent.objects.get(event_id=21)
    assert stored.processed_at is None
    assert stored.attempts == 1
    assert "no response" in stored.last_error
    assert stored.next_attempt_at is not None
    waited = stored.next_attempt_at - timezone.now()
    assert timedelta(seconds=50) < waited <= retry_delay(1)

    # Once HubSpot is reachable again and the retry is due, the event is applied.
    connection.host = fake_hubspot.url
    connection.save(update_fields=["host"])
    assert process_events(connection) == 0
    WebhookEvent.objects.filter(pk=stored.pk).update(next_attempt_at=timezone.now())
    with django_capture_on_commit_callbacks(execute=True):
        assert queue_due_webhook_events() == [connection.pk]
    stored.refresh_from_db()
    assert stored.processed_at is not None
    assert stored.last_error == ""
    synced_company.refresh_from_db()
    assert synced_company.name == "After"


def test_event_fails_for_good_after_the_last_attempt(
    connection,
    fake_hubspot,
    synced_company,  # noqa: F811
    settings,
):
    settings.NUDGEPATH_HUBSPOT_MAX_ATTEMPTS = 1
    connection.host = CLOSED_PORT_URL
    connection.save(update_fields=["host"])
    WebhookEvent.objects.create(
        connection=connection,
        event_id=22,
        subscription_type="company.propertyChange",
        object_id="1",
        payload=event(22, "1"),
        attempts=MAX_WEBHOOK_ATTEMPTS - 1,
        last_error="earlier failure",
        next_attempt_at=timezone.now(),
    )

    process_events(connection)

    stored = WebhookEvent.objects.get(event_id=22)
    assert stored.processed_at is None
    assert stored.next_attempt_at is None
    assert stored.attempts == MAX_WEBHOOK_ATTEMPTS
    assert stored.last_error.startswith(f"gave up after {MAX_WEBHOOK_ATTEMPTS}")


@pytest.fixture
def broker_down():
    """Send tasks to a broker port that refuses connections."""
    conf = celery_app.conf
    previous = (conf.task_always_eager, conf.broker_write_url)
    conf.task_always_eager = False
    conf["broker_write_url"] = "redis://127.0.0.1:9/0"
    # The app keeps its connection pool; dropping it makes the next send connect.
    celery_app._pool = None  # type: ignore[attr-defined]
    yield
    conf.task_always_eager, conf["broker_write_url"] = previous
    celery_app._pool = None  # type: ignore[attr-defined]


def test_broker_outage_keeps_the_events_and_answers_200(
    client,
    connection,
    fake_hubspot,
    synced_company,  # noqa: F811
    broker_down,
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        response = post(client, connection, [event(31, "1")])

    assert response.status_code == 200, response.content
    stored = WebhookEvent.objects.get(event_id=31)
    assert stored.processed_at is None
    assert stored.last_error == ""
    # The retry task finds it once the broker is back.
    assert process_events(connection) == 1


def test_sync_run_names_its_object_type_in_plural(connection):
    run = SyncRun(connection=connection, object_type="company", kind="full")

    assert str(run) == "full sync of companies (queued)"


def test_eager_processing_waits_until_the_response_is_sent(
    connection,
    fake_hubspot,
    synced_company,  # noqa: F811
):
    path = f"/hubspot/webhooks/{connection.pk}"
    body = json.dumps([event(41, "1")])
    timestamp = str(int(time.time() * 1000))
    request = RequestFactory().post(
        path,
        data=body,
        content_type="application/json",
        headers={
            "X-HubSpot-Signature-v3": sign(
                "POST", f"http://testserver{path}", body, timestamp
            ),
            "X-HubSpot-Request-Timestamp": timestamp,
        },
    )

    response = webhook(request, connection.pk)

    # The view returns without reading HubSpot, as in the demo's eager mode.
    assert response.status_code == 200, response.content
    assert WebhookEvent.objects.get(event_id=41).processed_at is None
    synced_company.refresh_from_db()
    assert synced_company.name == "Before"

    # The WSGI server closes the response after sending it, and only then
    # are the events applied. As in Django's test client, request_finished
    # must not close the connection that runs the test's transaction.
    request_finished.disconnect(close_old_connections)
    try:
        response.close()
    finally:
        request_finished.connect(close_old_connections)
    assert WebhookEvent.objects.get(event_id=41).processed_at is not None
    synced_company.refresh_from_db()
    assert synced_company.name == "After"


def test_unknown_connection_gets_json_404(client, connection):
    response = client.post(
        f"/hubspot/webhooks/{connection.pk + 1000}",
        data="[]",
        content_type="application/json",
    )

    assert response.status_code == 404
    assert response["Content-Type"] == "application/json"
    assert str(connection.pk + 1000) in response.json()["error"]


def test_inactive_connection_gets_json_404(client, connection):
    connection.is_active = False
    connection.save(update_fields=["is_active"])

    response = post(client, connection, [event(43, "1")])

    assert response.status_code == 404
    assert "no active HubSpot connection" in response.json()["error"]


def test_body_over_the_upload_limit_gets_json_413(
    client, connection, fake_hubspot, settings
):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    events = [event(50 + index, "1") for index in range(20)]

    response = post(client, connection, events)

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "larger than the limit of 1000 bytes" in response.json()["error"]
    assert not WebhookEvent.objects.exists()
