"""Time a CSV mapping import of usage events against PostgreSQL's COPY.

The population is 200 accounts of 10 contacts, built in SQL. One CSV file
contains USAGE_ROWS usage rows (200,000 at scale 1.0) that name their
contact by external id, with an event name, an ISO 8601 timestamp, a
count and a boolean property. A mapping reads it into usage events: the
contact by reference, the account through the contact, and the property
into properties.

Three runs go through integrations.csv_import.run_import: a dry run on the
empty table, the import, and a second import of the same file, which finds
every row unchanged. Then the events are deleted, and the same rows,
already parsed into Python tuples, are written with psycopg 3's COPY in
one transaction, as the import writes in one. Both write into the same
table, with its indexes, unique external_id and roll-up triggers.

The target is an import rate of at least a quarter of the COPY rate. That
share is a chosen goal for a path that converts and checks each value in
Python, not a measured need. The dry run and the second import are
reported without a target.

NUDGEPATH_BENCH_SCALE (default 1.0) multiplies the number of usage rows.
"""

import csv
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from django.db import connection, transaction

from bench.scale import _scale_from_environment
from customers.models import Contact, UsageEvent
from integrations.csv_import import load_mapping, run_import

SCALE = _scale_from_environment()
ACCOUNTS = 200
CONTACTS_PER_ACCOUNT = 10
USAGE_ROWS = max(1_000, round(200_000 * SCALE))
MIN_SHARE_OF_COPY = 0.25
EVENT_NAMES = ["Signed In", "Report Exported", "Invite Sent", "Feature Used"]

MAPPING = """
format = 1
name = "Usage benchmark"

[[targets]]
target = "usage_event"
file = "usage.csv"

[targets.fields]
external_id = "usage_id"
contact = { column = "user_id", type = "ref" }
account = { column = "user_id", type = "ref", through = "contact" }
name = "event"
feature = "feature"
occurred_at = { column = "timestamp", type = "datetime" }
quantity = { column = "count", type = "int" }
"properties.is_beta" = { column = "is_beta", type = "bool" }
"""

POPULATION_SQL = [
    f"""
    INSERT INTO customers_account (
        external_id, name, industry, country, plan, seats, mrr, arr, is_trial,
        signup_date, kickoff_date, renewal_date, health_score, time_zone,
        properties, created_at, updated_at)
    SELECT 'CSV-' || n, 'CSV account ' || n, '', '', 'Pro', 10, 0, 0, false,
        DATE '2023-01-01', NULL, NULL, NULL, '', '{{}}', now(), now()
    FROM generate_series(1, {ACCOUNTS}) AS n
    """,
    f"""
    INSERT INTO customers_contact (
        account_id, external_id, email, first_name, last_name, role,
        is_champion, time_zone, properties, added_at, created_at, updated_at)
    SELECT a.id, a.external_id || '-' || m,
        'c' || m || '@' || lower(a.external_id) || '.example', 'Bench', '', '',
        m = 1, '', '{{}}', TIMESTAMPTZ '2023-01-01 00:00+00', now(), now()
    FROM customers_account a, generate_series(1, {CONTACTS_PER_ACCOUNT}) AS m
    """,
]

COPY_COLUMNS = (
    "account_id, contact_id, external_id, name, feature, occurred_at, "
    "properties, quantity, duration_seconds, error_count, created_at"
)


def write_usage_file(folder: Path) -> Path:
    """Write USAGE_ROWS usage rows spread evenly over the contacts and a year."""
    contacts = sorted(Contact.objects.values_list("external_id", flat=True))
    start = datetime(2024, 1, 1, tzinfo=UTC)
    path = folder / "usage.csv"
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["usage_id", "user_id", "event", "feature", "timestamp",
                         "count", "is_beta"])  # fmt: skip
        for number in range(USAGE_ROWS):
            writer.writerow(
                [
                    f"U-{number:07d}",
                    contacts[number * 7919 % len(contacts)],
                    EVENT_NAMES[number % len(EVENT_NAMES)],
                    f"feature_{number % 40}",
                    (start + timedelta(minutes=number * 3)).isoformat(),
                    1 + number % 5,
                    "true" if number % 10 == 0 else "false",
                ]
            )
    return path


def copy_rows(path: Path) -> list[tuple]:
    """Parse the CSV file into the tuples COPY writes, outside the timing."""
    contacts = {
        external_id: (pk, account_id)
        for pk, account_id, external_id in Contact.objects.values_list(
            "pk", "account_id", "external_id"
        )
    }
    created = datetime.now(UTC)
    rows = []
    with path.open(newline="", encoding="utf-8") as handle:
        for record in csv.DictReader(handle):
            contact_id, account_id = contacts[record["user_id"]]
            is_beta = "true" if record["is_beta"] == "true" else "false"
            rows.append(
                (
                    account_id,
                    contact_id,
                    record["usage_id"],
                    record["event"],
                    record["feature"],
                    datetime.fromisoformat(record["timestamp"]),
                    f'{{"is_beta": {is_beta}}}',
                    int(record["count"]),
                    0,
                    0,
                    created,
                )
            )
    return rows


def time_copy(rows: list[tuple]) -> float:
    """Return seconds to COPY the rows in one transaction."""
    started = time.perf_counter()
    with transaction.atomic(), connection.cursor() as cursor:
        statement = f"COPY customers_usageevent ({COPY_COLUMNS}) FROM STDIN"
        with cursor.cursor.copy(statement) as copy:
            for row in rows:
                copy.write_row(row)
    return time.perf_counter() - started


def time_import(folder: Path, dry_run: bool) -> tuple[float, str]:
    """Return seconds for one run of the mapping and its counts of the target."""
    mapping_path = folder / "usage.toml"
    started = time.perf_counter()
    report = run_import(load_mapping(mapping_path), folder, dry_run=dry_run)
    seconds = time.perf_counter() - started
    target = report.targets[0]
    if target.rejected:
        raise RuntimeError(f"the benchmark rows were rejected: {report.rejections}")
    counts = f"{target.created} created, {target.unchanged} unchanged"
    return seconds, counts


def run() -> int:
    with connection.cursor() as cursor:
        for statement in POPULATION_SQL:
            cursor.execute(statement)
        cursor.execute("ANALYZE")

    with tempfile.TemporaryDirectory(prefix="csv-import-bench-") as name:
        folder = Path(name)
        (folder / "usage.toml").write_text(MAPPING)
        path = write_usage_file(folder)
        contacts = ACCOUNTS * CONTACTS_PER_ACCOUNT
        print(f"{USAGE_ROWS:,} usage rows for {contacts} contacts")

        rates = {}
        for label, dry_run in (("dry run", True), ("import", False),
                               ("second import", False)):  # fmt: skip
            seconds, counts = time_import(folder, dry_run)
            rates[label] = USAGE_ROWS / seconds
            print(f"{label}: {seconds:.1f} s, {rates[label]:,.0f} rows/s ({counts})")

        rows = copy_rows(path)
    UsageEvent.objects.all().delete()
    copy_rate = USAGE_ROWS / time_copy(rows)
    print(f"COPY: {copy_rate:,.0f} rows/s")

    share = rates["import"] / copy_rate
    ratio = MIN_SHARE_OF_COPY / share
    print(f"{'measure':<44} {'import/COPY':>11} {'target':>7} {'ratio':>6}")
    print(
        f"{'CSV mapping import rate / COPY rate':<44} {share:>11.2f} "
        f"{MIN_SHARE_OF_COPY:>7.2f} {ratio:>6.2f}"
    )
    return 0 if ratio <= 1.0 else 1
