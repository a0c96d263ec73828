"""Webhook steps: signed calls to a real HTTP server on 127.0.0.1, retries, failure."""

import hashlib
import hmac
import json
import threading
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from django.utils import timezone

from tests.factories import NOW, make_contact
from tests.triggers.factories import make_step, make_trigger
from triggers.models import Firing, WebhookDelivery, WebhookEndpoint
from triggers.services import run_sweep
from triggers.webhooks import MAX_ATTEMPTS, retry_failed_webhooks, send_delivery

pytestmark = pytest.mark.django_db

SECRET = "test-signing-secret"


class Receiver(ThreadingHTTPServer):
    """A webhook receiver that verifies each call's signature on its own.

    Calls with a valid signature get the statuses in turn, and the last one
    repeats. A call with an invalid signature gets 401.
    """

    def __init__(self, statuses):
        super().__init__(("127.0.0.1", 0), ReceiverHandler)
        self.statuses = list(statuses)
        self.calls = []

    @property
    def url(self):
        return f"http://127.0.0.1:{self.server_address[1]}/hooks/nudgepath"


class ReceiverHandler(BaseHTTPRequestHandler):
    server: Receiver

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        timestamp = self.headers["X-Nudgepath-Timestamp"]
        # Computed here from the shared secret, independently of the sender.
        expected = hmac.new(
            SECRET.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        valid = hmac.compare_digest(
            self.headers["X-Nudgepath-Signature"], f"sha256={expected}"
        )
        self.server.calls.append(
            {"headers": dict(self.headers), "body": body, "valid": valid}
        )
        statuses = self.server.statuses
        if not valid:
            status = 401
        elif len(statuses) > 1:
            status = statuses.pop(0)
        else:
            status = statuses[0]
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format, *args):
        pass


@pytest.fixture
def receiver(request):
    statuses = getattr(request, "param", [204])
    server = Receiver(statuses)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def webhook_delivery(url, secret=SECRET):
    contact = make_contact(first_name="Ada")
    endpoint = WebhookEndpoint.objects.create(name="CRM relay", url=url, secret=secret)
    trigger = make_trigger({"kind": "inactivity", "days": 10}, slug="quiet")
    step = make_step(trigger, 1, "call_webhook", webhook=endpoint)
    run_sweep(NOW, triggers=[trigger])
    return WebhookDelivery.objects.get(), contact, step


def test_webhook_signed_and_delivered(receiver):
    delivery, contact, step = webhook_delivery(receiver.url)

    assert send_delivery(delivery.pk) is True

    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert delivery.response_status == 204
    assert delivery.attempts == 1
    assert len(receiver.calls) == 1
    call = receiver.calls[0]
    assert call["valid"] is True
    assert call["headers"]["Content-Type"] == "application/json"
    firing = Firing.objects.get()
    assert (
        call["headers"]["Idempotency-Key"]
        == f"nudgepath-firing-{firing.pk}-step-{step.pk}"
    )
    body = json.loads(call["body"])
    assert body["event"] == "trigger.fired"
    assert body["trigger"]["slug"] == "quiet"
    assert body["firing"]["id"] == firing.pk
    assert body["contact"]["email"] == contact.email
    assert body["account"]["id"] == contact.account_id


def test_wrong_secret_not_delivered(receiver):
    delivery, _, _ = webhook_delivery(receiver.url, secret="another-secret")

    assert send_delivery(delivery.pk) is False

    delivery.refresh_from_db()
    assert receiver.calls[0]["valid"] is False
    assert delivery.status == "pending"
    assert delivery.response_status == 401


@pytest.mark.parametrize("receiver", [[500, 200]], indirect=True)
def test_webhook_retried_after_500(receiver):
    delivery, _, _ = webhook_delivery(receiver.url)
    first_try = timezone.now()

    assert send_delivery(delivery.pk, now=first_try) is False
    delivery.refresh_from_db()
    assert delivery.status == "pending"
    assert delivery.response_status == 500
    assert delivery.last_error == "HTTP 500"
    # The first retry waits one minute.
    assert delivery.next_attempt_at == first_try + timedelta(minutes=1)

    assert send_delivery(delivery.pk, now=first_try + timedelta(seconds=30)) is False
    assert len(receiver.calls) == 1

    assert send_delivery(delivery.pk, now=first_try + timedelta(minutes=1)) is True
    assert send_delivery(delivery.pk, now=first_try + timedelta(hours=2)) is False

    delivery.refresh_from_db()
    assert delivery.status == "delivered"
    assert delivery.attempts == 2
    assert len(receiver.calls) == 2
    keys = {call["headers"]["Idempotency-Key"] for call in receiver.calls}
    assert keys == {delivery.idempotency_key}
    assert WebhookDelivery.objects.filter(status="delivered").count() == 1


@pytest.mark.parametrize("receiver", [[503]], indirect=True)
def test_webhook_fails_after_last_attempt(receiver):
    delivery, _, _ = webhook_delivery(receiver.url)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=MAX_ATTEMPTS - 1)

    assert send_delivery(delivery.pk) is False

    delivery.refresh_from_db()
    assert delivery.status == "failed"
    assert delivery.attempts == MAX_ATTEMPTS
    assert delivery.next_attempt_at is None

    assert retry_failed_webhooks([delivery.pk]) == 1
    delivery.refresh_from_db()
    assert delivery.status == "pending"
    assert delivery.attempts == 0


def test_unreachable_endpoint_retried():
    # Port 9 on 127.0.0.1 (discard) is closed on test machines: connection refused.
    delivery, _, _ = webhook_delivery("http://127.0.0.1:9/hook")

    assert send_delivery(delivery.pk) is False

    delivery.refresh_from_db()
    assert delivery.status == "pending"
    assert delivery.response_status is None
    assert "URLError" in delivery.last_error


def test_one_call_per_firing_step(receiver):
    make_contact()
    endpoint = WebhookEndpoint.objects.create(name="e", url=receiver.url, secret=SECRET)
    trigger = make_trigger({"kind": "inactivity", "days": 10}, occurrence="daily")
    make_step(trigger, 1, "call_webhook", webhook=endpoint)

    run_sweep(NOW, triggers=[trigger])
    run_sweep(NOW, triggers=[trigger])
    run_sweep(NOW + timedelta(days=1), triggers=[trigger])

    # Two firings (two days), one call each.
    assert Firing.objects.count() == 2
    assert WebhookDelivery.objects.count() == 2
