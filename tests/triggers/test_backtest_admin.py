"""The backtest page: runs requested in the admin, computed now or by a task."""

import csv
import io
import logging
from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_contact
from tests.triggers.factories import make_trigger
from triggers import backtest_runs, backtest_tasks
from triggers.backtest import backtest_trigger, default_period
from triggers.backtest_runs import (
    SYNC_MAX_EVALUATIONS,
    backtest_rows,
    compute_run,
    create_run,
)
from triggers.models import BacktestRun, Firing, Trigger

pytestmark = pytest.mark.django_db


CHART = 'aria-label="Would fire per week"'
REFRESH = 'http-equiv="refresh"'


def page_text(response):
    return " ".join(response.content.decode().split())


def backtest_url(trigger):
    return reverse("admin:triggers_trigger_backtest", args=[trigger.pk])


def run_url(run):
    return reverse("admin:triggers_trigger_backtest_run", args=[run.trigger_id, run.pk])


def quiet_trigger():
    return make_trigger({"kind": "inactivity", "days": 10}, is_active=False)


def long_period():
    """Return a daily period one evaluation longer than the synchronous limit."""
    end = timezone.localdate()
    return end - timedelta(days=SYNC_MAX_EVALUATIONS), end


def period_data(start, end, step="day"):
    return {"start": start.isoformat(), "end": end.isoformat(), "step": step}


class DelaySpy:
    """Records the run ids given to run_backtest.delay instead of running them."""

    def __init__(self):
        self.run_ids = []

    def __call__(self, run_id):
        self.run_ids.append(run_id)


@pytest.fixture
def delay_spy(monkeypatch):
    spy = DelaySpy()
    monkeypatch.setattr(backtest_tasks.run_backtest, "delay", spy)
    return spy


def test_backtest_page_offers_last_twelve_weeks(admin_client):
    trigger = quiet_trigger()

    response = admin_client.get(backtest_url(trigger))

    start, end = default_period()
    text = page_text(response)
    assert response.status_code == 200
    assert f'value="{start.isoformat()}"' in text
    assert f'value="{end.isoformat()}"' in text
    assert 'method="post"' in text
    assert CHART not in text
    assert REFRESH not in text


def test_short_backtest_computed_in_request(admin_client, delay_spy):
    make_contact(added_at=timezone.now() - timedelta(days=400))
    trigger = quiet_trigger()
    start, end = default_period()

    response = admin_client.post(backtest_url(trigger), period_data(start, end))

    run = BacktestRun.objects.get()
    assert response.status_code == 302
    assert response.url == run_url(run)
    assert delay_spy.run_ids == []
    assert run.status == "done"
    assert run.rows == backtest_rows(backtest_trigger(trigger, start, end, "day"))
    assert not Firing.objects.exists()

    page = admin_client.get(response.url)

    text = page_text(page)
    assert page.status_code == 200
    assert CHART in text
    assert text.count("<rect") == 12
    assert "would have fired <strong>1</strong> time" in text
    assert "format=csv" in text
    assert REFRESH not in text


def test_long_backtest_queues_one_task(
    admin_client, delay_spy, django_capture_on_commit_callbacks
):
    make_contact(added_at=timezone.now() - timedelta(days=400))
    trigger = quiet_trigger()
    start, end = long_period()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(backtest_url(trigger), period_data(start, end))

    run = BacktestRun.objects.get()
    assert len(callbacks) == 1
    assert delay_spy.run_ids == [run.pk]
    assert run.status == "queued"
    assert run.rows == []
    assert response.url == run_url(run)

    page = admin_client.get(response.url)

    text = page_text(page)
    assert "Queued at" in text
    assert REFRESH in text
    assert CHART not in text


def test_long_backtest_eager_task_stores_rows(
    admin_client, django_capture_on_commit_callbacks
):
    make_contact(added_at=timezone.now() - timedelta(days=400))
    make_contact(added_at=timezone.now() - timedelta(days=30))
    trigger = quiet_trigger()
    start, end = long_period()

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(backtest_url(trigger), period_data(start, end))

    run = BacktestRun.objects.get()
    assert run.status == "done"
    assert run.error == ""
    assert run.finished_at is not None
    assert run.rows == backtest_rows(backtest_trigger(trigger, start, end, "day"))
    page = admin_client.get(response.url)
    assert CHART in page_text(page)
    assert REFRESH not in page_text(page)


def test_running_run_page_refreshes(admin_client):
    trigger = quiet_trigger()
    start, end = long_period()
    run = create_run(trigger, None, start, end, "day")
    BacktestRun.objects.filter(pk=run.pk).update(
        status="running", started_at=timezone.now()
    )

    text = page_text(admin_client.get(run_url(run)))

    assert "Running since" in text
    assert REFRESH in text


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

    response = admin_client.post(backtest_url(trigger), period_data(start, end))

    assert response.status_code == 200
    assert message in page_text(response)
    assert CHART not in page_text(response)
    assert not BacktestRun.objects.exists()


def test_invalid_condition_creates_no_run(admin_client):
    trigger = quiet_trigger()
    Trigger.objects.filter(pk=trigger.pk).update(condition={"kind": "nope"})
    start, end = default_period()

    response = admin_client.post(backtest_url(trigger), period_data(start, end))

    assert response.status_code == 200
    assert "Invalid condition at $: unknown condition kind" in (
        response.content.decode().replace("&#x27;", "'")
    )
    assert not BacktestRun.objects.exists()


