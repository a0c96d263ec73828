"""Time event ingestion through the Segment API's path against PostgreSQL's COPY.

Both paths write the same usage events, with the same columns, into the
same table with its indexes, unique constraint and roll-up triggers:

- API path: each request body (500 track calls of JSON, as Segment's
  libraries send them) is decoded and passed to
  integrations.segment.service.ingest_messages, which validates the calls,
  resolves their users and stores the events with
  customers.batches.store_usage_events, and commits. HTTP and
  authentication are left out.
- COPY: the same rows, already built as Python tuples, are written with
  psycopg 3's cursor.copy() in one transaction per 500 rows.

The two alternate for several rounds, so both see a table of the same
size. Each round's rate is events per second; the result is the median
round. The target is an API rate of at least half the COPY rate.

During those rounds the triggers app's data_changed receiver is
disconnected, although store_usage_events still sends the signal once
per account. The receiver's hand-off to the event path after the commit
(Redis and a queued task per account) is timed in one more round of the
API path alone, and reported without a target.

bench.ingest_http then sends one more round over HTTP, with several
clients at once, to Django's development server, for a figure that
includes HTTP, gzip and the event path; it has no target either.
"""

import gzip
import json
import random
import statistics
import tempfile
import time
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

RECEIVER_ID = "triggers.on_data_changed"

ACCOUNTS = 200
CONTACTS_PER_ACCOUNT = 10
BACKGROUND_EVENTS = 200_000
BATCH_CALLS = 500
BATCHES_PER_ROUND = 40
ROUNDS = 5
HTTP_CLIENTS = 4
EVENT_NAMES = ["Signed In", "Report Exported", "Invite Sent", "Feature Used"]

# Target: the API path stores events at least half as fast as COPY.
MIN_SHARE_OF_COPY = 0.5

COPY_COLUMNS = (
    "account_id, contact_id, external_id, name, feature, occurred_at, "
    "properties, quantity, duration_seconds, error_count, created_at"
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


def time_copy(batches: list[list[tuple]]) -> float:
    """Return seconds to COPY the rows, one transaction per batch."""
    started = time.perf_counter()
    for rows in batches:
        with transaction.atomic(), connection.cursor() as cursor:
            raw = cursor.cursor
            statement = f"COPY customers_usageevent ({COPY_COLUMNS}) FROM STDIN"
            with raw.copy(statement) as copy:
                for row in rows:
                    copy.write_row(row)
    return time.perf_counter() - started


def time_bulk_copy(
    generator: random.Random, contacts: list[tuple[int, int, str]]
) -> float:
    """Return seconds to COPY a whole round's rows in a single transaction.

    The API commits every request, so the rounds compare it with COPY
    committing as often. This figure shows what COPY does without that
    constraint, which no request-by-request API can match.
    """
    batches = make_round(generator, contacts, ROUNDS + 2)
    rows = [row for batch in batches for row in copy_rows(batch, ROUNDS + 2)]
    return time_copy([rows])


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


def time_round(
    source: EventSource,
    generator: random.Random,
    contacts: list[tuple[int, int, str]],
    number: int,
) -> tuple[float, float]:
    """Write one round through each path; return both rates in events per second."""
    batches = make_round(generator, contacts, number)
    bodies = [request_body(batch) for batch in batches]
    rows = [copy_rows(batch, number) for batch in batches]
    events = BATCHES_PER_ROUND * BATCH_CALLS
    # Alternate which goes first, so neither always meets a warmer cache.
    if number % 2:
        copy_seconds = time_copy(rows)
        api_seconds = time_api(source, bodies)
    else:
        api_seconds = time_api(source, bodies)
        copy_seconds = time_copy(rows)
    print(
        f"round {number + 1}: API {events / api_seconds:,.0f} events/s, "
        f"COPY {events / copy_seconds:,.0f} events/s"
    )
    return events / api_seconds, events / copy_seconds


def time_http_round(
    source: EventSource,
    generator: random.Random,
    contacts: list[tuple[int, int, str]],
) -> float:
    """Return seconds to send one round over HTTP with HTTP_CLIENTS clients."""
    batches = make_round(generator, contacts, ROUNDS + 1)
    bodies = [gzip.compress(request_body(batch)) for batch in batches]
    port = servers.free_port()
    url = f"http://127.0.0.1:{port}"
    with tempfile.TemporaryDirectory(prefix="bench-ingest-") as folder:
        log = Path(folder) / "server.log"
        server = ingest_http.start_runserver(port, log)
        try:
            servers.wait_until_ready(server, url, log)
            return ingest_http.time_http(
                url, source.write_key, bodies, HTTP_CLIENTS, BATCH_CALLS
            )
        finally:
            servers.stop_server(server)
            clear_event_path_state()


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
    api_rates, copy_rates = [], []
    data_changed.disconnect(dispatch_uid=RECEIVER_ID)
    try:
        for number in range(ROUNDS):
            api_rate, copy_rate = time_round(source, generator, contacts, number)
            api_rates.append(api_rate)
            copy_rates.append(copy_rate)
    finally:
        data_changed.connect(on_data_changed, dispatch_uid=RECEIVER_ID)
    try:
        batches = make_round(generator, contacts, ROUNDS)
        seconds = time_api(source, [request_body(batch) for batch in batches])
    finally:
        clear_event_path_state()
    events = BATCHES_PER_ROUND * BATCH_CALLS
    print(f"API path with the event path's hand-off: {events / seconds:,.0f} events/s")
    bulk_rate = events / time_bulk_copy(generator, contacts)
    http_rate = events / time_http_round(source, generator, contacts)

    api_rate = statistics.median(api_rates)
    copy_rate = statistics.median(copy_rates)
    share = api_rate / copy_rate
    ratio = MIN_SHARE_OF_COPY / share
    print(
        f"{ROUNDS} rounds of {BATCHES_PER_ROUND} batches of {BATCH_CALLS} calls; "
        f"median API {api_rate:,.0f} events/s, COPY {copy_rate:,.0f} events/s, "
        f"API/COPY {share:.2f}"
    )
    print(
        f"COPY of a round's {events:,} rows in one transaction: "
        f"{bulk_rate:,.0f} events/s, API/COPY {api_rate / bulk_rate:.2f}"
    )
    print(
        f"HTTP, {HTTP_CLIENTS} clients, gzip, with the event path: "
        f"{http_rate:,.0f} events/s, HTTP/COPY {http_rate / copy_rate:.2f}"
    )
    print(f"{'measure':<44} {'API/COPY':>9} {'target':>7} {'ratio':>6}")
    print(
        f"{'API storage path rate / COPY rate':<44} {share:>9.2f} "
        f"{MIN_SHARE_OF_COPY:>7.2f} {ratio:>6.2f}"
    )
    return 0 if ratio <= 1.0 else 1
