"""Statements that psycopg prepares once per connection, for the busiest requests.

Django's cursors bind parameters on the client, so PostgreSQL plans every
query again. For the few statements that run on almost every portal
request (a lesson's heartbeat, a repeat view of a lesson), planning their
joins took several times as long as running them. A cursor that binds on
the server lets psycopg prepare a statement once it has run
``prepare_threshold`` times on a connection (settings.DATABASES).
"""

import logging
import threading
from collections.abc import Mapping
from datetime import UTC
from typing import Any, NamedTuple

import psycopg
from django.db import NotSupportedError, OperationalError, connection
from django.db.backends.utils import CursorDebugWrapper, CursorWrapper
from psycopg.types.datetime import TimestamptzLoader

logger = logging.getLogger(__name__)

# The largest value of a bigint column, such as a primary key. A URL's
# <int:...> takes any number of digits. PostgreSQL rejects a larger
# parameter cast to bigint with an error, where the ORM's lookups match no
# row, so callers check ids from a URL before passing them.
BIGINT_MAX = 2**63 - 1


def fits_bigint(value: int) -> bool:
    """Return whether an id from a URL fits a bigint column."""
    return 0 <= value <= BIGINT_MAX


# Each thread's binding cursor and the connection it was made on. A cursor
# is kept because making one and registering its loader took about 13 µs,
# and the cursor keeps no state between statements that matters here.
_binding = threading.local()


def binding_cursor() -> CursorWrapper:
    """Return a Django cursor over a psycopg cursor that binds on the server.

    The wrapper is Django's, so errors, query logging and assertNumQueries
    work as for any query. The psycopg cursor is reused on the same
    connection, so the caller must not close it.
    """
    connection.ensure_connection()
    raw = getattr(_binding, "cursor", None)
    if raw is None or raw.closed or raw.connection is not connection.connection:
        raw = psycopg.Cursor(connection.connection)
        if connection.timezone is UTC:
            # Django's timestamptz loader is written in Python: its eleven
            # calls took about 35 µs of each lesson page statement, measured
            # in one process. With the database's TIME_ZONE unset, Django
            # sets the session to UTC and returns datetime.UTC, as psycopg's
            # own loader (compiled in psycopg-binary) does. With another
            # TIME_ZONE, Django returns a ZoneInfo, so its loader stays.
            raw.adapters.register_loader("timestamptz", TimestamptzLoader)
        _binding.cursor = raw
    if connection.queries_logged:
        return CursorDebugWrapper(raw, connection)
    return CursorWrapper(raw, connection)


def forget_stale_statement(error: NotSupportedError) -> None:
    """Deallocate a prepared statement whose result type a migration changed.

    PostgreSQL rejects such a statement with "cached plan must not change
    result type" until the connection closes. psycopg (3.3) clears its own
    record of prepared statements when it runs DEALLOCATE ALL, so the next
    call prepares it again. The caller takes its general path this once.
    Inside a transaction the error aborted the transaction, so it is raised.
    """
    stale = isinstance(error.__cause__, psycopg.errors.FeatureNotSupported)
    if not stale or connection.in_atomic_block:
        raise error
    logger.warning("A prepared statement failed, deallocating it: %s", error)
    connection.connection.execute("DEALLOCATE ALL")


def fetch_prepared(sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    """Run a statement through a binding cursor; return its first row or None.

    None also when the prepared statement was stale and was deallocated,
    so the caller takes its general path once.
    """
    try:
        return _fetch_one(sql, params)
    except NotSupportedError as error:
        forget_stale_statement(error)
        return None
    except OperationalError as error:
        # No connection at all means the server could not be reached.
        reconnect = connection.connection is not None and not (
            connection.in_atomic_block or connection.is_usable()
        )
        if not reconnect:
            raise
        # The server closed the connection since its last use: a restart or
        # an idle timeout. Django's health check (CONN_HEALTH_CHECKS) finds
        # that before each request's first query with a SELECT 1, which took
        # about 0.12 ms of CPU per lesson page in one process, besides
        # PostgreSQL's share. A statement sent on a connection already
        # closed never ran, so it runs again on a new one. Should the
        # connection break after the server ran it, a heartbeat's sequence
        # number makes the retry count nothing, and a page view is counted
        # twice.
        logger.warning(
            "Reconnecting after the database closed the connection: %s", error
        )
        connection.close()
        return _fetch_one(sql, params)


def _fetch_one(sql: str, params: Mapping[str, Any]) -> tuple[Any, ...] | None:
    cursor = binding_cursor()
    cursor.execute(sql, params)
    return cursor.fetchone()


# The marker after a counter statement's last output column (CounterStatement).
COMMIT_COLUMN = "/* commit column */"

# set_config(..., true) lasts until the end of the current transaction, so
# the statement's own commit does not wait for its WAL to reach the disk.
# The column's value, the setting's text, is dropped from the row.
_ASYNC_COMMIT_COLUMN = ", set_config('synchronous_commit', 'off', true)"


class CounterStatement(NamedTuple):
    """A statement that writes only counters, as a durable and a quick form.

    A repeat page view and a time-only heartbeat move counters that the next
    page view or heartbeat moves again, and they start no other work. Their
    quick form commits asynchronously (docs/decisions/0034-asynchronous-
    commit-of-counters.md): after a crash of PostgreSQL or of its machine,
    the last fraction of a second of such counts may be missing, never half
    written. Inside a transaction the durable form runs, so the setting
    never reaches a caller's other writes.
    """

    durable: str
    quick: str

    @classmethod
    def marked(cls, sql: str) -> "CounterStatement":
        """Build both forms from SQL with COMMIT_COLUMN after its last output column."""
        if sql.count(COMMIT_COLUMN) != 1:
            raise ValueError(
                "Counter statement SQL must contain COMMIT_COLUMN exactly once, "
                "after its last output column."
            )
        return cls(
            durable=sql.replace(COMMIT_COLUMN, ""),
            quick=sql.replace(COMMIT_COLUMN, _ASYNC_COMMIT_COLUMN),
        )


def fetch_counted(
    statement: CounterStatement, params: Mapping[str, Any]
) -> tuple[Any, ...] | None:
    """Run a counter statement as fetch_prepared does; return its row or None.

    The quick form runs only when the statement is its own transaction.
    """
    if connection.in_atomic_block or not connection.get_autocommit():
        return fetch_prepared(statement.durable, params)
    row = fetch_prepared(statement.quick, params)
    return None if row is None else row[:-1]
