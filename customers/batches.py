"""Storing many usage events at once, each counted once by its external id.

store_usage_events() is the bulk counterpart of
customers.ingestion.record_usage_event(): an event API that receives
hundreds of events per request writes them with one INSERT ... ON CONFLICT
(external_id) DO NOTHING instead of one get_or_create per event. The
database skips events that are already stored, so a redelivered batch
counts once, and two writers that race on the same events cannot both
insert them. The daily roll-up (customers.UsageDay) follows from the
table's statement triggers, so nothing here counts events.
"""

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from customers.ingestion import _require_aware, _require_json, _require_text
from customers.models import UsageEvent
from customers.signals import send_data_changed

logger = logging.getLogger(__name__)

EVENTS = UsageEvent._meta.db_table

# Rows are passed as one array per column, so the statement has the same
# eight parameters whatever the number of events. Sorting by external_id
# makes concurrent writers take the unique index's locks in the same order.
POSTGRESQL_INSERT = f"""
    INSERT INTO {EVENTS} (
        account_id, contact_id, external_id, name, feature, occurred_at,
        properties, quantity, duration_seconds, error_count, created_at
    )
    SELECT row.account_id, row.contact_id, row.external_id, row.name,
           row.feature, row.occurred_at, row.properties::jsonb, 1, 0, 0, %s
    FROM unnest(
        %s::bigint[], %s::bigint[], %s::text[], %s::text[], %s::text[],
        %s::timestamptz[], %s::text[]
    ) AS row(account_id, contact_id, external_id, name, feature, occurred_at,
             properties)
    ORDER BY row.external_id
    ON CONFLICT (external_id) DO NOTHING
    RETURNING external_id
"""


@dataclass(frozen=True)
class UsageEventRow:
    """One usage event to store; external_id identifies it at its source."""

    account_id: int
    contact_id: int | None
    external_id: str
    name: str
    occurred_at: datetime
    feature: str = ""
    properties: Mapping[str, Any] = field(default_factory=dict)


def check_usage_event(row: UsageEventRow) -> None:
    """Raise ValueError naming the first value of row that cannot be stored.

    These are the checks of record_usage_event(), with an external_id
    required, because without one a redelivered event would count twice.
    """
    _require_text(UsageEvent, "external_id", row.external_id, "usage event external_id")
    if not row.external_id:
        raise ValueError("usage event external_id is blank; pass the source's id")
    _require_text(UsageEvent, "name", row.name, "usage event name")
    if not row.name.strip():
        raise ValueError("usage event name is blank; pass the event's name")
    _require_text(UsageEvent, "feature", row.feature, "usage event feature")
    _require_aware(row.occurred_at, "occurred_at")
    if not isinstance(row.properties, Mapping):
        raise ValueError(
            f"usage event properties={row.properties!r} must be a mapping of names "
            "to values"
        )
    _require_json(row.properties, "usage event properties")


def store_usage_events(rows: Sequence[UsageEventRow]) -> list[bool]:
    """Store usage events in one transaction; return, per row, whether it was new.

    A row whose external_id is already stored, or appears earlier in rows,
    is not written and gets False. Every row is checked before anything is
    written, so one bad row raises ValueError and stores nothing. The
    caller makes sure that each contact_id is a contact of its account_id.
    data_changed ("usage") is sent once for each account that got a new
    event, inside the transaction.
    """
    for row in rows:
        check_usage_event(row)
    first_rows = _first_of_each_id(rows)
    if not first_rows:
        return [False] * len(rows)

    with transaction.atomic():
        if connection.vendor == "postgresql":
            inserted = _insert_postgresql(first_rows)
        else:
            inserted = _insert_other(first_rows)
        accounts = sorted(
            {row.account_id for row in first_rows if row.external_id in inserted}
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
    new = []
    seen: set[str] = set()
    for row in rows:
        new.append(row.external_id in inserted and row.external_id not in seen)
        seen.add(row.external_id)
    return new


def _first_of_each_id(rows: Sequence[UsageEventRow]) -> list[UsageEventRow]:
    firsts: dict[str, UsageEventRow] = {}
    for row in rows:
        firsts.setdefault(row.external_id, row)
    return list(firsts.values())


def _insert_postgresql(rows: list[UsageEventRow]) -> set[str]:
    parameters: list[Any] = [
        timezone.now(),
        [row.account_id for row in rows],
        [row.contact_id for row in rows],
        [row.external_id for row in rows],
        [row.name for row in rows],
        [row.feature for row in rows],
        [row.occurred_at for row in rows],
        [json.dumps(dict(row.properties)) for row in rows],
    ]
    with connection.cursor() as cursor:
        cursor.execute(POSTGRESQL_INSERT, parameters)
        return {external_id for (external_id,) in cursor.fetchall()}


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
