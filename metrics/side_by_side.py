"""Compute a page's independent reports at the same time, each on its own connection.

The dashboard's sections read different tables and share nothing, and
most of each section's time is spent in PostgreSQL. On a machine with
more than one core, the sections' queries then run in separate server
processes at once instead of one after another.

Only code inside ``reports_side_by_side()`` uses the threads: the
dashboard's view, where a person waits for the page. Elsewhere, such as
the scheduled report task, reports are computed in turn.

Each thread keeps its own database connection, as Django gives every
thread one, and treats each report as a request treats its connection:
it closes the connection first if it is broken or older than
CONN_MAX_AGE. A process that serves the dashboard therefore opens up to
REPORT_THREADS more connections to PostgreSQL.
"""

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from typing import Generic, TypeVar

from django.db import close_old_connections, connection

from metrics.sql import short_queries

Report = TypeVar("Report")

# The threads besides the request's own: the dashboard's three sections
# besides the one the request computes, and the accounts' half of that one.
REPORT_THREADS = 4

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()
# Set on the pool's threads. A report computed there starts no report of
# its own on the pool, because waiting for a thread of a full pool from
# inside that pool could wait forever.
_on_pool = threading.local()
# Set by reports_side_by_side on the thread that may use the pool.
_allowed = threading.local()


@contextmanager
def reports_side_by_side() -> Iterator[None]:
    """Let ``start`` in the enclosed block compute reports on threads of their own."""
    previous = getattr(_allowed, "active", False)
    _allowed.active = True
    try:
        yield
    finally:
        _allowed.active = previous


def _threads() -> ThreadPoolExecutor:
    # Started on first use, so processes that never serve the dashboard,
    # such as Celery workers, start no threads.
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(
                max_workers=REPORT_THREADS, thread_name_prefix="dashboard-report"
            )
        return _pool


def _on_own_connection(compute: Callable[[], Report]) -> Report:
    _on_pool.active = True
    close_old_connections()
    try:
        with short_queries():
            return compute()
    finally:
        close_old_connections()


def can_run_side_by_side() -> bool:
    """Return whether reports may run on other connections than this thread's.

    Inside a transaction other connections cannot see its uncommitted rows,
    so the reports run in turn there. SQLite lets one process write at a
    time and runs in the process, so it gains nothing from threads. A
    report already on the pool computes what it starts itself, and code
    outside reports_side_by_side uses no threads at all.
    """
    return (
        getattr(_allowed, "active", False)
        and connection.vendor == "postgresql"
        and not connection.in_atomic_block
        and not getattr(_on_pool, "active", False)
    )


class Pending(Generic[Report]):
    """A report started by ``start``; ``result`` waits for it and returns it."""

    def __init__(
        self, compute: Callable[[], Report], future: Future[Report] | None
    ) -> None:
        self._compute = compute
        self._future = future

    def result(self) -> Report:
        """Return the report, or raise what computing it raised.

        A report that could not start on a thread of its own is computed
        here, in this thread.
        """
        if self._future is not None:
            return self._future.result()
        with short_queries():
            return self._compute()


def start(compute: Callable[[], Report]) -> Pending[Report]:
    """Start computing a report on a thread of its own, where that is safe."""
    if not can_run_side_by_side():
        return Pending(compute, None)
    return Pending(compute, _threads().submit(_on_own_connection, compute))
