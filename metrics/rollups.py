"""Per-account daily roll-up: metrics.AccountDay kept equal to events and tickets.

The outcome comparison needs, per account, its first day of usage and its
tickets over its tenure. Reading them from customers.UsageDay and the
tickets cost a scan of every roll-up row of an account (one per contact,
event name, feature and day) and a heap visit per ticket. AccountDay has
one row per account and UTC day, with the day's usage events and tickets.

As customers.UsageDay does (docs/decisions/0007-usage-roll-ups.md),
database triggers keep it true on every write path: statement triggers
over transition tables on PostgreSQL, one grouped upsert per statement,
and row triggers on SQLite. rebuild_account_days() recomputes it, for a
database loaded with the triggers off. docs/decisions/0024-account-day-roll-up.md
gives the reasons.
"""

import logging
from dataclasses import dataclass

from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

from metrics.report_cache import clear_cached_reports

logger = logging.getLogger(__name__)

DAYS = "metrics_accountday"


@dataclass(frozen=True)
class Source:
    """A table counted into AccountDay: its instant column and its counter."""

    name: str
    table: str
    instant: str
    counter: str

    @property
    def function(self) -> str:
        return f"metrics_account_day_{self.name}"

    def trigger(self, operation: str) -> str:
        return f"account_day_{self.name}_{operation}"


USAGE = Source("usage", "customers_usageevent", "occurred_at", "usage_events")
TICKETS = Source("tickets", "customers_supportticket", "opened_at", "tickets")
SOURCES = (USAGE, TICKETS)

# -- PostgreSQL ---------------------------------------------------------------


def _postgresql_grouped(source: Source, rows: str) -> str:
    return f"""
        SELECT account_id, ({source.instant} AT TIME ZONE 'UTC')::date AS day,
               count(*) AS n
        FROM {rows} GROUP BY 1, 2
    """


def _postgresql_add(source: Source, rows: str) -> str:
    # Sorted keys make two concurrent writers lock rows in the same order.
    counter = source.counter
    return f"""
        INSERT INTO {DAYS} (account_id, day, {source.counter}, {_other(source)})
        SELECT account_id, day, n, 0 FROM ({_postgresql_grouped(source, rows)}) o
        ORDER BY 1, 2
        ON CONFLICT (account_id, day)
        DO UPDATE SET {counter} = {DAYS}.{counter} + EXCLUDED.{counter};
    """


def _postgresql_subtract(source: Source, rows: str) -> str:
    grouped = _postgresql_grouped(source, rows)
    matches = "d.account_id = o.account_id AND d.day = o.day"
    return f"""
        UPDATE {DAYS} d SET {source.counter} = d.{source.counter} - o.n
        FROM ({grouped}) o WHERE {matches};
        DELETE FROM {DAYS} d USING ({grouped}) o
        WHERE {matches} AND d.usage_events <= 0 AND d.tickets <= 0;
    """


def _other(source: Source) -> str:
    return TICKETS.counter if source is USAGE else USAGE.counter


def _postgresql_function(source: Source) -> str:
    return f"""
CREATE OR REPLACE FUNCTION {source.function}() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- PL/pgSQL plans each statement when it first runs, so the branch for
    -- a transition table that this trigger lacks is never planned.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {_postgresql_subtract(source, "old_rows")}
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {_postgresql_add(source, "new_rows")}
    END IF;
    RETURN NULL;
END;
$$;
"""


def _postgresql_triggers(source: Source) -> list[str]:
    execute = f"FOR EACH STATEMENT EXECUTE FUNCTION {source.function}()"
    return [
        f"""CREATE TRIGGER {source.trigger("insert")} AFTER INSERT ON {source.table}
            REFERENCING NEW TABLE AS new_rows {execute}""",
        f"""CREATE TRIGGER {source.trigger("update")} AFTER UPDATE ON {source.table}
            REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows {execute}""",
        f"""CREATE TRIGGER {source.trigger("delete")} AFTER DELETE ON {source.table}
            REFERENCING OLD TABLE AS old_rows {execute}""",
    ]


def _postgresql_drop(source: Source) -> list[str]:
    return [
        *(
            f"DROP TRIGGER IF EXISTS {source.trigger(operation)} ON {source.table}"
            for operation in ("insert", "update", "delete")
        ),
        f"DROP FUNCTION IF EXISTS {source.function}()",
    ]


