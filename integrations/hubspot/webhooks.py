"""HubSpot webhooks: the v3 signature, storing each event once, applying it.

HubSpot signs a webhook request with X-HubSpot-Signature-v3: the base64
HMAC-SHA256, keyed with the app's client secret, of the request method,
the full request URI with URL-encoded characters decoded, the body and
the X-HubSpot-Request-Timestamp header (milliseconds since 1970), joined
without separators. Requests older than five minutes are to be rejected.
"""

import base64
import hashlib
import hmac
import json
import logging
import re
import time
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import unquote

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from integrations.hubspot.api import HubSpotError
from integrations.hubspot.conversion import ConversionError
from integrations.hubspot.models import HubSpotConnection, WebhookEvent
from integrations.hubspot.records import RecordError
from integrations.hubspot.webhook_records import apply_object_events
from integrations.json_values import storage_problem

logger = logging.getLogger(__name__)

# HubSpot's rule: a timestamp older than five minutes is rejected.
MAX_AGE_MS = 5 * 60 * 1000
# How far a timestamp may be ahead of this server's clock. HubSpot stamps
# the request with its own clock, so a server whose clock runs a little
# slow would otherwise reject fresh requests. A minute covers a clock that
# drifts between NTP corrections. With it, a signed request stays usable
# for at most six minutes, and a timestamp further ahead is rejected.
MAX_FUTURE_SKEW_MS = 60 * 1000
# HubSpot's generic subscriptions (object.creation and so on) name the
# object type by id in objectTypeId; these are the ids of the synced types.
OBJECT_TYPE_IDS = {"0-1": "contact", "0-2": "company", "0-3": "deal", "0-5": "ticket"}
# WebhookEvent.event_id is a bigint; HubSpot's ids are 64-bit integers.
MAX_ID = 2**63 - 1
SUBSCRIPTION_TYPE = re.compile(r"[a-z_]{1,40}\.[A-Za-z_]{1,59}")
# HubSpot's events are flat objects; this leaves room for nested values
# while keeping a hostile body from exhausting the stack.
MAX_PAYLOAD_DEPTH = 20
# Attempts of an event whose record HubSpot could not return (a network
# error, a rate limit or a server error); then it fails for good.
MAX_WEBHOOK_ATTEMPTS = 8
# Wait before retry n: 1, 2, 4 ... minutes, at most an hour.
RETRY_BASE = timedelta(minutes=1)
RETRY_MAX = timedelta(hours=1)


class InvalidWebhook(ValueError):
    """A webhook request that is not signed by HubSpot or cannot be read."""


def check_signature(
    secret: str,
    method: str,
    uri: str,
    body: bytes,
    timestamp: str | None,
    signature: str | None,
    now_ms: int | None = None,
) -> None:
    """Raise InvalidWebhook unless signature is the request's v3 signature."""
    if not secret:
        raise InvalidWebhook("the connection has no app secret to check webhooks with")
    if not timestamp or not signature:
        raise InvalidWebhook(
            "X-HubSpot-Signature-v3 or X-HubSpot-Request-Timestamp is missing"
        )
    try:
        sent_ms = int(timestamp)
    except ValueError:
        raise InvalidWebhook(
            f"timestamp {timestamp[:20]!r} is not milliseconds"
        ) from None
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if sent_ms - now_ms > MAX_FUTURE_SKEW_MS:
        raise InvalidWebhook(
            f"timestamp {sent_ms} is more than {MAX_FUTURE_SKEW_MS // 1000} s in "
            f"the future (now {now_ms}); check the server's clock"
        )
    if now_ms - sent_ms > MAX_AGE_MS:
        raise InvalidWebhook(f"timestamp {sent_ms} is older than five minutes")
    message = (
        method.upper() + unquote(uri) + body.decode("utf-8", "replace") + timestamp
    )
    digest = hmac.new(secret.encode(), message.encode(), hashlib.sha256).digest()
    expected = base64.b64encode(digest).decode()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise InvalidWebhook("signature does not match the request")


def store_events(connection: HubSpotConnection, body: bytes) -> int:
    """Store the events of a webhook request, each event id once; return how many.

    Returns the number of events in the request. Events already stored
    (a redelivery) are ignored. Every event is checked before any is
    stored, so a request with one malformed event stores nothing.
    """
    events = parse_events(body)
    rows = [
        WebhookEvent(
            connection=connection,
            event_id=event["eventId"],
            subscription_type=subscription_type(event),
            object_id=str(event_object_id(event)),
            payload=event,
        )
        for event in events
    ]
    WebhookEvent.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def parse_events(body: bytes) -> list[dict[str, Any]]:
    """Return the events of a webhook body; raise InvalidWebhook naming the problem."""
    try:
        events = json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise InvalidWebhook(
            "body is nested too deeply to be read; HubSpot sends a flat array "
            "of event objects"
        ) from None
    except ValueError as error:
        raise InvalidWebhook(f"body is not JSON: {error}") from None
    if not isinstance(events, list):
        raise InvalidWebhook("body must be a JSON array of events")
    for index, event in enumerate(events):
        _check_event(index, event)
    return events


def subscription_type(event: dict[str, Any]) -> str:
    """Return the subscription type with the object named, as in contact.creation.

    A generic subscription (object.creation) names its object type in
    objectTypeId; it is stored under the legacy name of that type.
    """
    kind, _, action = event["subscriptionType"].partition(".")
    if kind == "object":
        kind = OBJECT_TYPE_IDS.get(str(event.get("objectTypeId")), "object")
    return f"{kind}.{action}"


