"""Manual stage overrides, stage history and criteria status."""

from datetime import UTC, datetime, timedelta

import pytest

from lifecycle.models import AccountStage, CriterionMet, Stage, StageChange
from lifecycle.services import (
    criteria_status,
    evaluate_stages,
    set_stage,
    stage_history,
)
from tests.factories import NOW, make_account
from tests.lifecycle.helpers import onboarded_account

pytestmark = pytest.mark.django_db


@pytest.fixture
def csm(django_user_model):
    return django_user_model.objects.create_user("csm", "csm@example.com")


def stage(slug: str) -> Stage:
    return Stage.objects.get(slug=slug)


@pytest.mark.parametrize("reason", ["", "   "])
def test_override_without_reason_rejected(csm, reason):
    account = make_account()
    evaluate_stages(NOW)

    with pytest.raises(ValueError, match="a reason is required"):
        set_stage(account, stage("renewal"), by=csm, reason=reason)

    assert AccountStage.objects.get(account=account).stage.slug == "onboarding"
    assert not StageChange.objects.filter(account=account, source="manual").exists()


def test_override_with_reason_recorded(csm):
    account = make_account()
    evaluate_stages(NOW)

    change = set_stage(
        account, stage("renewal"), by=csm, reason="Renewal call booked", at=NOW
    )

    assert change is not None
    assert change.source == "manual"
    assert change.from_stage is not None
    assert change.from_stage.slug == "onboarding"
    assert change.to_stage.slug == "renewal"
    assert change.changed_by == csm
    assert change.reason == "Renewal call booked"
    placement = AccountStage.objects.get(account=account)
    assert placement.stage.slug == "renewal"
    assert placement.entered_at == NOW


def test_override_places_account_without_stage(csm):
    account = make_account()

    change = set_stage(account, stage("adoption"), by=csm, reason="Migrated", at=NOW)

    assert change is not None
    assert change.from_stage is None
    assert AccountStage.objects.get(account=account).stage.slug == "adoption"


def test_override_to_same_stage_is_noop(csm):
    account = make_account()
    evaluate_stages(NOW)

    change = set_stage(account, stage("onboarding"), by=csm, reason="Check")

    assert change is None
    assert StageChange.objects.filter(account=account).count() == 1


def test_override_before_entry_rejected(csm):
    account = onboarded_account()
    evaluate_stages(NOW)

    with pytest.raises(ValueError, match="give a time at or after that"):
        set_stage(
            account,
            stage("renewal"),
            by=csm,
            reason="Backdated",
            at=NOW - timedelta(days=1),
        )


def test_moving_back_clears_later_criteria(csm):
    account = onboarded_account()
    evaluate_stages(NOW)
    assert CriterionMet.objects.filter(account=account).count() == 3

    set_stage(account, stage("onboarding"), by=csm, reason="Kickoff redone", at=NOW)

    assert not CriterionMet.objects.filter(account=account).exists()

    later = NOW + timedelta(hours=1)
    evaluate_stages(later)

    assert AccountStage.objects.get(account=account).stage.slug == "adoption"
    assert set(
        CriterionMet.objects.filter(account=account).values_list("met_at", flat=True)
    ) == {later}


def test_moving_forward_keeps_criteria(csm):
    account = onboarded_account()
    evaluate_stages(NOW)

    set_stage(account, stage("renewal"), by=csm, reason="Signed early", at=NOW)

    assert CriterionMet.objects.filter(account=account).count() == 3


def test_history_has_time_in_each_stage(csm):
    account = onboarded_account()
    evaluate_stages(NOW)
    set_stage(
        account,
        stage("expansion"),
        by=csm,
        reason="Bought a second product",
        at=NOW + timedelta(days=2),
    )

    visits = stage_history(account, as_of=NOW + timedelta(days=5))

    signup = datetime(2024, 1, 1, tzinfo=UTC)
    assert [visit.stage.slug for visit in visits] == [
        "onboarding",
        "adoption",
        "expansion",
    ]
    assert visits[0].entered_at == signup
    assert visits[0].left_at == NOW
    assert visits[0].time_in_stage == NOW - signup
    assert visits[1].time_in_stage == timedelta(days=2)
    assert visits[2].left_at is None
    assert visits[2].time_in_stage == timedelta(days=3)
    assert visits[2].source == "manual"
    assert visits[2].changed_by_id == csm.pk


def test_history_as_of_past_is_shorter():
    account = onboarded_account()
    evaluate_stages(NOW)

    visits = stage_history(account, as_of=NOW - timedelta(days=1))

    assert [visit.stage.slug for visit in visits] == ["onboarding"]
    assert visits[0].left_at is None


def test_criteria_status_met_and_due():
    account = onboarded_account()
    evaluate_stages(NOW)

    statuses = {
        (status.criterion.stage.slug, status.criterion.order): status
        for status in criteria_status(account, NOW)
    }

    assert len(statuses) == 10
    assert statuses[("onboarding", 1)].met
    assert statuses[("onboarding", 1)].met_at == NOW
    assert statuses[("onboarding", 1)].due_at is None
    features = statuses[("adoption", 1)]
    assert not features.met
    assert features.met_at is None
    assert features.due_at == NOW + timedelta(days=30)
    assert not features.overdue
    assert statuses[("adoption", 2)].met
    assert not statuses[("renewal", 1)].met


def test_criteria_status_overdue_and_past():
    account = onboarded_account()
    evaluate_stages(NOW)

    later = criteria_status(account, NOW + timedelta(days=31))
    earlier = criteria_status(account, NOW - timedelta(hours=1))

    overdue = [status.criterion.name for status in later if status.overdue]
    assert overdue == ["At least 3 core features used weekly"]
    assert not any(status.met for status in earlier)
