"""Outbound webhooks: an outbox of calls written by journey steps, signed and sent.

A call-webhook step writes one WebhookDelivery row per firing in the
step's transaction, with the JSON body fixed at that moment. A Celery task
queued after commit claims the row with a conditional UPDATE (pending to
sending) and POSTs the body. Each attempt carries:

- X-Nudgepath-Timestamp: the attempt's Unix time in seconds;
- X-Nudgepath-Signature: "sha256=" and the hex HMAC-SHA256, keyed with the
  endpoint's secret, of the timestamp, a full stop and the body bytes;
- Idempotency-Key: the same on every attempt of the row.

A 2xx response marks the row delivered. Any other response, a timeout or a
connection error returns it to pending with a backoff of 1, 2, 4 ... minutes
capped at one hour, and the eighth failed attempt marks it failed, where a
CSM can retry it from the admin. Delivery is at least once. A worker that
dies after the endpoint responded leaves the row in sending, so the
periodic job sends it again with the same idempotency key.
"""

import hashlib
import hmac
import http.client
import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from triggers import retries
from triggers.models import (
    Firing,
    JourneyStep,
    WebhookDelivery,
    WebhookStatus,
)
from triggers.webhook_targets import check_url, connect_checked

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Nudgepath-Signature"
TIMESTAMP_HEADER = "X-Nudgepath-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
# Attempts before a row is marked failed.
MAX_ATTEMPTS = 8
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)
# Seconds a call may wait for the endpoint; well below STUCK_AFTER.
REQUEST_TIMEOUT_SECONDS = 10
# A row in "sending" longer than this belongs to a worker that died.
STUCK_AFTER = timedelta(minutes=15)
# Rows the periodic job queues per run; the rest wait for the next run.
PENDING_BATCH_SIZE = 500
# Characters of an error response kept in last_error.
ERROR_BODY_CHARS = 300


def retry_delay(attempts: int) -> timedelta:
    """Return the wait before the next attempt after `attempts` failed attempts."""
    return min(BACKOFF_BASE * 2 ** max(attempts - 1, 0), BACKOFF_MAX)


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """Return the signature header value for a body sent at timestamp."""
    message = str(timestamp).encode() + b"." + body
    digest = hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()
    return f"sha256={digest}"


def idempotency_key(firing_id: int, step_id: int) -> str:
    """Return the Idempotency-Key of the call for one firing and step."""
    return f"nudgepath-firing-{firing_id}-step-{step_id}"


def webhook_body(firing: Firing, step: JourneyStep) -> dict[str, Any]:
    """Describe a firing for the receiver: trigger, step, subject and account."""
    contact = firing.contact
    account = firing.account
    return {
        "event": "trigger.fired",
        "idempotency_key": idempotency_key(firing.pk, step.pk),
        "trigger": {"slug": step.trigger.slug, "name": step.trigger.name},
        "step": {"id": step.pk, "order": step.order},
        "firing": {
            "id": firing.pk,
            "fired_at": firing.fired_at.isoformat(),
            "occurrence_key": firing.occurrence_key,
            "subject_type": firing.subject_type,
        },
        "account": {
            "id": account.pk,
            "external_id": account.external_id,
            "name": account.name,
        },
        "contact": None
        if contact is None
        else {
            "id": contact.pk,
            "external_id": contact.external_id,
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
        },
    }


def enqueue_deliveries(step: JourneyStep, firings: Sequence[Firing]) -> int:
    """Write one call per firing to the outbox and queue them after commit.

    Returns how many rows are new. A row that exists for the firing and
    step is kept as it is. An inactive endpoint gets no new rows.
    """
    endpoint = step.webhook
    if endpoint is None or not firings:
        return 0
    if not endpoint.is_active:
        logger.warning(
            "Webhook endpoint %s is inactive; step %s writes no call for %s firings",
            endpoint.pk,
            step.pk,
            len(firings),
        )
        return 0

    rows = [
        WebhookDelivery(
            endpoint=endpoint,
            firing=firing,
            step=step,
            idempotency_key=idempotency_key(firing.pk, step.pk),
            body=json.dumps(webhook_body(firing, step), separators=(",", ":")),
        )
        for firing in firings
    ]
    WebhookDelivery.objects.bulk_create(rows, ignore_conflicts=True)
    # Read back by key, since ignore_conflicts returns no ids.
    keys = [row.idempotency_key for row in rows]
    pending = list(
        WebhookDelivery.objects.filter(
            idempotency_key__in=keys, status=WebhookStatus.PENDING, attempts=0
        ).values_list("pk", flat=True)
    )
    queue_send_after_commit(pending)
    return len(pending)


