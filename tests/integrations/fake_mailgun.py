"""A local HTTP server that responds like Mailgun's messages API, for email tests.

It takes POST /v3/DOMAIN/messages with HTTP Basic auth (user "api", the API
key as password) and a form body, as Mailgun's documentation
describes, and returns 200 with {"id": "<...>", "message": "Queued. Thank
you."}. A test can queue error statuses to return instead.
"""

import itertools
import json
import threading
from base64 import b64encode
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs


class FakeMailgun:
    """The messages received, and error statuses to return, of one fake account."""

    def __init__(self, api_key: str) -> None:
        self.api_key = api_key
        self.messages: list[dict[str, Any]] = []
        self.errors: list[int] = []
        self.ids = itertools.count(1)
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v3"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def respond(self, path: str, headers: Any, body: bytes) -> tuple[int, Any]:
        expected = "Basic " + b64encode(f"api:{self.api_key}".encode()).decode()
        if headers.get("Authorization") != expected:
            return 401, {"message": "Invalid private key"}
        parts = path.strip("/").split("/")
        if len(parts) != 3 or parts[0] != "v3" or parts[2] != "messages":
            return 404, {"message": f"no route {path}"}
        if self.errors:
            return self.errors.pop(0), {"message": "Internal error"}
        fields = _form_fields(headers.get("Content-Type", ""), body)
        message_id = f"<20261205.{next(self.ids)}@{parts[1]}>"
        self.messages.append({"domain": parts[1], "id": message_id, **fields})
        return 200, {"id": message_id, "message": "Queued. Thank you."}

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                status, payload = fake.respond(
                    self.path, self.headers, self.rfile.read(length)
                )
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        return Handler


def _form_fields(content_type: str, body: bytes) -> dict[str, list[str]]:
    """Return the text fields of a form body, each as a list of values.

    Mailgun takes application/x-www-form-urlencoded, or multipart/form-data
    when a message has attachments.
    """
    if content_type.startswith("application/x-www-form-urlencoded"):
        return parse_qs(body.decode(), keep_blank_values=True)
    head = f"Content-Type: {content_type}\r\n\r\n".encode()
    parsed = BytesParser(policy=HTTP).parsebytes(head + body)
    fields: dict[str, list[str]] = {}
    for part in parsed.iter_parts():
        name = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        if isinstance(name, str) and isinstance(payload, bytes):
            fields.setdefault(name, []).append(payload.decode())
    return fields
