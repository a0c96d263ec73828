"""The endpoint of generic inbound webhooks: POST /inbound/v1/items.

The response is JSON. 200 means every accepted item is committed, and it
lists the rejected items, if any, with their index and reason. A request
whose items are all rejected gets 400 with the same list, and a request
that cannot be read gets a 4xx with a code and a message.
"""

import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from integrations.inbound.service import InboundResult, ingest_items
from integrations.models import EventSource
from integrations.segment.bodies import (
    RequestError,
    decode_json,
    find_source,
    read_body,
)

logger = logging.getLogger(__name__)

# A request body of at most 500 KB, and at most this many items, so one
# request stays one short transaction.
MAX_BODY_BYTES = 512_000
MAX_ITEMS = 500


@csrf_exempt
def items(request: HttpRequest) -> HttpResponse:
    """Authenticate the source by its token and apply the items of the body."""
    received_at = timezone.now()
    if request.method != "POST":
        response = _error(405, "method_not_allowed", "send the items with POST")
        response["Allow"] = "POST"
        return response
    try:
        source = authenticate(request.headers.get("Authorization"))
        batch = _items(decode_json(read_body(request, MAX_BODY_BYTES)))
    except RequestError as error:
        logger.info("Rejected inbound webhook: %s %s", error.status, error.message)
        return _error(error.status, error.code, error.message)
    return _response(ingest_items(batch, source, received_at))


def authenticate(header: str | None) -> EventSource:
    """Return the active source whose write key is the Bearer token.

    find_source compares the token with every key in constant time.
    """
    scheme, _, token = (header or "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise RequestError(
            401,
            "missing_token",
            "send the event source's write key as Authorization: Bearer WRITE_KEY",
        )
    found = find_source(token)
    if found is None:
        raise RequestError(
            401,
            "unknown_token",
            "the token matches no event source; copy the write key from the "
            "event source's page in the admin",
        )
    if not found.is_active:
        raise RequestError(
            403, "inactive_source", f"event source {found.pk} is inactive"
        )
    return found


def _items(payload: Any) -> list[Any]:
    if not isinstance(payload, dict):
        raise RequestError(
            400, "invalid_json", 'request body must be a JSON object: {"items": [...]}'
        )
    batch = payload.get("items")
    if not isinstance(batch, list) or not batch:
        raise RequestError(
            400, "invalid_batch", 'request body needs "items", a non-empty JSON array'
        )
    if len(batch) > MAX_ITEMS:
        raise RequestError(
            413,
            "too_many_items",
            f"{len(batch)} items in one request; send at most {MAX_ITEMS}",
        )
    return batch


def _response(result: InboundResult) -> JsonResponse:
    body: dict[str, Any] = {
        "success": result.accepted > 0,
        "received": result.received,
        "accepted": result.accepted,
        "applied": result.applied,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
    }
    if result.accepted > 0:
        return JsonResponse(body, status=200)
    body["code"] = "invalid_items"
    body["message"] = f"all {result.received} items were rejected; see rejected"
    return JsonResponse(body, status=400)


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(
        {"success": False, "code": code, "message": message}, status=status
    )
