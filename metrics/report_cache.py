"""Computed dashboard reports kept for a short time, per report and filter set.

A dashboard load, its CSV downloads and a reload within
NUDGEPATH_DASHBOARD_CACHE_SECONDS share one computation of each report.
Triggers keep the roll-ups, so the cache gets no signal when a row changes.
A cached report can therefore be up to that many seconds old.
A rebuild of a roll-up clears every cached report at once by moving the
generation number that each key contains.
"""

import hashlib
import logging
from collections.abc import Callable, Hashable
from typing import TypeVar

from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

Report = TypeVar("Report")

GENERATION_KEY = "metrics:dashboard:generation"


def _generation() -> int:
    generation = cache.get(GENERATION_KEY)
    if generation is None:
        # add() keeps a number another process stored in the meantime.
        cache.add(GENERATION_KEY, 1, timeout=None)
        generation = cache.get(GENERATION_KEY, 1)
    return int(generation)


def cached_report(
    name: str, filters: tuple[Hashable, ...], compute: Callable[[], Report]
) -> Report:
    """Return the report ``name`` for ``filters``, computing it on a miss.

    ``filters`` must name everything the report depends on, such as the
    course id, the scope and the as-of day, by values whose repr is stable:
    ids, dates, strings and dataclasses of them, not model instances.
    """
    seconds = settings.NUDGEPATH_DASHBOARD_CACHE_SECONDS
    if seconds <= 0:
        return compute()

    digest = hashlib.sha256(repr(filters).encode()).hexdigest()
    key = f"metrics:dashboard:{_generation()}:{name}:{digest}"
    report = cache.get(key)
    if report is None:
        report = compute()
        cache.set(key, report, timeout=seconds)
    return report


def clear_cached_reports() -> None:
    """Make every cached report stale, after a roll-up was rebuilt."""
    try:
        cache.incr(GENERATION_KEY)
    except ValueError:
        cache.add(GENERATION_KEY, 1, timeout=None)
    logger.info("Cleared the cached dashboard reports")