# -- SQLite -----------------------------------------------------------------


def _sqlite_add(source: Source, row: str) -> str:
    # Django stores an SQLite datetime as UTC text, so date() is the UTC day.
    return f"""
        INSERT INTO {DAYS} (account_id, day, {source.counter}, {_other(source)})
        VALUES ({row}.account_id, date({row}.{source.instant}), 1, 0)
        ON CONFLICT (account_id, day)
        DO UPDATE SET {source.counter} = {source.counter} + 1;
    """


def _sqlite_subtract(source: Source, row: str) -> str:
    matches = f"account_id = {row}.account_id AND day = date({row}.{source.instant})"
    return f"""
        UPDATE {DAYS} SET {source.counter} = {source.counter} - 1 WHERE {matches};
        DELETE FROM {DAYS} WHERE {matches} AND usage_events <= 0 AND tickets <= 0;
    """


def _sqlite_triggers(source: Source) -> list[str]:
    return [
        f"""CREATE TRIGGER {source.trigger("insert")} AFTER INSERT ON {source.table}
            BEGIN {_sqlite_add(source, "NEW")} END""",
        f"""CREATE TRIGGER {source.trigger("update")} AFTER UPDATE OF
            account_id, {source.instant} ON {source.table} BEGIN
            {_sqlite_subtract(source, "OLD")} {_sqlite_add(source, "NEW")}
        END""",
        f"""CREATE TRIGGER {source.trigger("delete")} AFTER DELETE ON {source.table}
            BEGIN {_sqlite_subtract(source, "OLD")} END""",
    ]


def _sqlite_drop(source: Source) -> list[str]:
    return [
        f"DROP TRIGGER IF EXISTS {source.trigger(operation)}"
        for operation in ("insert", "update", "delete")
    ]


def install_triggers(database: BaseDatabaseWrapper) -> None:
    """Create the roll-up triggers on the usage event and support ticket tables."""
    with database.cursor() as cursor:
        for source in SOURCES:
            if database.vendor == "postgresql":
                cursor.execute(_postgresql_function(source))
                statements = _postgresql_triggers(source)
            elif database.vendor == "sqlite":
                statements = _sqlite_triggers(source)
            else:
                raise NotImplementedError(
                    f"the account day roll-up has no triggers for {database.vendor}; "
                    "use PostgreSQL or SQLite"
                )
            for statement in statements:
                cursor.execute(statement)


def drop_triggers(database: BaseDatabaseWrapper) -> None:
    """Remove the roll-up triggers, for a reversed migration or a bulk load."""
    with database.cursor() as cursor:
        for source in SOURCES:
            if database.vendor == "postgresql":
                statements = _postgresql_drop(source)
            else:
                statements = _sqlite_drop(source)
            for statement in statements:
                cursor.execute(statement)


def _day_sql(source: Source) -> str:
    if connection.vendor == "postgresql":
        return f"({source.instant} AT TIME ZONE 'UTC')::date"
    return f"date({source.instant})"


def rebuild_account_days() -> int:
    """Recompute every AccountDay row from the events and tickets; return the rows.

    The rebuild runs in one transaction, so readers see the old rows or the
    new ones, and on PostgreSQL writers to both tables wait until it commits.
    """
    usage_day, ticket_day = _day_sql(USAGE), _day_sql(TICKETS)
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # An event or ticket stored meanwhile is neither counted twice
            # nor missed.
            cursor.execute(f"LOCK TABLE {USAGE.table}, {TICKETS.table} IN SHARE MODE")
        cursor.execute(f"DELETE FROM {DAYS}")
        cursor.execute(
            f"""
            INSERT INTO {DAYS} (account_id, day, usage_events, tickets)
            SELECT account_id, day, SUM(usage_events), SUM(tickets) FROM (
                SELECT account_id, {usage_day} AS day,
                       count(*) AS usage_events, 0 AS tickets
                FROM {USAGE.table} GROUP BY 1, 2
                UNION ALL
                SELECT account_id, {ticket_day} AS day, 0, count(*)
                FROM {TICKETS.table} GROUP BY 1, 2
            ) AS counted
            GROUP BY account_id, day
            """
        )
        rows = cursor.rowcount
    # Reports computed from the old rows must not outlive them.
    transaction.on_commit(clear_cached_reports)
    logger.info("Rebuilt %d account day rows", rows)
    return rows
