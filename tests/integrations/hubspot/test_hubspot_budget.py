"""The request budget that workers share in Redis."""

import uuid

import pytest
import redis

from integrations.hubspot.budget import DailyLimitReached, RequestBudget


@pytest.fixture
def redis_client(settings):
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("the shared budget needs CELERY_BROKER_URL on Redis")
    return redis.Redis.from_url(settings.CELERY_BROKER_URL)


def budget(client, key, waits, clock=None):
    if clock is None:
        return RequestBudget(client, key, sleep=waits.append)
    return RequestBudget(client, key, sleep=waits.append, clock=lambda: clock[0])


def test_requests_within_the_limit_do_not_wait(redis_client, settings):
    settings.NUDGEPATH_HUBSPOT_REQUESTS_PER_10_SECONDS = 3
    waits: list[float] = []
    shared = budget(redis_client, uuid.uuid4().hex, waits)

    for _ in range(3):
        shared.acquire()

    assert waits == []


def test_two_workers_share_one_limit(redis_client, settings):
    settings.NUDGEPATH_HUBSPOT_REQUESTS_PER_10_SECONDS = 3
    # A fixed clock in the middle of a ten-second window: the waiting worker
    # must wait until the window ends, 5 seconds later.
    clock = [1_700_000_005.0]
    key = uuid.uuid4().hex
    first_waits: list[float] = []
    second_waits: list[float] = []
    first = budget(redis_client, key, first_waits, clock)
    second = budget(redis_client, key, second_waits, clock)

    def next_window(seconds):
        second_waits.append(seconds)
        clock[0] += seconds

    second.sleep = next_window
    first.acquire()
    first.acquire()
    second.acquire()
    second.acquire()

    assert first_waits == []
    assert len(second_waits) == 1
    assert 5.0 <= second_waits[0] <= 5.05


def test_search_requests_have_their_own_limit(redis_client, settings):
    settings.NUDGEPATH_HUBSPOT_REQUESTS_PER_10_SECONDS = 100
    settings.NUDGEPATH_HUBSPOT_SEARCH_REQUESTS_PER_SECOND = 2
    clock = [1_700_000_000.5]
    waits: list[float] = []
    shared = budget(redis_client, uuid.uuid4().hex, waits, clock)

    def advance(seconds):
        waits.append(seconds)
        clock[0] += seconds

    shared.sleep = advance
    shared.acquire(search=True)
    shared.acquire(search=True)
    shared.acquire()
    shared.acquire(search=True)

    assert len(waits) == 1
    assert 0.5 <= waits[0] <= 0.55


def test_daily_limit_stops_the_caller(redis_client, settings):
    settings.NUDGEPATH_HUBSPOT_REQUESTS_PER_DAY = 2
    shared = budget(redis_client, uuid.uuid4().hex, [])
    shared.acquire()
    shared.acquire()

    with pytest.raises(DailyLimitReached, match="the 2 HubSpot requests of"):
        shared.acquire()
