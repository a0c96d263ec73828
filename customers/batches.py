"""Storing many usage events at once, each counted once by its external id.

store_usage_events() is the bulk counterpart of
customers.ingestion.record_usage_event(): an event API that receives
hundreds of events per request writes them with one INSERT ... ON CONFLICT
(external_id) DO NOTHING instead of one get_or_create per event. The
database skips events that are already stored, so a redelivered batch
counts once, and two writers that race on the same events cannot both
insert them. UsageEventBatch checks the events one at a time first, so
a caller such as the Segment API can reject a bad event and store the
rest. The daily roll-up (customers.UsageDay) follows from the table's
statement triggers, so nothing here counts events.
"""

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from customers.ingestion import (
    _require_aware,
    _require_json,
    _require_no_surrogate,
    _require_text,
)
from customers.models import UsageEvent
from customers.signals import send_data_changed

logger = logging.getLogger(__name__)

EVENTS = UsageEvent._meta.db_table

# The rows are passed as one JSON array, so the statement has two
# parameters whatever the number of events, and sending it costs one
# string escape instead of one per value. Sorting by external_id makes
# concurrent writers take the unique index's locks in the same order.
POSTGRESQL_INSERT = f"""
    INSERT INTO {EVENTS} (
        account_id, contact_id, external_id, name, feature, occurred_at,
        properties, quantity, duration_seconds, error_count, created_at
    )
    SELECT row.account_id, row.contact_id, row.external_id, row.name,
           row.feature, row.occurred_at, row.properties, 1, 0, 0, %s
    FROM json_to_recordset(%s::json) AS row(
        account_id bigint, contact_id bigint, external_id text, name text,
        feature text, occurred_at timestamptz, properties jsonb
    )
    ORDER BY row.external_id
    ON CONFLICT (external_id) DO NOTHING
    RETURNING external_id
"""

# Column sizes, read once instead of per event.
MAX_LENGTHS: dict[str, int] = {
    name: getattr(UsageEvent._meta.get_field(name), "max_length", None) or 0
    for name in ("external_id", "name", "feature")
}

# One encoder for every row: json.dumps() with a keyword argument builds a
# new encoder per call. ensure_ascii (the default) writes every NUL and
# every UTF-16 surrogate as an escape, so the checks below can search the
# text for them instead of walking the value.
PROPERTIES_ENCODER = json.JSONEncoder(allow_nan=False)
# The C function behind the encoder's strings: a quoted, ASCII-only JSON string.
json_string = json.encoder.encode_basestring_ascii


@dataclass(frozen=True, slots=True)
class UsageEventRow:
    """One usage event to store; external_id identifies it at its source."""

    account_id: int
    contact_id: int | None
    external_id: str
    name: str
    occurred_at: datetime
    feature: str = ""
    properties: Mapping[str, Any] = field(default_factory=dict)


class UsageEventBatch:
    """Usage events checked one at a time by add(), then written by store().

    A caller that must keep the good events of a request and report the
    bad ones adds each row in a try block. Only rows that passed the
    checks are ever written.
    """

    def __init__(self) -> None:
        self._rows: list[UsageEventRow] = []
        self._properties: list[str] = []

    def __len__(self) -> int:
        return len(self._rows)

    def add(self, row: UsageEventRow) -> None:
        """Check row and keep it for store(); raise ValueError naming a bad value."""
        self._properties.append(_checked_properties_json(row))
        self._rows.append(row)

    def store(self) -> list[bool]:
        """Write the added rows in one transaction; return, per row, whether it was new.

        A row whose external_id is already stored, or was added earlier, is
        not written and gets False. The caller makes sure that each
        contact_id is a contact of its account_id. data_changed ("usage")
        is sent once for each account that got a new event, inside the
        transaction. Inside a caller's transaction no savepoint is made, so
        a database error here leaves that transaction to be rolled back.
        """
        rows = self._rows
        firsts = _first_of_each_id(rows)
        if not firsts:
            return []

        # A savepoint would cost two more round trips per request, and the
        # Segment API rolls back the whole request on any database error.
        with transaction.atomic(savepoint=False):
            if connection.vendor == "postgresql":
                inserted = _insert_postgresql(
                    [rows[index] for index in firsts],
                    [self._properties[index] for index in firsts],
                )
            else:
                inserted = _insert_other([rows[index] for index in firsts])
            accounts = sorted(
                {
                    rows[index].account_id
                    for index in firsts
                    if rows[index].external_id in inserted
                }
            )
            for account_id in accounts:
                send_data_changed(UsageEvent, account_id, "usage")

        logger.info(
            "Stored %d new usage events of %d for %d accounts",
            len(inserted),
            len(rows),
            len(accounts),
        )
        # Only the first row of an id can be the one inserted.
        new = [False] * len(rows)
        for index in firsts:
            new[index] = rows[index].external_id in inserted
        return new


