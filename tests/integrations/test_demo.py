"""The setup_demo command on the generated sample."""

import re
from datetime import UTC, date, datetime, timedelta
from io import StringIO

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from customers.models import Account
from integrations.demo import replay_history
from lifecycle.models import StageChange
from metrics.models import FactRefresh
from tests.factories import make_account
from triggers.models import Firing, OutboxEmail, Sweep

pytestmark = pytest.mark.django_db

# The sample's last usage day is 2024-12-31 (integrations.sample.LAST_DAY).
LAST_DAY_END = datetime(2025, 1, 1, tzinfo=UTC)


def setup_demo(*args):
    out = StringIO()
    call_command("setup_demo", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


@pytest.fixture
def var_dir(settings, tmp_path):
    settings.VAR_DIR = tmp_path
    return tmp_path


def test_setup_demo_replays_and_prints_credentials(var_dir, mailoutbox):
    output = setup_demo("--replay-days", "30")

    assert "Replaying 2024-12-02 to 2024-12-31, every 1 day(s);" in output
    assert Sweep.objects.count() == 30
    assert Firing.objects.exists()
    printed = re.search(r"Password: +(\S+)", output)
    assert printed is not None
    password = printed.group(1)
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser
    assert admin.is_staff
    assert admin.check_password(password)
    assert "Username:   admin" in output
    assert (var_dir / "sample-data" / "ravenstack").is_dir()
    refresh = FactRefresh.last()
    assert refresh is not None
    assert refresh.accounts == Account.objects.count()
    assert f"Dashboard facts refreshed for {refresh.accounts} accounts." in output


def test_setup_demo_sends_only_recent_emails(var_dir, mailoutbox):
    output = setup_demo("--replay-days", "30")

    # Sweeps run at the end of each day, so the last 7 days are the sweeps
    # from 2024-12-26 00:00 to 2025-01-01 00:00.
    horizon = LAST_DAY_END - timedelta(days=6)
    recent = OutboxEmail.objects.filter(firing__fired_at__gte=horizon)
    older = OutboxEmail.objects.filter(firing__fired_at__lt=horizon)
    assert recent.exists()
    assert older.exists()
    assert set(recent.values_list("status", flat=True)) == {"sent"}
    assert set(older.values_list("status", flat=True)) == {"skipped"}
    assert sorted(message.to[0] for message in mailoutbox) == sorted(
        recent.values_list("to_email", flat=True)
    )
    assert f"Sent {recent.count()} emails of the last 7 days" in output
    assert f"{older.count()} older emails are in the outbox as skipped" in output


def test_setup_demo_deliver_days_zero_sends_none(var_dir, mailoutbox):
    setup_demo("--replay-days", "10", "--deliver-days", "0")

    assert OutboxEmail.objects.exists()
    assert set(OutboxEmail.objects.values_list("status", flat=True)) == {"skipped"}
    assert mailoutbox == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replay-days", "0"], "--replay-days 0 is invalid"),
        (["--step-days", "0"], "--step-days 0 is invalid"),
        (["--stage-step-days", "0"], "--stage-step-days 0 is invalid"),
        (["--deliver-days", "-1"], "--deliver-days -1 is invalid"),
    ],
)
def test_setup_demo_rejects_bad_days(var_dir, args, message):
    with pytest.raises(CommandError, match=message):
        setup_demo(*args)


def test_replay_evaluates_stages_every_step_days():
    make_account(signup_date=date(2024, 6, 1))

    report = replay_history(date(2024, 6, 1), date(2024, 6, 10), stage_step_days=7)

    # Stages on 1 June, on 8 June (7 days later) and on the last day, 10 June;
    # health scores and sweeps on all ten days.
    assert report.stage_evaluations == 3
    assert report.steps == 10
    assert Sweep.objects.count() == 10
    # The first evaluation places the account in the first stage.
    assert StageChange.objects.filter(source="initial").count() == 1
