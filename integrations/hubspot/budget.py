"""A request budget in Redis that every worker calling HubSpot shares.

HubSpot counts requests per account, whichever process sends them, so a
per-process limiter would let two workers together exceed the limit. Each
request takes one unit from fixed windows in Redis: ten seconds and a
UTC day for every request, and one second for search requests, which
HubSpot limits separately.
"""

import logging
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings

logger = logging.getLogger(__name__)

KEY_PREFIX = "nudgepath:hubspot:budget"


class DailyLimitReached(RuntimeError):
    """The day's requests are used up, so the run stops with its cursor saved."""


@dataclass(frozen=True)
class Window:
    name: str
    seconds: int
    limit: int


def windows(search: bool) -> list[Window]:
    """Return the windows a request takes a unit from, from the settings."""
    taken = [
        Window("10s", 10, settings.NUDGEPATH_HUBSPOT_REQUESTS_PER_10_SECONDS),
    ]
    if search:
        taken.append(
            Window("search", 1, settings.NUDGEPATH_HUBSPOT_SEARCH_REQUESTS_PER_SECOND)
        )
    return taken


class RequestBudget:
    """Shared counters of one HubSpot account's requests."""

    def __init__(
        self,
        client: redis.Redis,
        account_key: str,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client = client
        self.prefix = f"{KEY_PREFIX}:{account_key}"
        self.sleep = sleep
        self.clock = clock

    def acquire(self, search: bool = False) -> None:
        """Take one request from every window, waiting for the next window if full.

        Raises DailyLimitReached when the day's limit is used up, because
        waiting for the next UTC day inside a task would hold a worker.
        """
        self._take_daily()
        while True:
            now = self.clock()
            full = self._first_full_window(now, windows(search))
            if full is None:
                return
            wait = (int(now // full.seconds) + 1) * full.seconds - now
            logger.info(
                "HubSpot budget %s of %s requests is used up; waiting %.0f ms",
                full.name,
                full.limit,
                wait * 1000,
            )
            self.sleep(wait + random.uniform(0, 0.05))

    def _take_daily(self) -> None:
        day = datetime.now(UTC).strftime("%Y-%m-%d")
        key = f"{self.prefix}:day:{day}"
        pipe = self.client.pipeline()
        pipe.incr(key)
        pipe.expire(key, 2 * 24 * 60 * 60)
        used = int(pipe.execute()[0])
        limit = settings.NUDGEPATH_HUBSPOT_REQUESTS_PER_DAY
        if used > limit:
            raise DailyLimitReached(
                f"the {limit} HubSpot requests of {day} (UTC) are used up; resume "
                "the failed sync run in the admin after midnight UTC"
            )

    def _first_full_window(self, now: float, taken: list[Window]) -> Window | None:
        """Count the request in each window; return the first one over its limit.

        A request that finds a window full takes its units back from the
        others, so waiting requests do not use up the budget of the next
        window.
        """
        keys = [f"{self.prefix}:{w.name}:{int(now // w.seconds)}" for w in taken]
        pipe = self.client.pipeline()
        for key, window in zip(keys, taken, strict=True):
            pipe.incr(key)
            pipe.expire(key, 2 * window.seconds)
        counts = pipe.execute()[0::2]
        for index, window in enumerate(taken):
            if int(counts[index]) > window.limit:
                pipe = self.client.pipeline()
                for key in keys:
                    pipe.decr(key)
                pipe.execute()
                return window
        return None


def shared_budget(account_key: str) -> RequestBudget | None:
    """Return the budget on the configured Redis, or None without one."""
    url = settings.NUDGEPATH_HUBSPOT_REDIS_URL
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    return RequestBudget(redis.Redis.from_url(url), account_key)
