"""A local HTTP server that answers like HubSpot's CRM v3 API, for the sync tests.

It serves the endpoints the sync calls, with the shapes of HubSpot's
public documentation: search (filterGroups, sorts, after paging, the cap
on results of one query), batch read (200, or 207 with errors for ids
not found), batch update (200, 207 with an error per failed id, or 400
when all fail), timeline events (POST /integrators/timeline/v3/events,
also known as /crm/v3/timeline/events), Bearer authentication,
rate-limit headers, and errors put in a queue by a test (429 with
Retry-After, 500). Every property value is stored and sent as a string,
as HubSpot does.
"""

import json
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs

DATE_PROPERTIES = {"hs_lastmodifieddate", "lastmodifieddate", "createdate"}
DEFAULT_PROPERTIES = {
    "tickets": [
        "subject",
        "content",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_priority",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    ],
    "deals": [
        "dealname",
        "amount",
        "closedate",
        "dealstage",
        "pipeline",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    ],
    "companies": [
        "name",
        "domain",
        "createdate",
        "hs_lastmodifieddate",
        "hs_object_id",
    ],
    "contacts": [
        "email",
        "firstname",
        "lastname",
        "createdate",
        "lastmodifieddate",
        "hs_object_id",
    ],
}


def iso(instant: datetime) -> str:
    """Return an instant as HubSpot writes it: ISO 8601 in UTC with milliseconds."""
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + (
        f"{instant.microsecond // 1000:03d}Z"
    )


def millis(text: str) -> int:
    if text.isdigit():
        return int(text)
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return int(parsed.timestamp() * 1000)


@dataclass
class Injected:
    """A response to give instead of the real one, for a path containing path_part."""

    path_part: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: dict[str, Any] = field(default_factory=dict)


class FakeHubSpot:
    """The records, settings and request log of one fake HubSpot account."""

    def __init__(self, token: str) -> None:
        self.token = token
        self.objects: dict[str, dict[str, dict[str, Any]]] = {
            "companies": {},
            "contacts": {},
            "deals": {},
            "tickets": {},
        }
        # (from kind, to kind) -> from id -> [(to id, association type id)]
        self.associations: dict[tuple[str, str], dict[str, list[tuple[str, int]]]] = {}
        # HubSpot's search returns at most 10,000 results of one query.
        self.search_cap = 10_000
        # Enumeration properties: the option values HubSpot accepts.
        self.options: dict[str, set[str]] = {}
        # Owners as GET /crm/v3/owners/ returns them, archived ones included.
        self.owners: list[dict[str, Any]] = []
        self.injected: list[Injected] = []
        # Timeline event templates by id, each with its token names, and the
        # events created, by event id.
        self.timeline_templates: dict[str, set[str]] = {}
        self.timeline_events: dict[str, dict[str, Any]] = {}
        # With hold_from set, search requests from that number on (counted
        # from 1) wait until release is set, as a stalled request would.
        self.hold_from: int | None = None
        self.release = threading.Event()
        self.requests: list[tuple[str, str, Any]] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        port = self.server.server_address[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def put(
        self, kind: str, object_id: str, modified: datetime, **properties: Any
    ) -> None:
        """Store a company or contact; values become strings, as in HubSpot."""
        modified_name = (
            "lastmodifieddate" if kind == "contacts" else "hs_lastmodifieddate"
        )
        created = properties.pop("createdate", None) or iso(modified)
        values = {
            name: None if value is None else str(value)
            for name, value in properties.items()
        }
        values.update(
            {
                "hs_object_id": object_id,
                "createdate": created,
                modified_name: iso(modified),
            }
        )
        with self.lock:
            self.objects[kind][object_id] = {
                "id": object_id,
                "properties": values,
                "createdAt": created,
                "updatedAt": iso(modified),
                "archived": False,
            }

    def associate(
        self, from_kind: str, from_id: str, to_kind: str, to_id: str, type_id: int
    ) -> None:
        """Associate two records; HubSpot's type id 5 is a deal's primary company."""
        targets = self.associations.setdefault((from_kind, to_kind), {})
        targets.setdefault(from_id, []).append((to_id, type_id))

    def remove(self, kind: str, object_id: str) -> None:
        with self.lock:
            self.objects[kind].pop(object_id)

    def searches(self, kind: str) -> list[dict[str, Any]]:
        """Return the bodies of the search requests made for kind, in order."""
        return [
            body
            for method, path, body in self.requests
            if method == "POST" and path == f"/crm/v3/objects/{kind}/search"
        ]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length) or b"{}")
                fake.requests.append(("POST", self.path, body))
                self._answer(
                    *fake.route(self.path, body, self.headers.get("Authorization"))
                )

            def do_GET(self) -> None:
                fake.requests.append(("GET", self.path, None))
                self._answer(
                    *fake.route_get(self.path, self.headers.get("Authorization"))
                )

            def _answer(
                self, status: int, payload: Any, headers: dict[str, str]
            ) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json;charset=utf-8")
                self.send_header("Content-Length", str(len(data)))
                for name, value in {**fake.rate_headers(), **headers}.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

        return Handler

    def put_owner(
        self,
        owner_id: str,
        email: str,
        first: str = "",
        last: str = "",
        *,
        archived: bool = False,
    ) -> None:
        """Store an owner with the fields HubSpot's owners API returns."""
        self.owners.append(
            {
                "id": owner_id,
                "email": email,
                "type": "PERSON",
                "firstName": first,
                "lastName": last,
                "userId": int(owner_id) + 1000,
                "userIdIncludingInactive": int(owner_id) + 1000,
                "createdAt": "2025-01-02T03:04:05.678Z",
                "updatedAt": "2025-01-02T03:04:05.678Z",
                "archived": archived,
            }
        )

    def route_get(
        self, path: str, authorization: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        if authorization != f"Bearer {self.token}":
            return 401, {"status": "error", "category": "INVALID_AUTHENTICATION"}, {}
        for index, injected in enumerate(self.injected):
            if injected.path_part in path:
                del self.injected[index]
                return injected.status, injected.body, injected.headers
        route, _, query = path.partition("?")
        if route.rstrip("/") != "/crm/v3/owners":
            return 404, {"status": "error", "message": f"no route {path}"}, {}
        params = parse_qs(query)
        # The official client sends the flag as Python writes it: True or False.
        archived = params.get("archived", ["false"])[0].lower() == "true"
        offset = int(params.get("after", ["0"])[0])
        limit = int(params.get("limit", ["100"])[0])
        matches = [owner for owner in self.owners if owner["archived"] == archived]
        payload: dict[str, Any] = {"results": matches[offset : offset + limit]}
        if offset + limit < len(matches):
            after = str(offset + limit)
            payload["paging"] = {"next": {"after": after, "link": f"?after={after}"}}
        return 200, payload, {}

    def rate_headers(self) -> dict[str, str]:
        return {
            "X-HubSpot-RateLimit-Daily": "250000",
            "X-HubSpot-RateLimit-Daily-Remaining": str(250000 - len(self.requests)),
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": "100",
            "X-HubSpot-RateLimit-Remaining": "99",
        }

    def route(
        self, path: str, body: dict[str, Any], authorization: str | None
    ) -> tuple[int, Any, dict[str, str]]:
        if authorization != f"Bearer {self.token}":
            return (
                401,
                {
                    "status": "error",
                    "message": "Authentication credentials not found.",
                    "category": "INVALID_AUTHENTICATION",
                },
                {},
            )
        for index, injected in enumerate(self.injected):
            if injected.path_part in path:
                del self.injected[index]
                return injected.status, injected.body, injected.headers
        parts = path.split("?")[0].strip("/").split("/")
        # The official client calls the first path; HubSpot's older docs
        # name the second.
        if parts in (
            ["integrators", "timeline", "v3", "events"],
            ["crm", "v3", "timeline", "events"],
        ):
            return self.create_timeline_event(body)
        # crm / v4 / associations / {from} / {to} / batch / read
        if parts[:3] == ["crm", "v4", "associations"] and parts[5:] == [
            "batch",
            "read",
        ]:
            return self.read_associations(parts[3], parts[4], body)
        # crm / v3 / objects / {kind} / search | batch / read
        kind = parts[3]
        if parts[4:] == ["search"]:
            return self.search(kind, body)
        if parts[4:] == ["batch", "read"]:
            return self.batch_read(kind, body)
        if parts[4:] == ["batch", "update"]:
            return self.batch_update(kind, body)
        return 404, {"status": "error", "message": f"no route {path}"}, {}

    def search(
        self, kind: str, body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        if self.hold_from is not None and len(self.searches(kind)) >= self.hold_from:
            self.release.wait(timeout=120)
        offset = int(body.get("after") or 0)
        limit = int(body.get("limit") or 10)
        if offset >= self.search_cap:
            return (
                400,
                {
                    "status": "error",
                    "message": (
                        f"after {offset} is past the {self.search_cap} results "
                        "a search returns"
                    ),
                    "category": "VALIDATION_ERROR",
                },
                {},
            )
        with self.lock:
            matches = [
                obj
                for obj in self.objects[kind].values()
                if self._matches(obj, body.get("filterGroups") or [])
            ]
        for sort in reversed(body.get("sorts") or []):
            name = sort["propertyName"] if isinstance(sort, dict) else sort
            descending = (
                isinstance(sort, dict) and sort.get("direction") == "DESCENDING"
            )
            matches.sort(key=partial(self._sort_key, name=name), reverse=descending)
        total = len(matches)
        end = min(offset + limit, total, self.search_cap)
        page = [
            self._shape(obj, body.get("properties"), kind)
            for obj in matches[offset:end]
        ]
        payload: dict[str, Any] = {"total": total, "results": page}
        if end < total:
            payload["paging"] = {"next": {"after": str(end), "link": f"?after={end}"}}
        return 200, payload, {}

    def batch_read(
        self, kind: str, body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        now = iso(datetime.now(UTC))
        results, missing = [], []
        for item in body.get("inputs", []):
            obj = self.objects[kind].get(str(item["id"]))
            if obj is None:
                missing.append(str(item["id"]))
            else:
                results.append(self._shape(obj, body.get("properties"), kind))
        payload: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now,
        }
        if not missing:
            return 200, payload, {}
        payload["numErrors"] = 1
        payload["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": (
                    "Could not get some objects, they may be deleted or not exist."
                ),
                "context": {"ids": missing},
            }
        ]
        return 207, payload, {}

    def read_associations(
        self, from_kind: str, to_kind: str, body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        """Return HubSpot's v4 batch read result: 207 lists the ids without any."""
        now = iso(datetime.now(UTC))
        known = self.associations.get((from_kind, to_kind), {})
        results, missing = [], []
        for item in body.get("inputs", []):
            from_id = str(item["id"])
            if not known.get(from_id):
                missing.append(from_id)
                continue
            results.append(
                {
                    "from": {"id": from_id},
                    "to": [
                        {
                            "toObjectId": int(to_id),
                            "associationTypes": [
                                {
                                    "category": "HUBSPOT_DEFINED",
                                    "typeId": type_id,
                                    "label": "Primary" if type_id == 5 else None,
                                }
                            ],
                        }
                        for to_id, type_id in known[from_id]
                    ],
                }
            )
        payload: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now,
        }
        if not missing:
            return 200, payload, {}
        payload["numErrors"] = len(missing)
        payload["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": f"No {to_kind} are associated with {from_kind} {from_id}",
                "context": {"fromObjectId": [from_id]},
            }
            for from_id in missing
        ]
        return 207, payload, {}

    def batch_update(
        self, kind: str, body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        """Apply each input whose values are valid; 207 lists the others' errors."""
        now = iso(datetime.now(UTC))
        results, errors = [], []
        inputs = body.get("inputs", [])
        for item in inputs:
            object_id = str(item["id"])
            obj = self.objects[kind].get(object_id)
            if obj is None:
                errors.append(
                    self._error("OBJECT_NOT_FOUND", "Object not found.", object_id)
                )
                continue
            invalid = [
                f"{value} was not one of the allowed options for {name}"
                for name, value in item["properties"].items()
                if name in self.options and value not in self.options[name]
            ]
            if invalid:
                message = "Property values were not valid: " + "; ".join(invalid)
                errors.append(self._error("VALIDATION_ERROR", message, object_id))
                continue
            with self.lock:
                obj["properties"].update(item["properties"])
            results.append(self._shape(obj, list(item["properties"]), kind))
        if errors and not results:
            return 400, {"status": "error", **errors[0]}, {}
        payload: dict[str, Any] = {
            "status": "COMPLETE",
            "results": results,
            "startedAt": now,
            "completedAt": now,
        }
        if not errors:
            return 200, payload, {}
        return 207, {**payload, "numErrors": len(errors), "errors": errors}, {}

    def create_timeline_event(
        self, body: dict[str, Any]
    ) -> tuple[int, Any, dict[str, str]]:
        """Create one event of a template on a contact, as HubSpot's v3 API does.

        An unknown template, an unknown contact or a token the template does
        not define gets 400; an event id used before for the template 409.
        """
        template = self.timeline_templates.get(str(body.get("eventTemplateId")))
        if template is None:
            return 400, self._failure("VALIDATION_ERROR", "Unknown event template"), {}
        contact = self.objects["contacts"].get(str(body.get("objectId")))
        if contact is None:
            return 400, self._failure("OBJECT_NOT_FOUND", "Unknown objectId"), {}
        tokens = body.get("tokens") or {}
        unknown = sorted(set(tokens) - template)
        if unknown:
            message = f"Tokens {unknown} are not defined on the template"
            return 400, self._failure("VALIDATION_ERROR", message), {}
        event_id = str(body.get("id") or f"event-{len(self.timeline_events) + 1}")
        if event_id in self.timeline_events:
            return 409, self._failure("CONFLICT", f"Event {event_id} exists"), {}
        event = {
            "id": event_id,
            "eventTemplateId": str(body["eventTemplateId"]),
            "objectId": str(body["objectId"]),
            "objectType": "contacts",
            "tokens": {name: str(value) for name, value in tokens.items()},
            "timestamp": body.get("timestamp") or iso(datetime.now(UTC)),
            "createdAt": iso(datetime.now(UTC)),
        }
        self.timeline_events[event_id] = event
        return 200, event, {}

    def _failure(self, category: str, message: str) -> dict[str, Any]:
        return {"status": "error", "category": category, "message": message}

    def _error(self, category: str, message: str, object_id: str) -> dict[str, Any]:
        return {
            "status": "error",
            "category": category,
            "message": message,
            "context": {"ids": [object_id]},
        }

    def _matches(self, obj: dict[str, Any], groups: list[dict[str, Any]]) -> bool:
        if not groups:
            return True
        return any(
            all(self._test(obj, f) for f in group.get("filters", []))
            for group in groups
        )

    def _test(self, obj: dict[str, Any], filter_: dict[str, Any]) -> bool:
        name = filter_["propertyName"]
        value = obj["properties"].get(name)
        if value is None:
            return False
        if name in DATE_PROPERTIES:
            left, right = millis(value), millis(filter_["value"])
        else:
            left, right = value, filter_["value"]
        operator = filter_["operator"]
        if operator == "GTE":
            return left >= right
        if operator == "LTE":
            return left <= right
        if operator == "EQ":
            return left == right
        raise AssertionError(f"the fake does not know operator {operator}")

    def _sort_key(self, obj: dict[str, Any], *, name: str) -> Any:
        value = obj["properties"].get(name) or ""
        return (
            (millis(value), int(obj["id"]))
            if name in DATE_PROPERTIES
            else (value, int(obj["id"]))
        )

    def _shape(
        self, obj: dict[str, Any], names: list[str] | None, kind: str
    ) -> dict[str, Any]:
        wanted = names or DEFAULT_PROPERTIES[kind]
        properties = {name: obj["properties"].get(name) for name in wanted}
        properties["hs_object_id"] = obj["id"]
        return {**obj, "properties": properties}
