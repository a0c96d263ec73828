"""The backtest page: default period, bad periods, weekly table and CSV."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_contact
from tests.triggers.factories import make_trigger
from triggers.backtest import default_period
from triggers.models import Firing

pytestmark = pytest.mark.django_db


CHART = 'aria-label="Would fire per week"'


def page_text(response):
    return " ".join(response.content.decode().split())


def backtest_url(trigger):
    return reverse("admin:triggers_trigger_backtest", args=[trigger.pk])


def quiet_trigger():
    return make_trigger({"kind": "inactivity", "days": 10}, is_active=False)


def test_backtest_page_offers_last_twelve_weeks(admin_client):
    trigger = quiet_trigger()

    response = admin_client.get(backtest_url(trigger))

    start, end = default_period()
    text = page_text(response)
    assert response.status_code == 200
    assert f'value="{start.isoformat()}"' in text
    assert f'value="{end.isoformat()}"' in text
    assert CHART not in text


def test_backtest_page_shows_weeks_and_chart(admin_client):
    make_contact(added_at=timezone.now() - timedelta(days=400))
    trigger = quiet_trigger()
    start, end = default_period()

    response = admin_client.get(
        backtest_url(trigger),
        {"start": start.isoformat(), "end": end.isoformat(), "step": "day"},
    )

    text = page_text(response)
    assert response.status_code == 200
    assert CHART in text
    assert text.count("<rect") == 12
    assert "would have fired <strong>1</strong> time" in text
    assert "format=csv" in text
    assert not Firing.objects.exists()


@pytest.mark.parametrize(
    ("days_from_today", "message"),
    [
        ((-10, -20), "is before the start date"),
        ((-10, 1), "is in the future"),
        ((-1000, -1), "longer than 2 years"),
    ],
)
def test_backtest_page_rejects_bad_periods(admin_client, days_from_today, message):
    trigger = quiet_trigger()
    today = timezone.localdate()
    start, end = (today + timedelta(days=offset) for offset in days_from_today)

    response = admin_client.get(
        backtest_url(trigger),
        {"start": start.isoformat(), "end": end.isoformat(), "step": "day"},
    )

    assert response.status_code == 200
    assert message in page_text(response)
    assert CHART not in page_text(response)


def test_backtest_csv_download(admin_client):
    make_contact(added_at=timezone.now() - timedelta(days=400))
    trigger = quiet_trigger()
    today = timezone.localdate()
    monday = today - timedelta(days=today.weekday())
    start = monday - timedelta(weeks=1)

    response = admin_client.get(
        backtest_url(trigger),
        {
            "start": start.isoformat(),
            "end": today.isoformat(),
            "step": "week",
            "format": "csv",
        },
    )

    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == "week_start"
    assert rows[1] == [start.isoformat(), "1", "1", "1", "1"]
    assert rows[2] == [monday.isoformat(), "1", "1", "0", "0"]
    assert len(rows) == 3
