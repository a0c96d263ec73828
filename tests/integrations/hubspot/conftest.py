"""A fake HubSpot on 127.0.0.1, a connection to it and mappings of its properties."""

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from integrations.hubspot.models import (
    HubSpotConnection,
    ObjectType,
    PropertyMapping,
    Target,
    ValueType,
)
from tests.integrations.hubspot.fake_hubspot import FakeHubSpot

TOKEN = "pat-na1-11111111-2222-3333-4444-555555555555"
APP_SECRET = "app-secret-for-tests"
START = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


def at(minutes: int) -> datetime:
    """Return START plus minutes: the last-modified dates of fake records."""
    return START + timedelta(minutes=minutes)


@pytest.fixture
def fake_hubspot(settings) -> Iterator[FakeHubSpot]:
    fake = FakeHubSpot(TOKEN)
    fake.start()
    # The shared budget is checked on its own; here it must not slow the tests.
    settings.NUDGEPATH_HUBSPOT_SEARCH_REQUESTS_PER_SECOND = 10_000
    settings.NUDGEPATH_HUBSPOT_REQUESTS_PER_10_SECONDS = 10_000
    settings.NUDGEPATH_HUBSPOT_RETRY_JITTER_MS = 0
    yield fake
    fake.stop()


@pytest.fixture
def connection(db, fake_hubspot) -> HubSpotConnection:
    connection = HubSpotConnection.objects.create(
        name="Test portal",
        access_token=TOKEN,
        app_secret=APP_SECRET,
        host=fake_hubspot.url,
    )
    company = ObjectType.COMPANY
    contact = ObjectType.CONTACT
    rows = [
        (company, "name", Target.NAME, ValueType.STRING, {}, ""),
        (company, "renewal_date", Target.RENEWAL_DATE, ValueType.DATE, {}, ""),
        (company, "seats", Target.SEATS, ValueType.INTEGER, {}, ""),
        (company, "mrr", Target.MRR, ValueType.NUMBER, {}, ""),
        (company, "is_trial", Target.IS_TRIAL, ValueType.BOOLEAN, {}, ""),
        (
            company,
            "plan_tier",
            Target.PLAN,
            ValueType.ENUMERATION,
            {"basic": "Basic", "pro": "Pro", "enterprise": "Enterprise"},
            "",
        ),
        (company, "health", Target.HEALTH_SCORE, ValueType.INTEGER, {}, ""),
        (company, "nps_latest", Target.PROPERTY, ValueType.INTEGER, {}, "nps"),
        (company, "hubspot_owner_id", Target.PROPERTY, ValueType.STRING, {}, ""),
        (contact, "email", Target.EMAIL, ValueType.STRING, {}, ""),
        (contact, "firstname", Target.FIRST_NAME, ValueType.STRING, {}, ""),
        (contact, "lastname", Target.LAST_NAME, ValueType.STRING, {}, ""),
        (contact, "jobtitle", Target.ROLE, ValueType.STRING, {}, ""),
        (contact, "is_champion", Target.IS_CHAMPION, ValueType.BOOLEAN, {}, ""),
    ]
    for object_type, name, target, value_type, options, custom_name in rows:
        PropertyMapping.objects.create(
            connection=connection,
            object_type=object_type,
            hubspot_property=name,
            target=target,
            value_type=value_type,
            options=options,
            custom_name=custom_name,
        )
    return connection
