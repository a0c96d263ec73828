"""Criterion states, stage progress, chosen criteria and time in each stage."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from customers.accounts_view import registered_sections
from customers.models import Account
from lifecycle.checklists import tick_item
from lifecycle.models import (
    AccountStage,
    Advancement,
    ChecklistItem,
    Stage,
    StageChange,
    SuccessCriterion,
)
from lifecycle.reports import account_stage_times, stage_time_report
from lifecycle.services import evaluate_stages, set_stage
from lifecycle.status import CriterionState, account_criteria
from lifecycle.timeline import behind_on_criterion
from tests.factories import NOW, make_account, make_contact, make_event
from tests.lifecycle.helpers import onboarded_account

pytestmark = pytest.mark.django_db

SIGNUP = datetime(2024, 1, 1, tzinfo=UTC)
CONTACTS = '{"kind": "contact_count", "op": ">=", "value": 3}'
# Every seeded criterion after onboarding's two, by stage and order.
LATER_CRITERIA = [
    f"{stage}:{order}"
    for stage in ("adoption", "expansion", "renewal", "advocacy")
    for order in (1, 2)
]


def states(account, as_of) -> dict[str, CriterionState]:
    return {
        f"{status.criterion.stage.slug}:{status.criterion.order}": status.state
        for status in account_criteria(account, as_of).statuses
    }


def choose_only(stage_slug: str, order: int) -> None:
    """Make the stage advance on the one criterion with this order."""
    Stage.objects.filter(slug=stage_slug).update(advancement=Advancement.CHOSEN)
    SuccessCriterion.objects.filter(stage__slug=stage_slug).update(
        required_to_advance=False
    )
    SuccessCriterion.objects.filter(stage__slug=stage_slug, order=order).update(
        required_to_advance=True
    )


def test_states_of_an_account_in_adoption():
    account = onboarded_account()
    evaluate_stages(NOW)

    now = states(account, NOW)

    assert now["onboarding:1"] == CriterionState.MET
    assert now["onboarding:2"] == CriterionState.MET
    # Features are due 30 days after entering adoption at NOW.
    assert now["adoption:1"] == CriterionState.ON_TRACK
    assert now["adoption:2"] == CriterionState.MET
    assert now["expansion:1"] == CriterionState.NOT_APPLICABLE
    assert now["advocacy:2"] == CriterionState.NOT_APPLICABLE


def test_unmet_criterion_behind_after_target():
    account = onboarded_account()
    evaluate_stages(NOW)

    just_before = states(account, NOW + timedelta(days=30))
    after = states(account, NOW + timedelta(days=30, seconds=1))

    assert just_before["adoption:1"] == CriterionState.ON_TRACK
    assert after["adoption:1"] == CriterionState.BEHIND
    assert after["adoption:2"] == CriterionState.MET


def test_states_as_of_before_the_move():
    account = onboarded_account()
    evaluate_stages(NOW)

    earlier = account_criteria(account, NOW - timedelta(hours=1))

    # In onboarding since signup, unmet, and its 14 target days long past.
    assert earlier.progress is not None
    assert earlier.progress.stage.slug == "onboarding"
    by_key = {
        f"{status.criterion.stage.slug}:{status.criterion.order}": status
        for status in earlier.statuses
    }
    assert by_key["onboarding:1"].state == CriterionState.BEHIND
    assert by_key["onboarding:1"].due_at == SIGNUP + timedelta(days=14)
    assert by_key["adoption:1"].state == CriterionState.NOT_APPLICABLE
    assert "account was in Onboarding" in by_key["adoption:1"].reason


def test_account_without_stage_not_applicable():
    account = make_account()

    criteria = account_criteria(account, NOW)

    assert criteria.progress is None
    assert {status.state for status in criteria.statuses} == {
        CriterionState.NOT_APPLICABLE
    }
    assert criteria.statuses[0].reason == "the account had no stage yet"


def test_missing_kickoff_not_applicable_nor_behind():
    without_kickoff = make_account(kickoff_date=None)
    for _ in range(3):
        make_contact(without_kickoff)
    with_kickoff = make_account(kickoff_date=date(2024, 1, 1))
    for _ in range(3):
        make_contact(with_kickoff)
    evaluate_stages(NOW)

    missing = account_criteria(without_kickoff, NOW).statuses[1]
    unused = account_criteria(with_kickoff, NOW).statuses[1]

    assert missing.criterion.name == "First product usage within 7 days of kickoff"
    assert missing.state == CriterionState.NOT_APPLICABLE
    assert missing.reason == (
        "the account has no kickoff date, which the condition counts from"
    )
    assert missing.due_at == SIGNUP + timedelta(days=14)
    assert unused.state == CriterionState.BEHIND
    behind = Account.objects.filter(behind_on_criterion(NOW))
    assert list(behind) == [with_kickoff]


def test_progress_through_the_stage():
    account = onboarded_account()
    evaluate_stages(NOW)

    progress = account_criteria(account, NOW + timedelta(days=2)).progress

    assert progress is not None
    assert progress.stage.slug == "adoption"
    assert progress.entered_at == NOW
    assert progress.time_in_stage == timedelta(days=2)
    assert (progress.met, progress.total) == (1, 2)
    assert (progress.required_met, progress.required) == (1, 2)
    assert not progress.complete


def test_chosen_criteria_move_the_account_on():
    choose_only("adoption", 2)
    account = onboarded_account()

    report = evaluate_stages(NOW)

    # Onboarding and the chosen adoption criterion (active users) hold at
    # NOW, so the account passes through adoption; expansion's do not.
    assert AccountStage.objects.get(account=account).stage.slug == "expansion"
    assert report.stage_changes == 2
    change = StageChange.objects.get(account=account, from_stage__slug="adoption")
    assert change.reason == (
        "Met the chosen success criteria of Adoption: Active users stable or growing"
    )


def test_unchosen_criterion_does_not_block():
    choose_only("adoption", 1)
    account = onboarded_account()

    evaluate_stages(NOW)

    # Active users holds but is not chosen; the chosen features do not.
    assert AccountStage.objects.get(account=account).stage.slug == "adoption"
    criteria = account_criteria(account, NOW)
    assert criteria.progress is not None
    assert (criteria.progress.required_met, criteria.progress.required) == (0, 1)
    assert (criteria.progress.met, criteria.progress.total) == (1, 2)
    active_users = [s for s in criteria.statuses if s.criterion.name.startswith("Act")]
    assert active_users[0].state == CriterionState.MET
    assert not active_users[0].required


def test_chosen_stage_without_chosen_criteria_keeps_accounts():
    choose_only("onboarding", 99)
    account = onboarded_account()

    evaluate_stages(NOW)

    assert AccountStage.objects.get(account=account).stage.slug == "onboarding"
    assert states(account, NOW)["onboarding:1"] == CriterionState.MET


def no_kickoff_account() -> Account:
    """Three contacts and a first usage, but no kickoff date to count it from."""
    account = make_account(kickoff_date=None)
    contacts = [make_contact(account) for _ in range(3)]
    make_event(contacts[0], datetime(2024, 6, 3, 10, tzinfo=UTC))
    return account


def test_not_applicable_required_criterion_holds_stage():
    account = no_kickoff_account()

    evaluate_stages(NOW)

    assert AccountStage.objects.get(account=account).stage.slug == "onboarding"
    assert states(account, NOW) == {
        "onboarding:1": CriterionState.MET,
        "onboarding:2": CriterionState.NOT_APPLICABLE,
        **{key: CriterionState.NOT_APPLICABLE for key in LATER_CRITERIA},
    }
    progress = account_criteria(account, NOW).progress
    assert progress is not None
    assert (progress.required_met, progress.required) == (1, 2)
    assert not progress.complete


def test_chosen_not_applicable_criterion_holds_stage():
    # Onboarding advances on the kickoff criterion alone.
    choose_only("onboarding", 2)
    account = no_kickoff_account()

    evaluate_stages(NOW)

    assert AccountStage.objects.get(account=account).stage.slug == "onboarding"


def test_kickoff_date_set_releases_stage():
    account = no_kickoff_account()
    evaluate_stages(NOW)

    Account.objects.filter(pk=account.pk).update(kickoff_date=date(2024, 6, 1))
    evaluate_stages(NOW + timedelta(hours=1))

    assert AccountStage.objects.get(account=account).stage.slug == "adoption"


def test_unchosen_not_applicable_criterion_does_not_hold():
    # Onboarding advances on the team size alone.
    choose_only("onboarding", 1)
    account = no_kickoff_account()

    evaluate_stages(NOW)

    assert AccountStage.objects.get(account=account).stage.slug == "adoption"
    # The kickoff criterion of the stage it left stays unmet, not applicable.
    assert states(account, NOW)["onboarding:2"] == CriterionState.NOT_APPLICABLE


# -- time in each stage -------------------------------------------------------------


def move(account, slug: str, day: int, source: str = "criteria") -> None:
    StageChange.objects.create(
        account=account,
        to_stage=Stage.objects.get(slug=slug),
        changed_at=SIGNUP + timedelta(days=day),
        source=source,
    )


def test_stage_time_report_over_accounts():
    fast, slow, new = make_account(), make_account(), make_account()
    for slug, day in (("onboarding", 0), ("adoption", 10), ("expansion", 25)):
        move(fast, slug, day)
    for slug, day in (("onboarding", 0), ("adoption", 4)):
        move(slow, slug, day)
    move(new, "onboarding", 28)

    report = {row.stage.slug: row for row in stage_time_report(SIGNUP + timedelta(30))}

    onboarding = report["onboarding"]
    assert onboarding.completed_stays == 2
    assert onboarding.mean_days == 7
    assert onboarding.median_days == 7
    assert onboarding.current_accounts == 1
    assert onboarding.current_median_days == 2
    adoption = report["adoption"]
    assert (adoption.completed_stays, adoption.median_days) == (1, 15)
    assert (adoption.current_accounts, adoption.current_median_days) == (1, 26)
    expansion = report["expansion"]
    assert expansion.completed_stays == 0
    assert expansion.mean_days is None
    assert (expansion.current_accounts, expansion.current_median_days) == (1, 5)
    assert report["renewal"].current_accounts == 0


def test_stage_time_report_as_of_the_past():
    account = make_account()
    for slug, day in (("onboarding", 0), ("adoption", 10)):
        move(account, slug, day)

    report = {row.stage.slug: row for row in stage_time_report(SIGNUP + timedelta(5))}

    assert report["onboarding"].completed_stays == 0
    assert report["onboarding"].current_median_days == 5
    assert report["adoption"].current_accounts == 0


def test_account_stage_times_sum_repeat_stays(admin_user):
    account = make_account()
    for slug, day in (("onboarding", 0), ("adoption", 10), ("onboarding", 12)):
        move(account, slug, day)

    times = account_stage_times(account, SIGNUP + timedelta(days=20))

    assert [(time.stage.slug, time.stays, time.total.days) for time in times] == [
        ("onboarding", 2, 18),
        ("adoption", 1, 2),
    ]
    assert [time.current for time in times] == [True, False]


# -- pages ----------------------------------------------------------------------------


def test_account_page_shows_states_and_progress(admin_client, admin_user):
    account = onboarded_account()
    evaluate_stages(NOW)
    expansion = Stage.objects.get(slug="expansion")
    set_stage(account, expansion, by=admin_user, reason="Signed the upgrade", at=NOW)

    page = admin_client.get(reverse("accounts:detail", args=[account.pk]))

    text = page.content.decode()
    assert page.status_code == 200
    assert "0 of 2 criteria met" in text
    # The page reads the state today, long after NOW, so expansion's criteria
    # are past their target days.
    assert '<span class="status status-danger">behind</span>' in text
    assert "not applicable" in text
    assert "it belongs to Adoption, and the account was in Expansion" in text
    assert "Time in each stage" in text
    assert f"Set by a CSM ({admin_user.get_username()}): Signed the upgrade" in text


def test_admin_account_stage_list_shows_progress(admin_client):
    account = onboarded_account()
    evaluate_stages(NOW)

    response = admin_client.get(reverse("admin:lifecycle_accountstage_changelist"))

    assert response.status_code == 200
    assert "1 of 2 met" in response.content.decode()
    placement = AccountStage.objects.get(account=account)
    change = admin_client.get(
        reverse("admin:lifecycle_accountstage_change", args=[placement.pk])
    )
    text = change.content.decode()
    # Read today, long after NOW, so the features criterion is behind.
    assert "Behind" in text
    assert f"due {(NOW + timedelta(days=30)):%Y-%m-%d}" in text
    assert f"met {NOW:%Y-%m-%d}" in text


def test_admin_stage_list_shows_time_in_stages(admin_client):
    account = make_account()
    move(account, "onboarding", 0)

    response = admin_client.get(reverse("admin:lifecycle_stage_changelist"))

    text = response.content.decode()
    assert response.status_code == 200
    assert "Time in each stage" in text
    assert "Their median days so far" in text


def test_admin_rejects_chosen_stage_without_chosen(admin_client):
    stage = Stage.objects.get(slug="adoption")
    criteria = list(stage.criteria.order_by("order"))
    form = {
        "order": stage.order,
        "name": stage.name,
        "slug": stage.slug,
        "description": stage.description,
        "advancement": Advancement.CHOSEN,
        "criteria-TOTAL_FORMS": len(criteria),
        "criteria-INITIAL_FORMS": len(criteria),
        "criteria-MIN_NUM_FORMS": 0,
        "criteria-MAX_NUM_FORMS": 1000,
    }
    for index, criterion in enumerate(criteria):
        prefix = f"criteria-{index}-"
        form.update(
            {
                f"{prefix}id": criterion.pk,
                f"{prefix}stage": stage.pk,
                f"{prefix}order": criterion.order,
                f"{prefix}name": criterion.name,
                f"{prefix}description": criterion.description,
                f"{prefix}condition": CONTACTS,
                f"{prefix}target_days": criterion.target_days,
            }
        )
    url = reverse("admin:lifecycle_stage_change", args=[stage.pk])

    rejected = admin_client.post(url, form)
    form["criteria-0-required_to_advance"] = "on"
    accepted = admin_client.post(url, form)

    assert rejected.status_code == 200
    assert "no criterion has" in rejected.content.decode()
    assert accepted.status_code == 302
    stage.refresh_from_db()
    assert stage.advancement == Advancement.CHOSEN
    assert [c.required_to_advance for c in stage.criteria.order_by("order")] == [
        True,
        False,
    ]


def test_stage_section_queries_do_not_grow(admin_user):
    section = next(s for s in registered_sections() if s.key == "stage")
    onboarding = Stage.objects.get(slug="onboarding")

    def queries_for(stays: int) -> int:
        account = make_account()
        for index in range(stays):
            slug = "onboarding" if index % 2 == 0 else "adoption"
            move(account, slug, index)
            checklist_item = ChecklistItem.objects.create(
                stage=onboarding, name=f"Step {stays}-{index}"
            )
            tick_item(account, checklist_item, by=admin_user, at=SIGNUP)
        with CaptureQueriesContext(connection) as queries:
            section.load(account, NOW.date())
        return len(queries)

    assert queries_for(2) == queries_for(12)


def test_naive_as_of_rejected():
    account = make_account()

    with pytest.raises(ValueError, match="has no time zone"):
        account_criteria(account, NOW.replace(tzinfo=None))
