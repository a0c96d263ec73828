"""Stage evaluation: placement, progression, idempotency and replay over history."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from lifecycle.models import (
    AccountStage,
    CriterionMet,
    Stage,
    StageChange,
    SuccessCriterion,
)
from lifecycle.services import evaluate_stages, set_stage, stage_history
from tests.factories import (
    NOW,
    make_account,
    make_contact,
    make_event,
    make_survey,
    make_ticket,
)
from tests.lifecycle.helpers import adopted_account, at, onboarded_account

pytestmark = pytest.mark.django_db


def stage_of(account) -> str:
    return AccountStage.objects.select_related("stage").get(account=account).stage.slug


def history_of(account) -> list[tuple[str | None, str, datetime, str]]:
    return [
        (
            change.from_stage.slug if change.from_stage else None,
            change.to_stage.slug,
            change.changed_at,
            change.source,
        )
        for change in StageChange.objects.filter(account=account)
        .select_related("from_stage", "to_stage")
        .order_by("changed_at", "id")
    ]


def met_criteria(account) -> dict[str, datetime]:
    return {
        f"{met.criterion.stage.slug}:{met.criterion.order}": met.met_at
        for met in CriterionMet.objects.filter(account=account).select_related(
            "criterion__stage"
        )
    }


def test_new_account_placed_in_onboarding():
    account = make_account(signup_date=date(2024, 3, 10))
    not_yet_signed_up = make_account(signup_date=date(2024, 6, 16))

    report = evaluate_stages(NOW)

    signup_midnight = datetime(2024, 3, 10, tzinfo=UTC)
    assert stage_of(account) == "onboarding"
    assert AccountStage.objects.get(account=account).entered_at == signup_midnight
    assert history_of(account) == [(None, "onboarding", signup_midnight, "initial")]
    assert not AccountStage.objects.filter(account=not_yet_signed_up).exists()
    assert report.placed == 1


def test_complete_stage_moves_account_on():
    account = onboarded_account()

    evaluate_stages(NOW)

    assert stage_of(account) == "adoption"
    assert history_of(account)[1] == ("onboarding", "adoption", NOW, "criteria")
    reason = StageChange.objects.get(account=account, source="criteria").reason
    assert "At least 3 team members invited" in reason
    assert "First product usage within 7 days of kickoff" in reason
    assert met_criteria(account)["onboarding:1"] == NOW
    assert met_criteria(account)["onboarding:2"] == NOW


def test_incomplete_stage_keeps_account():
    account = make_account(kickoff_date=date(2024, 6, 1))
    make_contact(account)
    make_contact(account)
    make_event(account.contacts.earliest("pk"), at(2024, 6, 3))

    evaluate_stages(NOW)

    assert stage_of(account) == "onboarding"
    assert set(met_criteria(account)) == {"onboarding:2"}


def test_next_stage_already_met_cascades():
    adopted = adopted_account()
    onboarded = onboarded_account()

    report = evaluate_stages(NOW)

    assert stage_of(adopted) == "expansion"
    assert [step[:3] for step in history_of(adopted)[1:]] == [
        ("onboarding", "adoption", NOW),
        ("adoption", "expansion", NOW),
    ]
    assert stage_of(onboarded) == "adoption"
    assert report.placed == 2
    assert report.advanced == 2
    assert report.stage_changes == 3


def test_criteria_recorded_only_in_own_stage():
    # Adoption's criteria hold, but the account is still onboarding.
    account = make_account()
    contact = make_contact(account)
    for feature in ("reports", "alerts", "exports"):
        make_event(contact, NOW - timedelta(days=1), feature=feature)

    evaluate_stages(NOW)

    assert stage_of(account) == "onboarding"
    assert not any(key.startswith("adoption") for key in met_criteria(account))


def test_last_stage_keeps_account(django_user_model):
    csm = django_user_model.objects.create_user("csm")
    account = make_account()
    contact = make_contact(account)
    evaluate_stages(NOW - timedelta(days=20))
    set_stage(
        account,
        Stage.objects.get(slug="advocacy"),
        by=csm,
        reason="Reference customer",
        at=NOW - timedelta(days=10),
    )
    make_survey(contact, NOW - timedelta(days=5), 10)
    make_event(contact, NOW - timedelta(days=4), name="Review Submitted")

    report = evaluate_stages(NOW)

    assert stage_of(account) == "advocacy"
    assert set(met_criteria(account)) == {"advocacy:1", "advocacy:2"}
    assert report.stage_changes == 0


def test_second_evaluation_changes_nothing():
    adopted_account()
    onboarded_account()
    make_account()
    evaluate_stages(NOW)
    tables = (AccountStage, StageChange, CriterionMet)
    before = [sorted(model.objects.values_list()) for model in tables]

    report = evaluate_stages(NOW)

    after = [sorted(model.objects.values_list()) for model in tables]
    assert after == before
    assert report.placed == 0
    assert report.criteria_met == 0
    assert report.stage_changes == 0


def test_past_evaluation_ignores_later_events():
    account = make_account(kickoff_date=date(2024, 6, 1))
    contacts = [make_contact(account) for _ in range(3)]
    make_event(contacts[0], at(2024, 6, 5, 9))
    before_usage = at(2024, 6, 4)

    evaluate_stages(before_usage)

    assert stage_of(account) == "onboarding"
    assert met_criteria(account) == {"onboarding:1": before_usage}

    evaluate_stages(NOW)

    assert stage_of(account) == "adoption"
    assert met_criteria(account)["onboarding:2"] == NOW
    assert history_of(account)[1] == ("onboarding", "adoption", NOW, "criteria")


def test_earlier_evaluation_moves_met_at_back():
    account = make_account()
    for _ in range(3):
        make_contact(account)
    evaluate_stages(NOW)
    earlier = NOW - timedelta(days=5)

    report = evaluate_stages(earlier)

    assert met_criteria(account) == {"onboarding:1": earlier}
    assert report.criteria_met == 1


def test_invalid_criterion_is_skipped():
    account = onboarded_account()
    broken = SuccessCriterion.objects.get(stage__slug="onboarding", order=1)
    broken.condition = {"kind": "no_such_kind"}
    broken.save()

    report = evaluate_stages(NOW)

    assert report.invalid_criteria == (broken.pk,)
    assert stage_of(account) == "onboarding"
    assert set(met_criteria(account)) == {"onboarding:2"}


def test_daily_replay_gives_ordered_history():
    account = make_account(
        signup_date=date(2024, 1, 1), kickoff_date=date(2024, 1, 3), plan="Pro"
    )
    first = make_contact(account, role="Admin", added_at=at(2024, 1, 2, 9))
    second = make_contact(account, role="Admin", added_at=at(2024, 1, 5, 9))
    third = make_contact(account, role="Admin", added_at=at(2024, 1, 10, 9))
    # Onboarding: first usage on day 3 after kickoff, the third contact on 10 Jan.
    make_event(first, at(2024, 1, 6, 9), feature="reports")
    # Adoption: three features in one week from 1 Feb.
    for contact, feature in (
        (first, "reports"),
        (second, "alerts"),
        (third, "exports"),
    ):
        make_event(contact, at(2024, 2, 1, 9), feature=feature)
    # Expansion: the Pro plan, and a new role on 20 Feb.
    make_contact(account, role="Analyst", added_at=at(2024, 2, 20, 9))
    # Renewal: an urgent ticket open until 25 Feb, then 20 events by 20 Mar.
    make_ticket(
        account,
        at(2024, 2, 15, 9),
        priority="urgent",
        closed_at=at(2024, 2, 25, 8),
    )
    for day in range(1, 21):
        make_event(first, at(2024, 3, day, 8))

    instant = at(2024, 1, 1)
    while instant <= at(2024, 3, 31):
        evaluate_stages(instant)
        instant += timedelta(days=1)

    assert history_of(account) == [
        (None, "onboarding", datetime(2024, 1, 1, tzinfo=UTC), "initial"),
        ("onboarding", "adoption", at(2024, 1, 10), "criteria"),
        ("adoption", "expansion", at(2024, 2, 1), "criteria"),
        ("expansion", "renewal", at(2024, 2, 20), "criteria"),
        ("renewal", "advocacy", at(2024, 3, 20), "criteria"),
    ]
    assert met_criteria(account)["renewal:1"] == at(2024, 2, 25)
    placement = AccountStage.objects.get(account=account)
    assert placement.entered_at == at(2024, 3, 20)
    visits = stage_history(account, as_of=at(2024, 3, 31))
    assert [visit.time_in_stage for visit in visits] == [
        timedelta(days=9, hours=12),
        timedelta(days=22),
        timedelta(days=19),
        timedelta(days=29),
        timedelta(days=11),
    ]


def queries_for_accounts(count: int) -> int:
    with transaction.atomic():
        for _ in range(count):
            onboarded_account()
            adopted_account()
        with CaptureQueriesContext(connection) as queries:
            evaluate_stages(NOW)
        assert AccountStage.objects.filter(stage__slug="expansion").count() == count
        transaction.set_rollback(True)
    return len(queries.captured_queries)


def test_query_count_independent_of_accounts():
    assert queries_for_accounts(5) == queries_for_accounts(50)