def send_delivery(delivery_id: int, now: datetime | None = None) -> bool:
    """Claim one call and send it; return whether the endpoint accepted it.

    Returns False without sending when the row does not exist, is not
    pending, or waits for a retry. A failed call is recorded on the row,
    not raised. now defaults to the current time; tests pass it to step
    past a backoff.
    """
    now = now or timezone.now()
    if not _claim(delivery_id, now):
        logger.debug("Webhook delivery %s not claimed: taken or not due", delivery_id)
        return False

    delivery = WebhookDelivery.objects.select_related("endpoint").get(pk=delivery_id)
    started = time.monotonic()
    try:
        status = _post(delivery)
    except (urllib.error.URLError, OSError, ValueError) as exc:
        _record_failure(delivery, None, f"{type(exc).__name__}: {exc}", now)
        return False

    if not 200 <= status < 300:
        _record_failure(delivery, status, f"HTTP {status}", now)
        return False
    WebhookDelivery.objects.filter(pk=delivery.pk, status=WebhookStatus.SENDING).update(
        status=WebhookStatus.DELIVERED,
        response_status=status,
        delivered_at=timezone.now(),
        last_error="",
    )
    logger.info(
        "Delivered webhook %s to endpoint %s (firing %s, attempt %s) in %.0f ms",
        delivery.pk,
        delivery.endpoint_id,
        delivery.firing_id,
        delivery.attempts,
        (time.monotonic() - started) * 1000,
    )
    return True


def _claim(delivery_id: int, now: datetime) -> bool:
    claimed = WebhookDelivery.objects.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        pk=delivery_id,
        status=WebhookStatus.PENDING,
    ).update(status=WebhookStatus.SENDING, attempts=F("attempts") + 1, claimed_at=now)
    return claimed == 1


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    # A redirect would resend the signed body to a URL that no one configured,
    # so a 3xx response counts as a failed attempt.
    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class _CheckedHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Connect only to addresses that triggers.webhook_targets allows.
        self._create_connection = connect_checked


class _CheckedHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._create_connection = connect_checked


class _CheckedHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        return self.do_open(_CheckedHTTPConnection, req)


class _CheckedHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
        context = self._context  # type: ignore[attr-defined]
        return self.do_open(_CheckedHTTPSConnection, req, context=context)


# NOTE: with an http_proxy or https_proxy variable in the environment,
# urllib connects to the proxy, so only the proxy's address is checked and
# the proxy resolves the endpoint's host.
_opener = urllib.request.build_opener(
    _NoRedirect, _CheckedHTTPHandler, _CheckedHTTPSHandler
)


def _post(delivery: WebhookDelivery) -> int:
    """POST the row's body to its endpoint; return the HTTP status.

    Raises ValueError for a URL that may not be called, for example one
    saved before the checks of triggers.webhook_targets existed.
    """
    check_url(delivery.endpoint.url)
    body = delivery.body.encode()
    timestamp = int(time.time())
    request = urllib.request.Request(
        delivery.endpoint.url,
        data=body,
        method="POST",
        headers={
            "Content-Type": "application/json",
            "User-Agent": "Nudgepath-Webhook/1",
            TIMESTAMP_HEADER: str(timestamp),
            SIGNATURE_HEADER: sign(delivery.endpoint.secret, timestamp, body),
            IDEMPOTENCY_HEADER: delivery.idempotency_key,
        },
    )
    try:
        with _opener.open(request, timeout=REQUEST_TIMEOUT_SECONDS) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        exc.close()
        return int(exc.code)


def _record_failure(
    delivery: WebhookDelivery, status: int | None, error: str, now: datetime
) -> None:
    sending = WebhookDelivery.objects.filter(
        pk=delivery.pk, status=WebhookStatus.SENDING
    )
    if delivery.attempts >= MAX_ATTEMPTS:
        sending.update(
            status=WebhookStatus.FAILED,
            response_status=status,
            last_error=error,
            next_attempt_at=None,
        )
        logger.error(
            "Webhook %s to endpoint %s failed after %s attempts, giving up: %s",
            delivery.pk,
            delivery.endpoint_id,
            delivery.attempts,
            error,
        )
        return

    delay = retry_delay(delivery.attempts)
    sending.update(
        status=WebhookStatus.PENDING,
        response_status=status,
        last_error=error,
        next_attempt_at=now + delay,
    )
    logger.warning(
        "Webhook %s to endpoint %s attempt %s failed, retrying in %s s: %s",
        delivery.pk,
        delivery.endpoint_id,
        delivery.attempts,
        int(delay.total_seconds()),
        error,
    )


def release_stuck_webhooks(older_than: timedelta = STUCK_AFTER) -> int:
    """Release calls claimed longer ago than older_than; return how many.

    The call may or may not have reached the endpoint, so a released call
    is sent again with the same idempotency key while attempts remain.
    """
    return retries.release_stuck(
        WebhookDelivery, older_than, MAX_ATTEMPTS, "webhook calls"
    )


def due_delivery_ids(limit: int = PENDING_BATCH_SIZE) -> list[int]:
    """Return up to `limit` ids of pending calls that are due, oldest first."""
    return retries.due_ids(WebhookDelivery, limit)


def retry_failed_webhooks(delivery_ids: Iterable[int]) -> int:
    """Return failed calls to pending with fresh attempts and queue them."""
    return retries.retry_failed(
        WebhookDelivery, delivery_ids, queue_send_after_commit, "webhook calls"
    )


def queue_send_after_commit(delivery_ids: list[int]) -> None:
    """Queue a send task per call once the current transaction commits."""
    if not delivery_ids:
        return
    # Imported here because the tasks module imports this one.
    from triggers.journey_tasks import send_webhook

    def queue() -> None:
        for delivery_id in delivery_ids:
            send_webhook.delay(delivery_id)

    # A worker must never see a delivery id whose row is not committed yet.
    transaction.on_commit(queue)
