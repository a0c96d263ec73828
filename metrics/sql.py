"""Session settings for the dashboard's queries."""

from collections.abc import Iterator
from contextlib import contextmanager

from django.db import connection


@contextmanager
def short_queries() -> Iterator[None]:
    """Run the enclosed queries with PostgreSQL's JIT compilation off.

    The dashboard's aggregates over 100,000-row tables cost more than the
    planner's jit_above_cost (100,000 by default in PostgreSQL 15), so each
    would be compiled first. They run for tens of milliseconds, and in a
    full-size benchmark (docs/benchmarks.md) compiling them made the page
    slower than it saved. The previous setting is restored on exit. Other
    databases have no JIT, so nothing changes there.
    """
    if connection.vendor != "postgresql":
        yield
        return

    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting('jit')")
        previous = cursor.fetchone()[0]
        cursor.execute("SET jit = off")
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT set_config('jit', %s, false)", [previous])
