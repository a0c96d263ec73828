"""The event path with a real worker: an NPS promoter is thanked in seconds."""

import math
import time

import pytest
import redis
from django.utils import timezone

from config.celery import app as celery_app
from customers import services as customers
from tests.factories import make_contact
from tests.triggers.factories import make_template, make_trigger
from tests.triggers.test_exactly_once import (
    Worker,
    clear_broker,
    live_broker,  # noqa: F401  (a fixture used by this module)
    mail_files,
    stop_workers,
    wait_for,
)
from triggers.models import Firing, OutboxEmail, Sweep

NPS_PROMOTER = {"kind": "survey_score", "survey": "nps", "min": 9, "max": 10, "days": 1}
# The spec: "NPS 9-10, then a thank-you email" within a few seconds.
PROMOTER_EMAIL_SECONDS = 5
# The worker coalesces an account's changes into one run per second.
COALESCE_SECONDS = 1


@pytest.fixture(scope="module")
def event_worker(request, tmp_path_factory, django_db_setup):
    """One worker for the module, since starting one takes seconds.

    It starts after the test database exists, whose name the worker is given.
    """
    if not celery_app.conf.broker_url.startswith("redis://"):
        pytest.skip("set CELERY_BROKER_URL to a Redis URL to run the worker tests")
    clear_broker()
    worker = Worker(
        tmp_path_factory.mktemp("events"),
        "events",
        NUDGEPATH_EVENT_COALESCE_SECONDS=str(COALESCE_SECONDS),
    )
    try:
        worker.wait_ready()
        yield worker
    finally:
        stop_workers([worker])
        clear_broker()


pytestmark = [
    pytest.mark.worker,
    pytest.mark.usefixtures("live_broker"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_promoter_thanked_within_seconds(event_worker):
    contact = make_contact(first_name="Nia")
    template = make_template(subject="Thank you, {{ contact.first_name }}")
    trigger = make_trigger(
        NPS_PROMOTER, occurrence="survey_response", email_template=template
    )
    mail_dir = event_worker.log_path.parent

    started = time.monotonic()
    response = customers.record_survey_response(contact, "nps", 10, timezone.now())
    wait_for(
        lambda: (
            OutboxEmail.objects.filter(contact=contact, status="sent").exists()
            and any("Thank you, Nia" in text for text in mail_files(mail_dir))
        ),
        "the thank-you email",
        [event_worker],
    )
    elapsed = time.monotonic() - started

    assert elapsed < PROMOTER_EMAIL_SECONDS, f"took {elapsed:.1f} s"
    firing = Firing.objects.get(trigger=trigger)
    assert firing.contact_id == contact.pk
    assert firing.occurrence_key == f"response:{response.pk}"


def test_burst_of_events_coalesced(event_worker):
    contact = make_contact()
    heavy_use = make_trigger(
        {"kind": "event_count", "days": 1, "op": ">=", "value": 1000}
    )
    scheduled_key = f"nudgepath:changes:{contact.account_id}:scheduled"
    client = redis.Redis.from_url(celery_app.conf.broker_url)

    started = time.monotonic()
    for _ in range(1000):
        customers.record_usage_event(contact, "Report Run", timezone.now())
    burst_seconds = time.monotonic() - started
    # The firing needs all 1,000 events, so it shows that the last change
    # was evaluated; the key goes when the chain of runs has ended.
    wait_for(
        lambda: (
            Firing.objects.filter(trigger=heavy_use).exists()
            and not client.exists(scheduled_key)
        ),
        "the evaluations to settle",
        [event_worker],
    )

    # The first change runs at once, then one run per window while changes
    # keep coming, and one for the changes of the last window.
    evaluations = Sweep.objects.count()
    assert 1 <= evaluations <= 2 + math.ceil(burst_seconds / COALESCE_SECONDS)
    assert Firing.objects.filter(trigger=heavy_use).count() == 1
