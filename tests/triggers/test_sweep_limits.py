"""Sweep and replay instants: no future replay, no ancient instant, a sweep cap."""

from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from tests.factories import make_contact
from tests.triggers.factories import make_template, make_trigger
from triggers.evaluation import EARLIEST_INSTANT, MAX_REPLAY_SWEEPS
from triggers.models import Firing, OutboxEmail, Sweep
from triggers.services import SweepReport, replay, run_sweep

pytestmark = pytest.mark.django_db

# A contact added in the factory's past has no usage, so it matches at once.
INACTIVE_10_DAYS = {"kind": "inactivity", "days": 10}


def evaluate(*args):
    out = StringIO()
    call_command("evaluate_triggers", *args, stdout=out, stderr=StringIO(), verbosity=0)
    return out.getvalue()


@pytest.fixture
def matching_trigger():
    make_contact()
    return make_trigger(INACTIVE_10_DAYS, email_template=make_template())


def assert_nothing_written():
    assert not Sweep.objects.exists()
    assert not Firing.objects.exists()
    assert not OutboxEmail.objects.exists()


def test_command_rejects_replay_into_future(matching_trigger):
    tomorrow = timezone.now().date() + timedelta(days=1)
    after = tomorrow + timedelta(days=1)

    with pytest.raises(CommandError) as error:
        evaluate("--replay-from", str(tomorrow), "--replay-to", str(after))

    assert f"--replay-to {after.isoformat()} is in the future" in str(error.value)
    assert_nothing_written()


def test_command_replay_may_end_today(matching_trigger):
    today = timezone.now().date()

    output = evaluate("--replay-from", str(today), "--replay-to", str(today))

    assert "Sweeps run: 1\n" in output


def test_replay_service_rejects_future_end(matching_trigger):
    start = timezone.now() - timedelta(days=1)
    end = timezone.now() + timedelta(days=1)

    with pytest.raises(ValueError, match="is in the future") as error:
        replay(start, end)

    assert end.isoformat() in str(error.value)
    assert_nothing_written()


@pytest.mark.parametrize(
    "args",
    [
        ["--at", "0001-01-01"],
        ["--at", "1999-12-31T23:59:59+00:00"],
        ["--replay-from", "0001-01-01", "--replay-to", "0001-01-02"],
    ],
)
def test_command_rejects_instant_before_2000(matching_trigger, args):
    with pytest.raises(CommandError) as error:
        evaluate(*args)

    assert args[1] in str(error.value)
    assert "2000-01-01" in str(error.value)
    assert_nothing_written()


def test_command_accepts_first_allowed_day(matching_trigger):
    output = evaluate("--at", "2000-01-01T00:00:00+00:00")

    assert "Triggers evaluated: 1\n" in output
    assert Sweep.objects.get().as_of == EARLIEST_INSTANT


@pytest.mark.parametrize(
    ("start", "end"),
    [
        (datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 2, tzinfo=UTC)),
        (datetime(1999, 12, 31, tzinfo=UTC), datetime(2000, 1, 2, tzinfo=UTC)),
    ],
)
def test_replay_service_rejects_start_before_2000(matching_trigger, start, end):
    with pytest.raises(ValueError, match="before 2000-01-01") as error:
        replay(start, end)

    assert start.isoformat() in str(error.value)
    assert_nothing_written()


def test_run_sweep_rejects_instant_before_2000(matching_trigger):
    with pytest.raises(ValueError, match="before 2000-01-01") as error:
        run_sweep(datetime(1, 1, 1, tzinfo=UTC))

    assert "0001-01-01T00:00:00+00:00" in str(error.value)
    assert_nothing_written()


def test_command_rejects_replay_over_sweep_limit(matching_trigger):
    # 2000-01-01 to 2026-01-01 daily is 9,498 sweeps: 26 years of 365 days
    # plus the 7 leap days of 2000-2024, plus 1 because both ends count.
    expected_sweeps = (date(2026, 1, 1) - date(2000, 1, 1)).days + 1

    with pytest.raises(CommandError) as error:
        evaluate("--replay-from", "2000-01-01", "--replay-to", "2026-01-01")

    message = str(error.value)
    assert f"{expected_sweeps:,} sweeps" in message
    assert f"{MAX_REPLAY_SWEEPS:,}" in message
    assert "split the period" in message
    assert_nothing_written()


def test_command_replay_limit_counts_step_days(monkeypatch):
    # Weekly over the same 26 years is 9,497 days // 7 + 1 = 1,357 sweeps,
    # under the limit. The sweeps themselves are stubbed to keep this fast.
    monkeypatch.setattr(
        "triggers.evaluation.run_sweep", lambda *args, **kwargs: SweepReport(sweeps=1)
    )

    output = evaluate(
        "--replay-from",
        "2000-01-01",
        "--replay-to",
        "2026-01-01",
        "--step-days",
        "7",
    )

    assert "Sweeps run: 1357\n" in output


def test_replay_service_rejects_too_many_sweeps(matching_trigger):
    start = datetime(2000, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=MAX_REPLAY_SWEEPS)

    with pytest.raises(ValueError) as error:
        replay(start, end)

    assert f"{MAX_REPLAY_SWEEPS + 1:,} sweeps" in str(error.value)
    assert_nothing_written()


def test_replay_service_accepts_exactly_the_limit(monkeypatch):
    monkeypatch.setattr(
        "triggers.evaluation.run_sweep", lambda *args, **kwargs: SweepReport(sweeps=1)
    )
    start = datetime(2000, 1, 1, tzinfo=UTC)
    end = start + timedelta(days=MAX_REPLAY_SWEEPS - 1)

    report = replay(start, end)

    assert report.sweeps == MAX_REPLAY_SWEEPS
