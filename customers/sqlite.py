"""SQL functions that SQLite lacks, registered on each SQLite connection.

The embedded demo runs on SQLite, which has no time zone support, so the
conditions that need the start of a local day call this Python function.
"""

from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from django.db.backends.signals import connection_created

SQLITE_LOCAL_DAY_START = "nudgepath_local_day_start"


def local_day_start(day: str | None, zone: str | None) -> str | None:
    """Return the UTC instant at which a date starts in a time zone.

    The result is written as Django stores datetimes in SQLite, so it
    compares as text with timestamp columns. The date may carry a time, as
    SQLite's date arithmetic returns; only its first ten characters count.
    """
    if day is None or zone is None:
        return None
    start = datetime.combine(date.fromisoformat(day[:10]), time(), ZoneInfo(zone))
    return start.astimezone(ZoneInfo("UTC")).strftime("%Y-%m-%d %H:%M:%S")


def register_functions(sender: Any, connection: Any, **kwargs: Any) -> None:
    """Add the functions above to a new SQLite connection."""
    if connection.vendor != "sqlite":
        return
    connection.connection.create_function(
        SQLITE_LOCAL_DAY_START, 2, local_day_start, deterministic=True
    )


connection_created.connect(register_functions, dispatch_uid="nudgepath-sqlite")
