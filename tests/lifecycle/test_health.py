"""Health with configured weights: stage overrides, CRM source, recompute, task."""

import logging
import math
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from customers.models import Account, HealthScore
from lifecycle.health import compute_health, load_plan, replace_weights
from lifecycle.models import (
    AccountStage,
    HealthSource,
    HealthWeightSet,
    Stage,
    StageChange,
)
from lifecycle.tasks import recompute_health, refresh_lifecycle
from tests.factories import make_account, make_contact, make_event, make_ticket

pytestmark = pytest.mark.django_db

ON = date(2024, 6, 15)
DAY_START = datetime(2024, 6, 15, tzinfo=UTC)
INSIDE = datetime(2024, 6, 1, 10, tzinfo=UTC)


def weight_set(stage: Stage | None = None, **weights: int) -> HealthWeightSet:
    row = HealthWeightSet.objects.create(stage=stage)
    replace_weights(row, weights)
    return row


def place(account: Account, slug: str, at: datetime) -> None:
    stage = Stage.objects.get(slug=slug)
    StageChange.objects.create(
        account=account, to_stage=stage, changed_at=at, source="manual"
    )
    AccountStage.objects.update_or_create(
        account=account, defaults={"stage": stage, "entered_at": at}
    )


def busy_account_with_urgent_ticket() -> Account:
    """An account whose usage is full (100) and support half (50)."""
    account = make_account(seats=1)
    make_event(make_contact(account), INSIDE, quantity=20)
    make_ticket(account, INSIDE, priority="urgent")
    return account


def half_up(value: float) -> int:
    # Scores round halves up (docs/health.md).
    return math.floor(value + 0.5)


def score_of(account: Account, on: date = ON) -> int:
    return HealthScore.objects.get(account=account, scored_on=on).score


def test_default_set_replaces_built_in_weights():
    account = busy_account_with_urgent_ticket()
    weight_set(usage=1, support=3)

    compute_health(ON)

    assert score_of(account) == half_up((1 * 100 + 3 * 50) / 4)


def test_without_sets_built_in_weights_apply():
    account = busy_account_with_urgent_ticket()

    compute_health(ON)

    # Built-in: usage 40 (100), active users 25 (1 of 1 active), support 20
    # (50). CSAT has no data.
    assert score_of(account) == half_up((40 * 100 + 25 * 100 + 20 * 50) / 85)


def test_stage_set_overrides_default():
    in_adoption = busy_account_with_urgent_ticket()
    in_onboarding = busy_account_with_urgent_ticket()
    no_stage = busy_account_with_urgent_ticket()
    place(in_adoption, "adoption", DAY_START - timedelta(days=3))
    place(in_onboarding, "onboarding", DAY_START - timedelta(days=3))
    weight_set(usage=1)
    weight_set(Stage.objects.get(slug="adoption"), support=1)

    compute_health(ON)

    assert score_of(in_adoption) == 50
    assert score_of(in_onboarding) == 100
    assert score_of(no_stage) == 100
    stored = HealthScore.objects.get(account=in_adoption, scored_on=ON)
    assert set(stored.measures) == {"support"}


def test_stage_read_at_start_of_day():
    account = busy_account_with_urgent_ticket()
    place(account, "onboarding", DAY_START - timedelta(days=30))
    # Moved to adoption an hour after the scored day began: still onboarding.
    place(account, "adoption", DAY_START + timedelta(hours=1))
    weight_set(usage=1)
    weight_set(Stage.objects.get(slug="adoption"), support=1)

    compute_health(ON)
    compute_health(ON + timedelta(days=1))

    assert score_of(account) == 100
    # The next day reads adoption. The urgent ticket is still open then.
    assert score_of(account, ON + timedelta(days=1)) == 50


def test_stage_set_from_crm_property():
    account = busy_account_with_urgent_ticket()
    Account.objects.filter(pk=account.pk).update(properties={"cs_health": "64"})
    place(account, "renewal", DAY_START - timedelta(days=1))
    HealthWeightSet.objects.create(
        stage=Stage.objects.get(slug="renewal"),
        source=HealthSource.CRM_PROPERTY,
        crm_property="cs_health",
    )

    compute_health(ON)

    assert score_of(account) == 64
    account.refresh_from_db()
    assert account.health_score == 64


