"""Daily usage roll-ups: customers.UsageDay kept equal to the usage events.

Database triggers on customers_usageevent add and subtract counts, so every
write path keeps the roll-up true: the ingestion functions, bulk imports
that upsert thousands of rows, the admin, a test's objects.create() and
a delete cascading from an account. On PostgreSQL they are statement
triggers over transition tables, one grouped upsert per statement however
many rows it writes; SQLite, the embedded demo's database, has only row
triggers. rebuild_usage_days() recomputes the rows from the events, for
a database loaded with the triggers off. docs/decisions/0007-usage-roll-ups.md
gives the reasons.
"""

import logging
from collections.abc import Iterable

from django.db import connection, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

logger = logging.getLogger(__name__)

EVENTS = "customers_usageevent"
DAYS = "customers_usageday"

# Each key: the columns that name a row, and the partial unique index
# that the upsert resolves its conflicts on.
CONTACT_KEY = ("contact_id IS NOT NULL", "contact_id, name, feature, day")
ACCOUNT_KEY = ("contact_id IS NULL", "account_id, name, feature, day")

# -- PostgreSQL ---------------------------------------------------------------


def _postgresql_add(source: str, where: str, key: str) -> str:
    """Add the counts of the rows in source to their days."""
    return f"""
        INSERT INTO {DAYS} (account_id, contact_id, name, feature, day, count)
        SELECT account_id, contact_id, name, feature,
               (occurred_at AT TIME ZONE 'UTC')::date, count(*)
        FROM {source} WHERE {where}
        GROUP BY 1, 2, 3, 4, 5
        ORDER BY 1, 2, 3, 4, 5
        ON CONFLICT ({key}) WHERE {where}
        DO UPDATE SET count = {DAYS}.count + EXCLUDED.count;
    """


def _postgresql_subtract(source: str) -> str:
    """Take the counts of the rows in source off their days; drop emptied days."""
    grouped = f"""
        SELECT account_id, contact_id, name, feature,
               (occurred_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n
        FROM {source} GROUP BY 1, 2, 3, 4, 5
    """
    matches = (
        "d.account_id = o.account_id"
        " AND d.contact_id IS NOT DISTINCT FROM o.contact_id"
        " AND d.name = o.name AND d.feature = o.feature AND d.day = o.day"
    )
    return f"""
        UPDATE {DAYS} d SET count = d.count - o.n FROM ({grouped}) o WHERE {matches};
        DELETE FROM {DAYS} d USING ({grouped}) o WHERE {matches} AND d.count <= 0;
    """


POSTGRESQL_FUNCTION = f"""
CREATE OR REPLACE FUNCTION customers_usage_day_apply() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- PL/pgSQL plans each statement when it first runs, so the branch for
    -- a transition table that this trigger lacks is never planned.
    IF TG_OP IN ('UPDATE', 'DELETE') THEN
        {_postgresql_subtract("old_events")}
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') THEN
        {_postgresql_add("new_events", *CONTACT_KEY)}
        {_postgresql_add("new_events", *ACCOUNT_KEY)}
    END IF;
    RETURN NULL;
END;
$$;
"""

POSTGRESQL_TRIGGERS = [
    f"""CREATE TRIGGER usage_day_insert AFTER INSERT ON {EVENTS}
        REFERENCING NEW TABLE AS new_events
        FOR EACH STATEMENT EXECUTE FUNCTION customers_usage_day_apply()""",
    f"""CREATE TRIGGER usage_day_update AFTER UPDATE ON {EVENTS}
        REFERENCING OLD TABLE AS old_events NEW TABLE AS new_events
        FOR EACH STATEMENT EXECUTE FUNCTION customers_usage_day_apply()""",
    f"""CREATE TRIGGER usage_day_delete AFTER DELETE ON {EVENTS}
        REFERENCING OLD TABLE AS old_events
        FOR EACH STATEMENT EXECUTE FUNCTION customers_usage_day_apply()""",
]

POSTGRESQL_DROP = [
    f"DROP TRIGGER IF EXISTS usage_day_insert ON {EVENTS}",
    f"DROP TRIGGER IF EXISTS usage_day_update ON {EVENTS}",
    f"DROP TRIGGER IF EXISTS usage_day_delete ON {EVENTS}",
    "DROP FUNCTION IF EXISTS customers_usage_day_apply()",
]

# -- SQLite -----------------------------------------------------------------


