"""The endpoints of the Segment-compatible API: /v1/batch and one per call type.

Each response is JSON. 200 means every accepted call is committed; it lists
the rejected calls of a batch, if any, with their index and reason. A
request whose calls are all rejected gets 400 with the same list, and a
request that cannot be read at all gets a 4xx with a code and a message.
Errors carry "code" and "message", which Segment's libraries log.
"""

import json
import logging
from typing import Any

from django.http import HttpRequest, HttpResponse, JsonResponse
from django.utils import timezone
from django.views.decorators.csrf import csrf_exempt

from integrations.models import EventSource
from integrations.segment.bodies import (
    RequestError,
    authenticate,
    decode_json,
    read_body,
    write_key_from_header,
)
from integrations.segment.messages import (
    MAX_BATCH_BYTES,
    MAX_MESSAGE_BYTES,
    Rejection,
    parse_instant,
)
from integrations.segment.service import IngestResult, ingest_messages

logger = logging.getLogger(__name__)

# The end of the 413 message of a single-call endpoint, whose body is one
# call: splitting it into batches would not help.
SINGLE_CALL_ADVICE = (
    f"a single call is limited to {MAX_MESSAGE_BYTES} bytes, so send fewer or "
    "shorter properties, traits or context values"
)


@csrf_exempt
def batch(request: HttpRequest) -> HttpResponse:
    """Apply a batch: {"batch": [message, ...], "sentAt": ...}."""
    return _handle(request, call_type=None)


def single_call(call_type: str) -> Any:
    """Return the view of /v1/<call_type>, whose body is one message."""

    @csrf_exempt
    def view(request: HttpRequest) -> HttpResponse:
        return _handle(request, call_type=call_type)

    view.__name__ = call_type
    return view


def _handle(request: HttpRequest, call_type: str | None) -> HttpResponse:
    received_at = timezone.now()
    if request.method != "POST":
        response = _error(405, "method_not_allowed", "send the calls with POST")
        response["Allow"] = "POST"
        return response
    try:
        source, messages, sent_at = _read(request, call_type)
        result = ingest_messages(
            messages,
            source,
            received_at=received_at,
            sent_at=sent_at,
            call_type=call_type,
        )
    except RequestError as error:
        logger.info(
            "Rejected Segment request to %s: %s %s",
            request.path,
            error.status,
            error.message,
        )
        return _error(error.status, error.code, error.message)
    return _response(result, single=call_type is not None)


def _read(
    request: HttpRequest, call_type: str | None
) -> tuple[EventSource, list[Any], Any]:
    """Authenticate and decode the request; return its source, messages and sentAt."""
    header_key = write_key_from_header(request)
    # With the key in the header, a wrong key is rejected before the body is read.
    source = authenticate(header_key) if header_key is not None else None
    if call_type is None:
        body = read_body(request, MAX_BATCH_BYTES)
    else:
        body = read_body(request, MAX_MESSAGE_BYTES, SINGLE_CALL_ADVICE)
    payload = decode_json(body)
    if not isinstance(payload, dict):
        raise RequestError(
            400,
            "invalid_json",
            'request body must be a JSON object, such as {"batch": [...]} for '
            "/v1/batch or one call for the other endpoints",
        )
    if source is None:
        source = authenticate(_body_write_key(payload))
    messages = [payload] if call_type is not None else _batch_messages(payload)
    return source, messages, _sent_at(payload)


def _body_write_key(payload: dict[str, Any]) -> str | None:
    write_key = payload.get("writeKey")
    if write_key is None or isinstance(write_key, str):
        return write_key
    raise RequestError(
        401,
        "invalid_write_key",
        f"writeKey is {json.dumps(write_key)[:40]}, not a string; send the "
        "event source's write key as a string",
    )


def _batch_messages(payload: dict[str, Any]) -> list[Any]:
    messages = payload.get("batch")
    if not isinstance(messages, list) or not messages:
        raise RequestError(
            400,
            "invalid_batch",
            'request body needs "batch", a non-empty JSON array of calls',
        )
    return messages


def _sent_at(payload: dict[str, Any]) -> Any:
    if payload.get("sentAt") is None:
        return None
    try:
        return parse_instant(payload["sentAt"], "sentAt")
    except Rejection as rejection:
        raise RequestError(400, rejection.code, rejection.reason) from None


def _response(result: IngestResult, single: bool) -> JsonResponse:
    body: dict[str, Any] = {
        "success": result.accepted > 0,
        "received": result.received,
        "accepted": result.accepted,
        "stored": result.stored,
        "duplicates": result.duplicates,
        "rejected": result.rejected,
    }
    if result.accepted > 0:
        return JsonResponse(body, status=200)
    if single:
        first = result.rejected[0]
        body["code"], body["message"] = first["code"], first["reason"]
    else:
        body["code"] = "invalid_messages"
        body["message"] = (
            f"all {result.received} calls of the batch were rejected; see rejected"
        )
    return JsonResponse(body, status=400)


def _error(status: int, code: str, message: str) -> JsonResponse:
    return JsonResponse(
        {"success": False, "code": code, "message": message}, status=status
    )