def test_backtest_csv_download(admin_client):
    make_contact(added_at=timezone.now() - timedelta(days=400))
    trigger = quiet_trigger()
    today = timezone.localdate()
    monday = today - timedelta(days=today.weekday())
    start = monday - timedelta(weeks=1)
    created = admin_client.post(
        backtest_url(trigger), period_data(start, today, "week")
    )

    response = admin_client.get(created.url, {"format": "csv"})

    assert response["Content-Type"] == "text/csv"
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.reader(io.StringIO(response.content.decode())))
    assert rows[0][0] == "week_start"
    assert rows[1] == [start.isoformat(), "1", "1", "1", "1"]
    assert rows[2] == [monday.isoformat(), "1", "1", "0", "0"]
    assert len(rows) == 3


def test_backtest_page_lists_runs(admin_client):
    trigger = quiet_trigger()
    start, end = long_period()
    run = create_run(trigger, None, start, end, "week")

    text = page_text(admin_client.get(backtest_url(trigger)))

    assert "Latest backtests of this trigger" in text
    assert run_url(run) in text
    assert "queued" in text


# -- the task and its failures ------------------------------------------------------


def test_failed_run_records_and_logs_error(admin_client, caplog):
    trigger = quiet_trigger()
    start, end = long_period()
    run = create_run(trigger, None, start, end, "day")
    # The condition breaks after the run was requested and before it ran.
    Trigger.objects.filter(pk=trigger.pk).update(condition={"kind": "nope"})

    with caplog.at_level(logging.WARNING, logger="triggers.backtest_runs"):
        status = backtest_tasks.run_backtest.delay(run.pk).get()

    run.refresh_from_db()
    assert status == "failed"
    assert run.status == "failed"
    assert "unknown condition kind 'nope'" in run.error
    assert run.rows == []
    assert run.finished_at is not None
    assert f"Backtest run {run.pk} failed" in caplog.text
    text = page_text(admin_client.get(run_url(run))).replace("&#x27;", "'")
    assert "The backtest failed: $: unknown condition kind 'nope'" in text
    assert REFRESH not in text


def test_unexpected_error_fails_run(monkeypatch, caplog):
    trigger = quiet_trigger()
    start, end = long_period()
    run = create_run(trigger, None, start, end, "day")

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(backtest_runs, "backtest_trigger", broken)
    with caplog.at_level(logging.ERROR, logger="triggers.backtest_runs"):
        run = compute_run(run.pk)

    assert run.status == "failed"
    assert run.error == (
        "unexpected error (disk full); the server log of triggers.backtest_runs "
        "has the details."
    )
    assert "failed unexpectedly" in caplog.text
    assert "RuntimeError: disk full" in caplog.text


def test_done_run_not_computed_again(monkeypatch):
    make_contact(added_at=timezone.now() - timedelta(days=400))
    trigger = quiet_trigger()
    start, end = default_period()
    run = compute_run(create_run(trigger, None, start, end, "day").pk)
    rows = run.rows

    def forbidden(*args, **kwargs):
        raise AssertionError("a done run was computed again")

    monkeypatch.setattr(backtest_runs, "backtest_trigger", forbidden)
    again = backtest_tasks.run_backtest.delay(run.pk).get()

    run.refresh_from_db()
    assert again == "done"
    assert run.rows == rows


def test_run_of_live_worker_not_claimed(monkeypatch):
    trigger = quiet_trigger()
    start, end = default_period()
    run = create_run(trigger, None, start, end, "day")
    BacktestRun.objects.filter(pk=run.pk).update(
        status="running", started_at=timezone.now() - timedelta(minutes=5)
    )
    monkeypatch.setattr(backtest_runs, "backtest_trigger", None)

    assert compute_run(run.pk).status == "running"


def test_stuck_run_computed_again():
    make_contact(added_at=timezone.now() - timedelta(days=400))
    trigger = quiet_trigger()
    start, end = default_period()
    run = create_run(trigger, None, start, end, "day")
    BacktestRun.objects.filter(pk=run.pk).update(
        status="running", started_at=timezone.now() - timedelta(hours=2)
    )

    run = compute_run(run.pk)

    assert run.status == "done"
    assert run.rows == backtest_rows(backtest_trigger(trigger, start, end, "day"))


# -- permissions ------------------------------------------------------------------


def staff_user(client, *codenames):
    user = User.objects.create_user("csm", "csm@example.com", "pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return user


def test_view_permission_allows_running(client):
    user = staff_user(client, "view_trigger")
    trigger = quiet_trigger()
    start, end = default_period()

    response = client.post(backtest_url(trigger), period_data(start, end))

    run = BacktestRun.objects.get()
    assert response.status_code == 302
    assert run.requested_by == user
    assert client.get(response.url).status_code == 200


def test_backtest_forbidden_without_permission(client):
    staff_user(client)
    trigger = quiet_trigger()
    start, end = default_period()
    run = create_run(trigger, None, start, end, "day")

    post = client.post(backtest_url(trigger), period_data(start, end))
    run_page = client.get(run_url(run))

    assert post.status_code == 403
    assert run_page.status_code == 403
    assert BacktestRun.objects.count() == 1


def test_run_page_needs_staff_login(client):
    trigger = quiet_trigger()
    start, end = default_period()
    run = create_run(trigger, None, start, end, "day")

    response = client.get(run_url(run))

    assert response.status_code == 302
    assert "/login/" in response.url


def test_run_of_other_trigger_not_found(admin_client):
    trigger = quiet_trigger()
    other = quiet_trigger()
    start, end = default_period()
    run = create_run(other, None, start, end, "day")

    response = admin_client.get(
        reverse("admin:triggers_trigger_backtest_run", args=[trigger.pk, run.pk])
    )

    assert response.status_code == 404