def _sqlite_add(row: str, where: str, key: str) -> str:
    # Django stores an SQLite datetime as UTC text, so date() is the UTC day.
    return f"""
        INSERT INTO {DAYS} (account_id, contact_id, name, feature, day, count)
        SELECT {row}.account_id, {row}.contact_id, {row}.name, {row}.feature,
               date({row}.occurred_at), 1
        WHERE {row}.{where}
        ON CONFLICT ({key}) WHERE {where} DO UPDATE SET count = count + 1;
    """


def _sqlite_subtract(row: str) -> str:
    matches = (
        f"account_id = {row}.account_id AND contact_id IS {row}.contact_id"
        f" AND name = {row}.name AND feature = {row}.feature"
        f" AND day = date({row}.occurred_at)"
    )
    return f"""
        UPDATE {DAYS} SET count = count - 1 WHERE {matches};
        DELETE FROM {DAYS} WHERE {matches} AND count <= 0;
    """


SQLITE_TRIGGERS = [
    f"""CREATE TRIGGER usage_day_insert AFTER INSERT ON {EVENTS} BEGIN
        {_sqlite_add("NEW", *CONTACT_KEY)} {_sqlite_add("NEW", *ACCOUNT_KEY)}
    END""",
    f"""CREATE TRIGGER usage_day_update AFTER UPDATE OF
        account_id, contact_id, name, feature, occurred_at ON {EVENTS} BEGIN
        {_sqlite_subtract("OLD")}
        {_sqlite_add("NEW", *CONTACT_KEY)} {_sqlite_add("NEW", *ACCOUNT_KEY)}
    END""",
    f"""CREATE TRIGGER usage_day_delete AFTER DELETE ON {EVENTS} BEGIN
        {_sqlite_subtract("OLD")}
    END""",
]

SQLITE_DROP = [
    "DROP TRIGGER IF EXISTS usage_day_insert",
    "DROP TRIGGER IF EXISTS usage_day_update",
    "DROP TRIGGER IF EXISTS usage_day_delete",
]


def install_triggers(database: BaseDatabaseWrapper) -> None:
    """Create the roll-up triggers on the usage event table."""
    with database.cursor() as cursor:
        if database.vendor == "postgresql":
            cursor.execute(POSTGRESQL_FUNCTION)
            statements = POSTGRESQL_TRIGGERS
        elif database.vendor == "sqlite":
            statements = SQLITE_TRIGGERS
        else:
            raise NotImplementedError(
                f"usage roll-ups have no triggers for {database.vendor}; "
                "use PostgreSQL or SQLite"
            )
        for statement in statements:
            cursor.execute(statement)


def drop_triggers(database: BaseDatabaseWrapper) -> None:
    """Remove the roll-up triggers, for a reversed migration or a bulk load."""
    statements = POSTGRESQL_DROP if database.vendor == "postgresql" else SQLITE_DROP
    with database.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)


def rebuild_usage_days(account_ids: Iterable[int] | None = None) -> int:
    """Recompute the roll-up rows from the usage events; return how many exist.

    With account_ids, only those accounts' rows are rebuilt. The rebuild
    runs in one transaction, so readers see the old rows or the new ones.
    """
    accounts = None if account_ids is None else sorted(set(account_ids))
    where, parameters = "", []
    if accounts is not None:
        placeholders = ", ".join(["%s"] * len(accounts)) or "NULL"
        where, parameters = f" WHERE account_id IN ({placeholders})", accounts
    day = (
        "(occurred_at AT TIME ZONE 'UTC')::date"
        if connection.vendor == "postgresql"
        else "date(occurred_at)"
    )
    with transaction.atomic(), connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            # Writers wait until the rebuild commits, so an event stored
            # meanwhile is neither counted twice nor missed.
            cursor.execute(f"LOCK TABLE {EVENTS} IN SHARE MODE")
        cursor.execute(f"DELETE FROM {DAYS}{where}", parameters)
        cursor.execute(
            f"""
            INSERT INTO {DAYS} (account_id, contact_id, name, feature, day, count)
            SELECT account_id, contact_id, name, feature, {day}, count(*)
            FROM {EVENTS}{where} GROUP BY 1, 2, 3, 4, 5
            """,
            parameters,
        )
        rows = cursor.rowcount
    logger.info("Rebuilt %d usage day rows", rows)
    return rows
