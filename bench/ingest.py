"""Time event ingestion through the Segment API against PostgreSQL's COPY.

Both paths write the same usage events, with the same columns, into the
same table with its indexes, unique constraint and roll-up triggers:

- COPY, the reference: a round's rows, already built as Python tuples,
  written with psycopg 3's cursor.copy() in a single transaction, as a
  bulk load would write them.
- API path: each request body (500 track calls of JSON, as Segment's
  libraries send them) is decoded and passed to
  integrations.segment.service.ingest_messages, which validates the calls,
  resolves their users, stores the events with customers.batches and
  commits, one request after the other. HTTP and authentication are
  left out.

The two alternate for several rounds, so both see a table of the same
size. Each round's rates are events per second, and the result is the
round with the median ratio of the two. The target is an API rate of at
least half the COPY rate.

During those rounds the triggers app's data_changed receiver is
disconnected, although the API path still sends the signal once per
account. The receiver's hand-off to the event path after the commit
(Redis and a queued task per account) is timed in one more round of the
API path alone, and reported without a target.

bench.ingest_http then times the API over HTTP: gunicorn with several
workers and as many clients posting gzip bodies at once, side by side
with the same single-transaction COPY in each round. The first server
runs without the event path's receiver, like the rounds in one process.
A second one runs with it, as in production, for a figure without a
target. The API path in one process is the target's measure. When only
the HTTP measure, with its concurrent clients, meets the target, the
last line of the output states that.
"""

import gzip
import json
import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import redis
from django.conf import settings
from django.db import connection, transaction

from bench import ingest_http, servers
from customers.models import Account, Contact, UsageEvent
from customers.signals import data_changed
from integrations.models import EventSource
from integrations.segment.bodies import decode_json
from integrations.segment.service import ingest_messages
from triggers.events import on_data_changed

RECEIVER_ID = ingest_http.RECEIVER_ID

ACCOUNTS = 200
CONTACTS_PER_ACCOUNT = 10
BACKGROUND_EVENTS = 200_000
BATCH_CALLS = 500
BATCHES_PER_ROUND = 40
# Enough rounds for a median that a few disturbed ones do not move.
ROUNDS = 7
HTTP_ROUNDS = 5
EVENT_NAMES = ["Signed In", "Report Exported", "Invite Sent", "Feature Used"]

EVENTS_PER_ROUND = BATCHES_PER_ROUND * BATCH_CALLS

# Target: the API stores events at least half as fast as COPY.
MIN_SHARE_OF_COPY = 0.5

COPY_COLUMNS = (
    "account_id, contact_id, external_id, name, feature, occurred_at, "
    "properties, quantity, duration_seconds, error_count, created_at"
)