def store_usage_events(rows: Sequence[UsageEventRow]) -> list[bool]:
    """Store usage events in one transaction; return, per row, whether it was new.

    A row whose external_id is already stored, or appears earlier in rows,
    is not written and gets False. Every row is checked before anything is
    written, so one bad row raises ValueError and stores nothing. The
    caller makes sure that each contact_id is a contact of its account_id.
    data_changed ("usage") is sent once for each account that got a new
    event, inside the transaction.
    """
    batch = UsageEventBatch()
    for row in rows:
        batch.add(row)
    return batch.store()


def _checked_properties_json(row: UsageEventRow) -> str:
    """Check every value of row; return its properties as JSON text.

    Raises ValueError naming the first value that cannot be stored. These
    are the checks of record_usage_event(), with an external_id required,
    because without one a redelivered event would count twice.
    """
    _check_ids(row)
    for name, label in (
        ("external_id", "usage event external_id"),
        ("name", "usage event name"),
        ("feature", "usage event feature"),
    ):
        value = getattr(row, name)
        # The common case in one test; _require_text words the error.
        if (
            not isinstance(value, str)
            or len(value) > MAX_LENGTHS[name]
            or "\x00" in value
        ):
            _require_text(UsageEvent, name, value, label)
        _require_no_surrogate(value, label)
    if not row.external_id:
        raise ValueError("usage event external_id is blank; pass the source's id")
    if not row.name.strip():
        raise ValueError("usage event name is blank; pass the event's name")
    _require_aware(row.occurred_at, "occurred_at")
    if not isinstance(row.properties, Mapping):
        raise ValueError(
            f"usage event properties={row.properties!r} must be a mapping of names "
            "to values"
        )
    return _properties_json(row.properties)


def _check_ids(row: UsageEventRow) -> None:
    # bool is an int subclass, and True would be stored as account 1.
    if type(row.account_id) is not int:
        raise ValueError(
            f"usage event account_id={row.account_id!r} must be an account's "
            "integer primary key"
        )
    if row.contact_id is not None and type(row.contact_id) is not int:
        raise ValueError(
            f"usage event contact_id={row.contact_id!r} must be a contact's "
            "integer primary key or None"
        )


def _properties_json(properties: Mapping[str, Any]) -> str:
    # The C encoder finds NaN, infinity and types without a JSON form. The
    # slower _require_json() walk runs only to word an error, or when the
    # text has an escaped NUL or surrogate, which jsonb cannot store.
    try:
        text = PROPERTIES_ENCODER.encode(dict(properties))
    except (TypeError, ValueError) as error:
        _require_json(properties, "usage event properties")
        raise ValueError(
            f"usage event properties cannot be stored as JSON ({error}); use "
            "strings, numbers, booleans, None, lists and dicts"
        ) from error
    if "\\u0000" in text:
        _require_json(properties, "usage event properties")
    if "\\ud" in text:
        _require_no_surrogate(properties, "usage event properties")
    return text


def _first_of_each_id(rows: Sequence[UsageEventRow]) -> list[int]:
    """Return the index of the first row of each external_id, in row order."""
    firsts: dict[str, int] = {}
    for index, row in enumerate(rows):
        firsts.setdefault(row.external_id, index)
    return list(firsts.values())


def _insert_postgresql(rows: list[UsageEventRow], properties: list[str]) -> set[str]:
    # The document is assembled from JSON pieces, so each row's properties
    # are encoded once, by the check, and not again here.
    document = "[" + ",".join(map(_row_json, rows, properties)) + "]"
    with connection.cursor() as cursor:
        cursor.execute(POSTGRESQL_INSERT, [timezone.now(), document])
        return {external_id for (external_id,) in cursor.fetchall()}


def _row_json(row: UsageEventRow, properties: str) -> str:
    contact_id = "null" if row.contact_id is None else str(row.contact_id)
    return (
        f'{{"account_id":{row.account_id},"contact_id":{contact_id},'
        f'"external_id":{json_string(row.external_id)},'
        f'"name":{json_string(row.name)},"feature":{json_string(row.feature)},'
        f'"occurred_at":"{row.occurred_at.isoformat()}","properties":{properties}}}'
    )


def _insert_other(rows: list[UsageEventRow]) -> set[str]:
    # SQLite, for the embedded demo, has no unnest(), so the stored ids are
    # read first. NOTE: a writer that stores one of these ids between the
    # read and the insert makes that row count as new here, although
    # ignore_conflicts keeps it from being stored twice. The demo runs one
    # web process, where that cannot happen.
    ids = [row.external_id for row in rows]
    existing = set(
        UsageEvent.objects.filter(external_id__in=ids).values_list(
            "external_id", flat=True
        )
    )
    UsageEvent.objects.bulk_create(
        [
            UsageEvent(
                account_id=row.account_id,
                contact_id=row.contact_id,
                external_id=row.external_id,
                name=row.name,
                feature=row.feature,
                occurred_at=row.occurred_at,
                properties=dict(row.properties),
            )
            for row in rows
            if row.external_id not in existing
        ],
        ignore_conflicts=True,
    )
    return set(ids) - existing
