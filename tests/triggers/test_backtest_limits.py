"""Backtest periods before 2000 are rejected, and failures read once."""

from datetime import date

import pytest
from django.urls import reverse

from tests.triggers.factories import make_trigger
from triggers import backtest_runs
from triggers.backtest import BacktestPeriodError, check_period
from triggers.backtest_runs import compute_run, create_run
from triggers.models import BacktestRun

pytestmark = pytest.mark.django_db

TODAY = date(2024, 6, 15)


def page_text(response):
    return " ".join(response.content.decode().split())


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (date(1, 1, 1), date(1, 1, 5)),
        (date(1999, 12, 31), date(2000, 1, 5)),
    ],
)
def test_check_period_rejects_start_before_2000(start, end):
    with pytest.raises(BacktestPeriodError) as error:
        check_period(start, end, today=TODAY)

    assert start.isoformat() in str(error.value)
    assert "2000-01-01" in str(error.value)


def test_check_period_accepts_start_in_2000():
    check_period(date(2000, 1, 1), date(2000, 1, 5), today=TODAY)


def test_backtest_form_rejects_year_one(admin_client):
    trigger = make_trigger({"kind": "inactivity", "days": 10}, is_active=False)
    url = reverse("admin:triggers_trigger_backtest", args=[trigger.pk])

    response = admin_client.post(
        url, {"start": "0001-01-01", "end": "0001-01-05", "step": "day"}
    )

    assert response.status_code == 200
    assert "0001-01-01" in page_text(response)
    assert "2000-01-01" in page_text(response)
    assert not BacktestRun.objects.exists()


def test_unexpected_failure_has_one_prefix(admin_client, monkeypatch):
    trigger = make_trigger({"kind": "inactivity", "days": 10}, is_active=False)
    run = create_run(trigger, None, date(2024, 6, 1), date(2024, 6, 5), "day")

    def broken(*args, **kwargs):
        raise OverflowError("date value out of range")

    monkeypatch.setattr(backtest_runs, "backtest_trigger", broken)
    run = compute_run(run.pk)
    url = reverse("admin:triggers_trigger_backtest_run", args=[trigger.pk, run.pk])
    text = page_text(admin_client.get(url))

    assert run.status == "failed"
    assert "date value out of range" in run.error
    assert "OverflowError" not in run.error
    assert text.count("The backtest failed") == 1
