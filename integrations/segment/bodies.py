"""Reading a Segment request: its write key, its body (maybe gzip) and its JSON.

Each check raises RequestError with the HTTP status, a code and a message
that names the problem, before anything is written.
"""

import base64
import binascii
import hmac
import json
import zlib
from typing import Any

from django.http import HttpRequest

from integrations.models import EventSource

# gzip framing: zlib with a gzip header and trailer.
GZIP_WINDOW_BITS = 16 + zlib.MAX_WBITS
READ_CHUNK_BYTES = 64 * 1024


class RequestError(Exception):
    """A request rejected as a whole, with its HTTP status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def write_key_from_header(request: HttpRequest) -> str | None:
    """Return the write key of an HTTP Basic Authorization header, or None without one.

    Segment's libraries send the write key as the user name with an empty
    password.
    """
    header = request.headers.get("Authorization")
    if header is None:
        return None
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded.strip():
        raise RequestError(
            401,
            "invalid_authorization",
            "Authorization header is not HTTP Basic; send the write key as the "
            "user name with an empty password",
        )
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise RequestError(
            401,
            "invalid_authorization",
            "Authorization header's credentials are not valid base64 of "
            "'WRITE_KEY:'; send the write key as the user name",
        ) from None
    return decoded.partition(":")[0]


def authenticate(write_key: str | None) -> EventSource:
    """Return the active event source of write_key; raise RequestError otherwise."""
    if not write_key:
        raise RequestError(
            401,
            "missing_write_key",
            "request has no write key; send it as the HTTP Basic user name or as "
            "writeKey in the body",
        )
    source = find_source(write_key)
    if source is None:
        raise RequestError(
            401,
            "unknown_write_key",
            "write key matches no event source; copy it from the event source's "
            "page in the admin",
        )
    if not source.is_active:
        raise RequestError(
            403,
            "inactive_source",
            f"event source {source.name!r} is inactive; activate it in the admin",
        )
    return source


def find_source(write_key: str) -> EventSource | None:
    """Return the event source whose write key is write_key, active or not.

    Every source's key is compared in constant time, and the loop does not
    stop at a match, so the time taken reveals nothing about the keys. The
    time of an indexed lookup by the key could depend on how much of a
    stored key the guess matches.
    """
    # NOTE: this reads every event source per request, which suits the
    # few sources an installation has; a hashed-key column would scale
    # further.
    found = None
    # surrogatepass, so a key with an unpaired surrogate from a JSON body
    # matches no source instead of failing to encode.
    key_bytes = write_key.encode("utf-8", "surrogatepass")
    for source in EventSource.objects.only("pk", "name", "write_key", "is_active"):
        if hmac.compare_digest(source.write_key.encode(), key_bytes):
            found = source
    return found


def read_body(
    request: HttpRequest, limit: int, advice: str = "split it into smaller batches"
) -> bytes:
    """Return the uncompressed body of at most limit bytes, or raise RequestError.

    advice ends the 413 message with what the sender should change.
    """
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding not in ("identity", "gzip"):
        raise RequestError(
            415,
            "unsupported_encoding",
            f"Content-Encoding {encoding!r} is not supported; send gzip or no encoding",
        )
    # gzip adds a header, a trailer and 5 bytes per 64 KB of data it cannot
    # compress, so a body within the limit when unpacked is read whole.
    raw_limit = limit if encoding == "identity" else limit + limit // 100 + 1024
    raw = request.read(raw_limit + 1)
    if len(raw) > raw_limit:
        raise _too_large(limit, advice)
    if encoding == "identity":
        return raw
    return _gunzip(raw, limit, advice)


def decode_json(body: bytes) -> Any:
    """Return the JSON value of body; raise RequestError for anything but JSON."""
    if not body.strip():
        raise RequestError(400, "invalid_json", "request body is empty; send JSON")
    try:
        return json.loads(body, parse_constant=_reject_constant)
    except RecursionError:
        raise RequestError(
            400, "invalid_json", "request body is nested too deeply to be read"
        ) from None
    except UnicodeDecodeError:
        raise RequestError(
            400, "invalid_json", "request body is not UTF-8; send UTF-8 JSON"
        ) from None
    except ValueError as error:
        raise RequestError(
            400, "invalid_json", f"request body is not valid JSON: {error}"
        ) from None


def _gunzip(raw: bytes, limit: int, advice: str) -> bytes:
    # Unpacked in steps with a bound, so a small body that unpacks to
    # gigabytes stops at the limit instead of filling memory.
    inflater = zlib.decompressobj(GZIP_WINDOW_BITS)
    try:
        body = inflater.decompress(raw, limit + 1)
    except zlib.error as error:
        raise RequestError(
            400, "invalid_gzip", f"request body is not valid gzip: {error}"
        ) from None
    if len(body) > limit:
        raise _too_large(limit, advice)
    if not inflater.eof:
        raise RequestError(
            400, "invalid_gzip", "request body is cut off gzip; send the whole body"
        )
    return body


def _too_large(limit: int, advice: str) -> RequestError:
    return RequestError(
        413,
        "payload_too_large",
        f"request body is more than {limit} bytes uncompressed; {advice}",
    )


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")