def test_set_of_unregistered_measure_skipped(caplog):
    account = busy_account_with_urgent_ticket()
    weight_set(usage=1)
    stale = weight_set(Stage.objects.get(slug="adoption"), retired_measure=5)
    place(account, "adoption", DAY_START - timedelta(days=1))

    with caplog.at_level(logging.WARNING, logger="lifecycle.health"):
        compute_health(ON)

    # The stage's set is left with no weight, so the default set scores.
    assert score_of(account) == 100
    assert f"Skipped health weight set {stale.pk}" in caplog.text
    assert "retired_measure" in caplog.text


def test_unknown_weight_ignored_beside_known():
    account = busy_account_with_urgent_ticket()
    weight_set(support=2, retired_measure=5)

    compute_health(ON)

    assert score_of(account) == 50


def test_load_plan_maps_only_stages_with_sets():
    adopting = make_account()
    onboarding = make_account()
    place(adopting, "adoption", DAY_START - timedelta(days=1))
    place(onboarding, "onboarding", DAY_START - timedelta(days=1))
    weight_set(Stage.objects.get(slug="adoption"), usage=1)

    plan = load_plan(ON)

    assert list(plan.by_account) == [adopting.pk]
    assert plan.by_account[adopting.pk].name == "stage adoption"


def test_command_recompute_is_idempotent():
    account = busy_account_with_urgent_ticket()
    weight_set(usage=1, support=1)

    call_command("compute_health", "--date", ON.isoformat())
    first = HealthScore.objects.get(account=account, scored_on=ON)
    call_command("compute_health", "--date", ON.isoformat())

    second = HealthScore.objects.get(account=account, scored_on=ON)
    assert HealthScore.objects.filter(account=account).count() == 1
    assert second.pk == first.pk
    assert second.score == first.score == 75
    assert second.measures == first.measures


def test_command_scores_named_accounts():
    chosen = make_account(external_id="ACME-1")
    other = make_account()

    call_command("compute_health", "--date", "2024-06-15", "--account", "ACME-1")

    assert HealthScore.objects.filter(account=chosen).count() == 1
    assert not HealthScore.objects.filter(account=other).exists()


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["--date", "15/06/2024"], "--date '15/06/2024' is invalid"),
        (["--account", "NOPE-9"], "account NOPE-9 not found"),
    ],
)
def test_command_rejects_bad_input(arguments, message):
    with pytest.raises(CommandError, match=message):
        call_command("compute_health", *arguments)


def test_task_scores_with_configured_weights(monkeypatch):
    account = busy_account_with_urgent_ticket()
    weight_set(support=1)

    result = recompute_health.delay(ON.isoformat()).get()

    assert result == {"on": "2024-06-15", "scored": 1, "unscored": 0}
    assert score_of(account) == 50


def test_refresh_lifecycle_uses_configured_weights():
    account = make_account(seats=1)
    make_ticket(account, datetime.now(tz=UTC) - timedelta(days=2), priority="high")
    weight_set(support=1)

    result = refresh_lifecycle.delay().get()

    assert result["health_scores"] == 1
    account.refresh_from_db()
    assert account.health_score == 75


def queries_for_accounts(count: int) -> int:
    adoption = Stage.objects.get(slug="adoption")
    with transaction.atomic():
        weight_set(usage=1, support=1, csat=1)
        weight_set(adoption, usage=1, active_users=1, learning=1)
        for index in range(count):
            account = busy_account_with_urgent_ticket()
            if index % 2:
                place(account, "adoption", DAY_START - timedelta(days=1))
        with CaptureQueriesContext(connection) as queries:
            assert compute_health(ON).scored == count
        transaction.set_rollback(True)
    return len(queries.captured_queries)


def test_query_count_independent_of_accounts():
    assert queries_for_accounts(4) == queries_for_accounts(40)
