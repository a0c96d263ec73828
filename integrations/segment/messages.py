"""Validating one Segment call and correcting its timestamp for clock skew.

parse_call() turns one JSON message into a Call or raises Rejection with a
code and a reason that name the field at fault. It reads nothing from the
database: whether a userId or groupId is known is decided later, for a
whole request at once.
"""

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from integrations.json_values import SURROGATE, nesting_exceeds

# Segment's documented limits: 32 KB per call, 500 KB per batch request.
# Both are measured on the uncompressed JSON.
MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024

# A corrected timestamp later than this after receipt is rejected, because
# no clock skew explains it and it would count as usage on a day to come.
MAX_FUTURE = timedelta(days=1)

SUPPORTED_TYPES = ("identify", "track", "group", "page")
# Segment calls that Nudgepath has no record for.
UNSUPPORTED_TYPES = ("screen", "alias")

# The usage event name of a page call; Segment's own name for page views.
PAGE_EVENT = "Page Viewed"

# Contact.external_id and Account.external_id are at most 64 characters.
MAX_ID_LENGTH = 64
# properties and traits nested deeper are rejected, as on the inbound and
# HubSpot webhook endpoints, so no reader of the stored JSON recurses
# without bound. Segment documents size limits only, so the cap is this
# API's own.
MAX_PROPERTY_DEPTH = 20

# One encoder for every message: json.dumps() with a keyword argument
# builds a new encoder per call. Its output is ASCII (ensure_ascii is the
# default), so its length is its size in bytes. Every NUL in a key or
# string shows as the escape \u0000, and every UTF-16 surrogate as \udXXX.
COMPACT_JSON = json.JSONEncoder(separators=(",", ":"))