def event_object_id(event: dict[str, Any]) -> Any:
    """Return the id of the record the event is about.

    Association changes carry fromObjectId instead of objectId, and merges
    primaryObjectId, the record that survives.
    """
    for name in ("objectId", "fromObjectId", "primaryObjectId"):
        if name in event:
            return event[name]
    return None


def _reject_constant(name: str) -> Any:
    # PostgreSQL's jsonb has no NaN or Infinity, so they cannot be stored.
    raise ValueError(f"{name} is not a JSON number")


def _check_event(index: int, event: Any) -> None:
    if not isinstance(event, dict):
        raise InvalidWebhook(f"event {index} is not a JSON object")
    _check_id(index, "eventId", event.get("eventId"))
    _check_id(index, "objectId", event_object_id(event))
    subscription_type = event.get("subscriptionType")
    if not isinstance(subscription_type, str) or not SUBSCRIPTION_TYPE.fullmatch(
        subscription_type
    ):
        raise InvalidWebhook(
            f"event {index} has subscriptionType {_shown(subscription_type)}; "
            "expected OBJECT.ACTION, for example contact.propertyChange"
        )
    problem = storage_problem(event, MAX_PAYLOAD_DEPTH)
    if problem:
        raise InvalidWebhook(f"event {index} {problem}")


def _check_id(index: int, name: str, value: Any) -> None:
    # bool is a subclass of int in Python, and true is no event id.
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidWebhook(
            f"event {index} has {name} {_shown(value)}; expected a positive "
            "whole number"
        )
    if not 0 < value <= MAX_ID:
        raise InvalidWebhook(
            f"event {index} has {name} {_shown(value)}, outside 1 to {MAX_ID}; "
            "HubSpot ids are positive 64-bit integers"
        )


def _shown(value: Any) -> str:
    """Return value as JSON, cut short, for an error message."""
    text = json.dumps(value)
    return text if len(text) <= 40 else text[:37] + "..."


def process_events(connection: HubSpotConnection) -> int:
    """Apply the stored events that are due, one object at a time; return count.

    Each object's events are claimed with SKIP LOCKED and marked processed
    in the transaction that applies them, so two workers never hand on the
    same change twice. Events of one object are applied with one read of
    the object as it is now. When HubSpot cannot be reached or responds with
    a rate limit or server error, the events stay pending with the error
    and a later next_attempt_at, and fail for good after
    MAX_WEBHOOK_ATTEMPTS. Any other error fails them for good at once.
    """
    processed = 0
    while True:
        with transaction.atomic():
            events = _claim_object_events(connection)
            if not events:
                return processed
            try:
                # A savepoint, so a record that fails halfway leaves nothing.
                with transaction.atomic():
                    apply_object_events(connection, events)
            except HubSpotError as error:
                if error.transient:
                    _schedule_retry(events, str(error))
                else:
                    _fail(events, str(error))
                continue
            except (RecordError, ConversionError) as error:
                _fail(events, str(error))
                continue
            _mark_processed(events)
            processed += len(events)


def due_events(now: datetime | None = None) -> QuerySet[WebhookEvent]:
    """Select the events waiting to be applied: new ones and retries that are due."""
    now = now or timezone.now()
    return WebhookEvent.objects.filter(processed_at__isnull=True).filter(
        Q(last_error="", next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)
    )


def retry_delay(attempts: int) -> timedelta:
    """Return the wait before the next attempt after `attempts` failed ones."""
    return min(RETRY_BASE * 2 ** max(attempts - 1, 0), RETRY_MAX)


def _claim_object_events(connection: HubSpotConnection) -> list[WebhookEvent]:
    pending = (
        due_events().select_for_update(skip_locked=True).filter(connection=connection)
    )
    first = pending.order_by("event_id").first()
    if first is None:
        return []
    prefix = first.subscription_type.partition(".")[0]
    return list(
        pending.filter(
            object_id=first.object_id, subscription_type__startswith=f"{prefix}."
        ).order_by("event_id")
    )


def _mark_processed(events: list[WebhookEvent]) -> None:
    now = timezone.now()
    for event in events:
        event.processed_at = now
        event.last_error = ""
        event.next_attempt_at = None
    WebhookEvent.objects.bulk_update(
        events, ["processed_at", "last_error", "next_attempt_at"]
    )


def _fail(events: list[WebhookEvent], error: str) -> None:
    logger.warning(
        "HubSpot webhook events %s failed: %s", [e.event_id for e in events], error
    )
    for event in events:
        event.attempts += 1
        event.last_error = error
        event.next_attempt_at = None
    WebhookEvent.objects.bulk_update(
        events, ["attempts", "last_error", "next_attempt_at"]
    )


def _schedule_retry(events: list[WebhookEvent], error: str) -> None:
    attempts = max(event.attempts for event in events) + 1
    if attempts >= MAX_WEBHOOK_ATTEMPTS:
        _fail(events, f"gave up after {attempts} attempts: {error}")
        return
    retry_at = timezone.now() + retry_delay(attempts)
    logger.warning(
        "HubSpot webhook events %s: attempt %s failed, retrying at %s: %s",
        [event.event_id for event in events],
        attempts,
        retry_at.isoformat(),
        error,
    )
    for event in events:
        event.attempts = attempts
        event.last_error = error
        event.next_attempt_at = retry_at
    WebhookEvent.objects.bulk_update(
        events, ["attempts", "last_error", "next_attempt_at"]
    )
