"""Helpers that build Segment calls and post them to the API with Django's client."""

import base64
import gzip
import itertools
import json
from datetime import datetime
from typing import Any

from django.test import Client

from integrations.models import EventSource

BASE = "/segment/v1"

_message_numbers = itertools.count(1)


def basic_auth(write_key: str) -> str:
    """Return the Authorization header that Segment's libraries send for write_key."""
    return "Basic " + base64.b64encode(f"{write_key}:".encode()).decode()


def make_source(**fields: Any) -> EventSource:
    defaults: dict[str, Any] = {"name": f"Web app {next(_message_numbers)}"}
    defaults.update(fields)
    return EventSource.objects.create(**defaults)


def track(user_id: str, event: str, **fields: Any) -> dict[str, Any]:
    message = {
        "type": "track",
        "userId": user_id,
        "event": event,
        "messageId": f"msg-{next(_message_numbers)}",
    }
    message.update(fields)
    return message


def identify(user_id: str, traits: dict[str, Any], **fields: Any) -> dict[str, Any]:
    message = {"type": "identify", "userId": user_id, "traits": traits}
    message.update(fields)
    return message


def group(user_id: str, group_id: str | None, **fields: Any) -> dict[str, Any]:
    message = {"type": "group", "userId": user_id, "groupId": group_id}
    message.update(fields)
    return message


def iso(instant: datetime) -> str:
    return instant.isoformat(timespec="milliseconds")


def post(
    path: str,
    body: Any,
    *,
    write_key: str | None = None,
    gzipped: bool = False,
    raw: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> Any:
    """POST body as JSON (or raw bytes) to BASE + path; return the response."""
    data = raw if raw is not None else json.dumps(body).encode()
    all_headers = dict(headers or {})
    if write_key is not None:
        all_headers["Authorization"] = basic_auth(write_key)
    if gzipped:
        data = gzip.compress(data)
        all_headers["Content-Encoding"] = "gzip"
    return Client().post(
        BASE + path, data=data, content_type="application/json", headers=all_headers
    )