class Rejection(Exception):
    """A call that is not applied: a code for programs and a reason for people."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


@dataclass(slots=True)
class Call:
    """One validated Segment call; event fields are empty for identify and group."""

    index: int
    type: str
    message_id: str
    user_id: str
    occurred_at: datetime
    event: str = ""
    feature: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    traits: dict[str, Any] = field(default_factory=dict)
    group_id: str = ""
    # context.groupId: the account that a track call or identify is about.
    context_group_id: str = ""


def parse_call(
    index: int,
    message: Any,
    *,
    received_at: datetime,
    sent_at: datetime | None = None,
    call_type: str | None = None,
) -> Call:
    """Validate message, the index-th of its request, and return it as a Call.

    sent_at is the batch's sentAt, used when the message has none.
    call_type is the type that a single-call endpoint such as /v1/track
    implies. Raises Rejection.
    """
    if not isinstance(message, dict):
        raise Rejection(
            "invalid_message",
            f"message is a JSON {_json_type(message)}; send a JSON object",
        )
    text = _compact_json(message)
    kind = _call_type(message, call_type)
    user_id = _user_id(message)
    context = _object(message, "context")
    call = Call(
        index=index,
        type=kind,
        message_id=_message_id(message),
        user_id=user_id,
        occurred_at=corrected_timestamp(message, received_at, sent_at),
        context_group_id=_optional_id(context, "groupId", "context.groupId"),
    )
    if kind == "track":
        call.event = _event_name(message)
    elif kind == "page":
        call.event = PAGE_EVENT
    if kind in ("track", "page"):
        call.properties = _page_properties(message) if kind == "page" else {}
        call.properties.update(_object(message, "properties"))
        call.feature = _feature(call.properties)
        if _may_nest_deeply(text):
            _require_shallow(call.properties, "properties")
    else:
        call.traits = _object(message, "traits")
        # Depth first, so the recursive text check stays within the cap.
        if _may_nest_deeply(text):
            _require_shallow(call.traits, "traits")
        if "\\u0000" in text or "\\ud" in text:
            _require_storable_text(call.traits, "traits")
    if kind == "group":
        call.group_id = _optional_id(message, "groupId", "groupId")
        if not call.group_id:
            raise Rejection("missing_group_id", "group call has no groupId; add it")
    return call


def corrected_timestamp(
    message: dict[str, Any], received_at: datetime, batch_sent_at: datetime | None
) -> datetime:
    """Return when the call happened, corrected for the sender's clock skew.

    Segment's rule: timestamp = receivedAt - (sentAt - originalTimestamp),
    where originalTimestamp is the call's own timestamp and sentAt the
    sender's clock when it sent the request. Without sentAt the timestamp
    is taken as given (a historical import), and without a timestamp the
    call happened when it was received.
    """
    original = _instant(message, "timestamp") or _instant(message, "originalTimestamp")
    sent_at = _instant(message, "sentAt") or batch_sent_at
    if original is None:
        return received_at
    if sent_at is None:
        occurred = original
    else:
        try:
            occurred = received_at - (sent_at - original)
        except OverflowError:
            raise Rejection(
                "invalid_timestamp",
                f"timestamp {original.isoformat()} corrected by sentAt "
                f"{sent_at.isoformat()} is out of range; check both",
            ) from None
    if occurred > received_at + MAX_FUTURE:
        raise Rejection(
            "timestamp_in_future",
            f"timestamp {original.isoformat()} is {occurred - received_at} after "
            f"receipt once corrected by sentAt; at most {MAX_FUTURE} is accepted. "
            "Check the sender's clock",
        )
    return occurred


def parse_instant(value: Any, name: str) -> datetime:
    """Return the aware datetime of an ISO 8601 string; raise Rejection otherwise."""
    if not isinstance(value, str):
        raise Rejection(
            "invalid_timestamp",
            f"{name} is a JSON {_json_type(value)}; send an ISO 8601 string such "
            "as 2024-06-15T12:00:00.000Z",
        )
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:
        raise Rejection(
            "invalid_timestamp",
            f"{name} {value[:40]!r} is not an ISO 8601 date and time; send one "
            "such as 2024-06-15T12:00:00.000Z",
        ) from None
    if instant.tzinfo is None:
        raise Rejection(
            "invalid_timestamp",
            f"{name} {value!r} has no UTC offset; add Z or +00:00",
        )
    return instant


def _instant(message: dict[str, Any], name: str) -> datetime | None:
    value = message.get(name)
    return None if value is None else parse_instant(value, name)


def _compact_json(message: dict[str, Any]) -> str:
    """Return message as compact JSON; reject it if that is over the size limit."""
    # Compact separators, so a message that the Segment library measured
    # (with spaces) as within the limit is within it here too.
    text = COMPACT_JSON.encode(message)
    if len(text) > MAX_MESSAGE_BYTES:
        raise Rejection(
            "message_too_large",
            f"message is {len(text)} bytes of JSON, more than the limit of "
            f"{MAX_MESSAGE_BYTES}; send fewer or shorter properties",
        )
    return text


def _may_nest_deeply(text: str) -> bool:
    """Return whether the message's JSON text has enough brackets to nest too deep.

    Each level of nesting opens an object or an array, so a message with
    no more than MAX_PROPERTY_DEPTH of them cannot have properties or
    traits nested deeper than that, and the recursive check is skipped.
    Brackets inside strings only make the count an upper bound.
    """
    return text.count("{") + text.count("[") > MAX_PROPERTY_DEPTH


def _call_type(message: dict[str, Any], implied: str | None) -> str:
    kind = message.get("type", implied)
    if implied is not None and kind != implied:
        raise Rejection(
            "invalid_type",
            f"message type {kind!r} does not match the /v1/{implied} endpoint; "
            "send it to /v1/batch",
        )
    if kind in UNSUPPORTED_TYPES:
        raise Rejection(
            "unsupported_type",
            f"{kind} calls are not recorded; send page or track calls instead",
        )
    if kind not in SUPPORTED_TYPES:
        raise Rejection(
            "invalid_type",
            f"message type {kind!r} is invalid; use one of "
            f"{', '.join(SUPPORTED_TYPES)}",
        )
    return str(kind)


def _user_id(message: dict[str, Any]) -> str:
    user_id = _optional_id(message, "userId", "userId")
    if user_id:
        return user_id
    if message.get("anonymousId") not in (None, ""):
        raise Rejection(
            "missing_user_id",
            "message has an anonymousId but no userId; calls are recorded for "
            "contacts, so send them once the user is identified",
        )
    raise Rejection("missing_user_id", "message has no userId; add it")


def _optional_id(container: dict[str, Any], key: str, name: str) -> str:
    value = container.get(key)
    # The common case, a short ASCII string, in one test.
    if (
        type(value) is str
        and len(value) <= MAX_ID_LENGTH
        and value.isascii()
        and "\x00" not in value
    ):
        return value
    if value is None or value == "":
        return ""
    # Segment's libraries send ids as strings, or numbers that they convert.
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Rejection(
            "invalid_id",
            f"{name} is a JSON {_json_type(value)}; send a string",
        )
    text = str(value)
    if len(text) > MAX_ID_LENGTH:
        raise Rejection(
            "invalid_id",
            f"{name} {text[:40]!r}... is {len(text)} characters long, more than "
            f"the maximum of {MAX_ID_LENGTH}",
        )
    if "\x00" in text:
        raise Rejection("invalid_id", f"{name} contains a NUL character; remove it")
    if SURROGATE.search(text):
        raise _surrogate_rejection("invalid_id", name)
    return text


def _message_id(message: dict[str, Any]) -> str:
    message_id = _optional_id(message, "messageId", "messageId")
    if message_id:
        return message_id
    # Segment's libraries always send a messageId. For a hand-written call
    # without one, a hash of the call is used instead, so a redelivered copy is
    # still counted once. Two identical calls are counted once too.
    ignored = ("sentAt", "writeKey")
    content = {key: value for key, value in message.items() if key not in ignored}
    digest = hashlib.sha256(
        json.dumps(content, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()
    return f"sha256-{digest[:57]}"


def _event_name(message: dict[str, Any]) -> str:
    name = message.get("event")
    if not isinstance(name, str) or not name.strip():
        raise Rejection(
            "missing_event",
            f"track call has event={name!r}; send the event's name, such as "
            '"Signed In"',
        )
    return name


def _object(container: dict[str, Any], key: str) -> dict[str, Any]:
    value = container.get(key)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise Rejection(
            "invalid_message",
            f"{key} is a JSON {_json_type(value)}; send a JSON object",
        )
    return value


def _page_properties(message: dict[str, Any]) -> dict[str, Any]:
    # A page call names the page outside properties; the event keeps it.
    properties = {}
    for key in ("name", "category"):
        value = message.get(key)
        if value is not None:
            if not isinstance(value, str):
                raise Rejection(
                    "invalid_message",
                    f"page {key} is a JSON {_json_type(value)}; send a string",
                )
            properties[key] = value
    return properties


def _feature(properties: dict[str, Any]) -> str:
    feature = properties.get("feature")
    if feature is None:
        return ""
    if not isinstance(feature, str):
        raise Rejection(
            "invalid_message",
            f"properties.feature is a JSON {_json_type(feature)}; send the "
            "feature's name as a string",
        )
    return feature


def _require_storable_text(value: Any, name: str) -> None:
    """Reject NUL characters and unpaired UTF-16 surrogates in keys and strings.

    PostgreSQL can store neither in text or jsonb.
    """
    if isinstance(value, str):
        if "\x00" in value:
            raise Rejection("invalid_message", f"{name} contains a NUL character")
        if SURROGATE.search(value):
            raise _surrogate_rejection("invalid_message", name)
    if isinstance(value, dict):
        for key, item in value.items():
            _require_storable_text(key, f"{name} key")
            _require_storable_text(item, f"{name}.{key}")
    if isinstance(value, list):
        for position, item in enumerate(value):
            _require_storable_text(item, f"{name}[{position}]")


def _surrogate_rejection(code: str, name: str) -> Rejection:
    return Rejection(
        code,
        f"{name} contains an unpaired UTF-16 surrogate, which is not valid "
        "Unicode; send it as UTF-8 text",
    )


def _require_shallow(value: dict[str, Any], name: str) -> None:
    if nesting_exceeds(value, MAX_PROPERTY_DEPTH):
        raise Rejection(
            "invalid_message",
            f"{name} is nested more than {MAX_PROPERTY_DEPTH} levels deep; "
            "flatten the deeper values",
        )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"
