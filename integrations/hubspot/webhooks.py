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
import time
from typing import Any
from urllib.parse import unquote

from django.db import transaction
from django.utils import timezone
from hubspot.crm.companies import BatchReadInputSimplePublicObjectId as CompanyRead
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId as ContactRead

from integrations.hubspot.api import HubSpotError, build_client, call
from integrations.hubspot.conversion import ConversionError
from integrations.hubspot.models import (
    HubSpotConnection,
    ObjectType,
    PropertyMapping,
    WebhookEvent,
)
from integrations.hubspot.records import (
    HubSpotRecord,
    RecordError,
    apply_record,
    mark_archived,
    requested_properties,
)

logger = logging.getLogger(__name__)

# HubSpot's rule: a timestamp older than five minutes is rejected.
MAX_AGE_MS = 5 * 60 * 1000
OBJECT_TYPES = {"company": ObjectType.COMPANY, "contact": ObjectType.CONTACT}


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
    if sent_ms > now_ms:
        raise InvalidWebhook(f"timestamp {sent_ms} is in the future (now {now_ms})")
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
    (a redelivery) are ignored.
    """
    try:
        events = json.loads(body)
    except ValueError as error:
        raise InvalidWebhook(f"body is not JSON: {error}") from None
    if not isinstance(events, list):
        raise InvalidWebhook("body must be a JSON array of events")
    rows = []
    for index, event in enumerate(events):
        if not isinstance(event, dict) or not isinstance(event.get("eventId"), int):
            raise InvalidWebhook(f"event {index} has no numeric eventId")
        rows.append(
            WebhookEvent(
                connection=connection,
                event_id=event["eventId"],
                subscription_type=str(event.get("subscriptionType", ""))[:100],
                object_id=str(event.get("objectId", ""))[:32],
                payload=event,
            )
        )
    WebhookEvent.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def process_events(connection: HubSpotConnection) -> int:
    """Apply the stored events not yet processed, one object at a time; return count.

    Each object's events are claimed with SKIP LOCKED and marked processed
    in the transaction that applies them, so two workers never hand on the
    same change twice. Events of one object are applied with one read of
    the object as it is now. An event that fails keeps its error and is
    not tried again.
    """
    processed = 0
    while True:
        with transaction.atomic():
            events = _claim_object_events(connection)
            if not events:
                return processed
            try:
                _apply_object(connection, events)
            except (HubSpotError, RecordError, ConversionError) as error:
                logger.warning(
                    "HubSpot webhook events %s failed: %s",
                    [event.event_id for event in events],
                    error,
                )
                _finish(events, str(error))
                continue
            _finish(events, "")
            processed += len(events)


def _claim_object_events(connection: HubSpotConnection) -> list[WebhookEvent]:
    pending = WebhookEvent.objects.select_for_update(skip_locked=True).filter(
        connection=connection, processed_at__isnull=True, last_error=""
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


def _finish(events: list[WebhookEvent], error: str) -> None:
    now = timezone.now()
    for event in events:
        event.last_error = error
        event.processed_at = None if error else now
    WebhookEvent.objects.bulk_update(events, ["last_error", "processed_at"])


def _apply_object(connection: HubSpotConnection, events: list[WebhookEvent]) -> None:
    kind, _, action = events[-1].subscription_type.partition(".")
    object_type = OBJECT_TYPES.get(kind)
    if object_type is None:
        raise RecordError(
            f"subscription type {events[-1].subscription_type} is not synced"
        )
    object_id = events[-1].object_id
    if action == "deletion":
        mark_archived(connection, object_type, object_id)
        return
    obj = _read_object(connection, object_type, object_id)
    if obj is None:
        # The record is gone again (archived or merged away) since the event.
        mark_archived(connection, object_type, object_id)
        return
    mappings = list(
        PropertyMapping.objects.filter(connection=connection, object_type=object_type)
    )
    warnings: list[str] = []
    apply_record(
        connection, HubSpotRecord.from_api(object_type, obj), mappings, warnings
    )
    for warning in warnings:
        logger.warning("HubSpot webhook for %s %s: %s", kind, object_id, warning)


def _read_object(
    connection: HubSpotConnection, object_type: str, object_id: str
) -> Any:
    """Return the object as HubSpot has it now, or None when it is not found."""
    client = build_client(connection)
    mappings = PropertyMapping.objects.filter(
        connection=connection, object_type=object_type
    )
    properties = requested_properties(object_type, list(mappings))
    if object_type == ObjectType.COMPANY:
        batch = client.crm.companies.batch_api
        request: Any = CompanyRead(
            inputs=[{"id": object_id}],
            properties=properties,
            properties_with_history=[],
        )
    else:
        batch = client.crm.contacts.batch_api
        request = ContactRead(
            inputs=[{"id": object_id}],
            properties=properties,
            properties_with_history=[],
        )
    response = call(
        connection,
        lambda: batch.read(batch_read_input_simple_public_object_id=request),
        description=f"read {object_type} {object_id}",
    )
    for obj in response.results or []:
        if str(obj.id) == object_id:
            return obj
    return None