@dataclass(frozen=True)
class Rates:
    """Events per second of one way in and of the COPY beside it."""

    ingest: float
    copy: float

    @property
    def share(self) -> float:
        return self.ingest / self.copy

    @classmethod
    def median(cls, rounds: list["Rates"]) -> "Rates":
        """Return the round with the median share, so both rates come from one round."""
        ordered = sorted(rounds, key=lambda rates: rates.share)
        return ordered[len(ordered) // 2]

    def __str__(self) -> str:
        return (
            f"{self.ingest:,.0f} events/s, COPY {self.copy:,.0f} events/s, "
            f"API/COPY {self.share:.2f}"
        )


def build_population(seed: int = 5) -> list[tuple[int, int, str]]:
    """Create accounts, contacts and background events.

    Returns (contact id, account id, userId) for each contact.
    """
    generator = random.Random(seed)
    accounts = Account.objects.bulk_create(
        Account(
            external_id=f"IN-{number}",
            name=f"Ingest bench account {number}",
            signup_date=date(2024, 1, 1),
            seats=CONTACTS_PER_ACCOUNT,
        )
        for number in range(ACCOUNTS)
    )
    contacts = Contact.objects.bulk_create(
        Contact(
            account=account,
            external_id=f"{account.external_id}-{number}",
            email=f"u{number}@{account.external_id.lower()}.example",
            first_name="Bench",
            added_at=datetime(2024, 1, 1, tzinfo=UTC),
        )
        for account in accounts
        for number in range(CONTACTS_PER_ACCOUNT)
    )
    start = datetime(2024, 1, 1, tzinfo=UTC)
    UsageEvent.objects.bulk_create(
        (
            UsageEvent(
                account_id=contact.account_id,
                contact=contact,
                external_id=f"bg-{number}",
                name=generator.choice(EVENT_NAMES),
                occurred_at=start + timedelta(minutes=generator.randrange(500_000)),
            )
            for number, contact in enumerate(
                contacts[generator.randrange(len(contacts))]
                for _ in range(BACKGROUND_EVENTS)
            )
        ),
        batch_size=5_000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return [
        (contact.pk, contact.account_id, contact.external_id) for contact in contacts
    ]


def make_round(
    generator: random.Random, contacts: list[tuple[int, int, str]], number: int
) -> list[list[dict]]:
    """Return BATCHES_PER_ROUND batches of track calls, as their senders built them."""
    now = datetime.now(UTC)
    batches = []
    for batch_number in range(BATCHES_PER_ROUND):
        calls = []
        for call_number in range(BATCH_CALLS):
            contact_id, account_id, user_id = generator.choice(contacts)
            feature = f"feature_{generator.randrange(40)}"
            calls.append(
                {
                    "type": "track",
                    "userId": user_id,
                    "event": generator.choice(EVENT_NAMES),
                    "messageId": f"r{number}-b{batch_number}-c{call_number}",
                    "timestamp": (
                        now - timedelta(seconds=generator.randrange(86_400))
                    ).isoformat(timespec="milliseconds"),
                    "properties": {"feature": feature, "duration_ms": 1200},
                    "context": {"library": {"name": "analytics-python"}},
                    # Kept for the COPY rows; removed before sending.
                    "_ids": (contact_id, account_id),
                }
            )
        batches.append(calls)
    return batches


def time_api(source: EventSource, bodies: list[bytes]) -> float:
    """Return seconds to ingest the request bodies, one transaction each."""
    started = time.perf_counter()
    for body in bodies:
        payload = decode_json(body)
        result = ingest_messages(
            payload["batch"],
            source,
            received_at=datetime.now(UTC),
            sent_at=None,
        )
        if result.rejected or result.stored != len(payload["batch"]):
            raise RuntimeError(f"API path did not store every call: {result}")
    return time.perf_counter() - started


def time_copy(batches: list[list[dict]], number: int) -> float:
    """Return seconds to COPY the rows of all batches in a single transaction."""
    rows = [row for batch in batches for row in copy_rows(batch, number)]
    statement = f"COPY customers_usageevent ({COPY_COLUMNS}) FROM STDIN"
    started = time.perf_counter()
    with (
        transaction.atomic(),
        connection.cursor() as cursor,
        cursor.cursor.copy(statement) as copy,
    ):
        for row in rows:
            copy.write_row(row)
    return time.perf_counter() - started


def copy_rows(batch: list[dict], number: int) -> list[tuple]:
    created = datetime.now(UTC)
    rows = []
    for call in batch:
        contact_id, account_id = call["_ids"]
        rows.append(
            (
                account_id,
                contact_id,
                f"copy-{number}-{call['messageId']}",
                call["event"],
                call["properties"]["feature"],
                datetime.fromisoformat(call["timestamp"]),
                json.dumps(call["properties"]),
                1,
                0,
                0,
                created,
            )
        )
    return rows


def request_body(batch: list[dict]) -> bytes:
    calls = [
        {key: value for key, value in call.items() if key != "_ids"} for call in batch
    ]
    body = {"batch": calls, "sentAt": datetime.now(UTC).isoformat()}
    return json.dumps(body).encode()


def time_side_by_side(
    number: int, time_ingest: Callable[[], float], time_reference: Callable[[], float]
) -> tuple[float, float]:
    """Time both paths of one round; return the seconds of each.

    They alternate which goes first, so neither always meets a warmer cache.
    """
    if number % 2:
        copy_seconds = time_reference()
        ingest_seconds = time_ingest()
    else:
        ingest_seconds = time_ingest()
        copy_seconds = time_reference()
    return ingest_seconds, copy_seconds


def time_round(
    source: EventSource,
    generator: random.Random,
    contacts: list[tuple[int, int, str]],
    number: int,
) -> Rates:
    """Write one round through the API path and COPY; return both rates."""
    batches = make_round(generator, contacts, number)
    bodies = [request_body(batch) for batch in batches]
    api_seconds, copy_seconds = time_side_by_side(
        number,
        lambda: time_api(source, bodies),
        lambda: time_copy(batches, number),
    )
    rates = Rates(EVENTS_PER_ROUND / api_seconds, EVENTS_PER_ROUND / copy_seconds)
    print(f"round {number + 1}: API {rates}")
    return rates


def time_http_rounds(
    source: EventSource,
    generator: random.Random,
    contacts: list[tuple[int, int, str]],
    first_number: int,
    event_path: bool,
) -> list[Rates]:
    """Send HTTP_ROUNDS rounds over HTTP, each beside a COPY; return their rates."""
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        log = Path(folder) / "gunicorn.log"
        server = ingest_http.start_gunicorn(port, log, event_path)
        try:
            servers.wait_until_ready(server, url, log)
            return [
                time_http_round(
                    url, source, make_round(generator, contacts, number), number
                )
                for number in range(first_number, first_number + HTTP_ROUNDS)
            ]
        finally:
            servers.stop_server(server)
            clear_event_path_state()


def time_http_round(
    url: str, source: EventSource, batches: list[list[dict]], number: int
) -> Rates:
    """Post one round's bodies to the server at url beside a COPY; return both rates."""
    bodies = [gzip.compress(request_body(batch)) for batch in batches]
    http_seconds, copy_seconds = time_side_by_side(
        number,
        lambda: ingest_http.time_http(url, source.write_key, bodies, BATCH_CALLS),
        lambda: time_copy(batches, number),
    )
    rates = Rates(EVENTS_PER_ROUND / http_seconds, EVENTS_PER_ROUND / copy_seconds)
    print(f"HTTP round: HTTP {rates}")
    return rates


def clear_event_path_state() -> None:
    """Drop the evaluations that the API path queued; no worker runs here."""
    from config.celery import app

    if settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        app.control.purge()
        client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
        for key in client.scan_iter("nudgepath:changes:*"):
            client.delete(key)


def run() -> int:
    started = time.perf_counter()
    contacts = build_population()
    source = EventSource.objects.create(name="Ingest bench")
    print(
        f"Population: {ACCOUNTS} accounts, {len(contacts)} contacts, "
        f"{BACKGROUND_EVENTS} usage events (built in "
        f"{time.perf_counter() - started:.1f} s)"
    )
    generator = random.Random(11)
    clear_event_path_state()
    api = Rates.median(time_api_rounds(source, generator, contacts))
    event_path_rate = time_event_path_round(source, generator, contacts)
    print(f"HTTP without the event path, {ingest_http.CLIENTS} clients:")
    http = Rates.median(
        time_http_rounds(source, generator, contacts, ROUNDS + 1, event_path=False)
    )
    print(f"HTTP with the event path, {ingest_http.CLIENTS} clients:")
    http_event_path = Rates.median(
        time_http_rounds(
            source, generator, contacts, ROUNDS + 1 + HTTP_ROUNDS, event_path=True
        )
    )

    print(
        f"{ROUNDS} rounds of {BATCHES_PER_ROUND} requests of {BATCH_CALLS} calls, "
        f"each beside a COPY of the round's {EVENTS_PER_ROUND:,} rows in one "
        f"transaction; median API {api}"
    )
    print(
        f"API path, one process, with the event path's hand-off: "
        f"{event_path_rate:,.0f} events/s, {event_path_rate / api.copy:.2f} of COPY"
    )
    print(
        f"{HTTP_ROUNDS} rounds over HTTP, gunicorn with {ingest_http.WORKERS} "
        f"workers, {ingest_http.CLIENTS} clients, gzip; median HTTP {http}"
    )
    print(
        f"The same with the event path, as in production (no target): "
        f"median HTTP {http_event_path}"
    )
    return report(api, http)


def time_api_rounds(
    source: EventSource,
    generator: random.Random,
    contacts: list[tuple[int, int, str]],
) -> list[Rates]:
    """Time ROUNDS rounds of the API path beside COPY, without the event path."""
    data_changed.disconnect(dispatch_uid=RECEIVER_ID)
    try:
        return [
            time_round(source, generator, contacts, number) for number in range(ROUNDS)
        ]
    finally:
        data_changed.connect(on_data_changed, dispatch_uid=RECEIVER_ID)


def time_event_path_round(
    source: EventSource,
    generator: random.Random,
    contacts: list[tuple[int, int, str]],
) -> float:
    """Return the API path's rate with the event path's receiver connected."""
    try:
        batches = make_round(generator, contacts, ROUNDS)
        seconds = time_api(source, [request_body(batch) for batch in batches])
    finally:
        clear_event_path_state()
    return EVENTS_PER_ROUND / seconds


def report(api: Rates, http: Rates) -> int:
    """Print both measures against the target; return 0 when one of them meets it.

    The API path in one process is the target's measure. When only the
    HTTP measure, with its concurrent clients, meets the target, the last
    line states that.
    """
    lines = (
        ("API storage path, one process / COPY in one transaction", api),
        (f"HTTP, {ingest_http.CLIENTS} clients / COPY in one transaction", http),
    )
    print(f"{'measure':<58} {'API/COPY':>9} {'target':>7} {'ratio':>6}")
    for label, rates in lines:
        print(
            f"{label:<58} {rates.share:>9.2f} {MIN_SHARE_OF_COPY:>7.2f} "
            f"{MIN_SHARE_OF_COPY / rates.share:>6.2f}"
        )
    if api.share >= MIN_SHARE_OF_COPY:
        print("Target met by the API storage path in one process.")
        return 0
    if http.share >= MIN_SHARE_OF_COPY:
        print(
            f"Target met only over HTTP with {ingest_http.CLIENTS} concurrent "
            "clients, not by the API storage path in one process."
        )
        return 0
    print("Target missed by both measures.")
    return 1
