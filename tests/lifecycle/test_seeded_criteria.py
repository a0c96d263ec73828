"""The seeded stages and each success criterion, evaluated on small data."""

from datetime import date, timedelta

import pytest

from conditions import EvaluationContext, compile_condition, validate
from customers.models import Account, Subscription
from lifecycle.models import Stage, SuccessCriterion
from tests.factories import (
    NOW,
    make_account,
    make_contact,
    make_event,
    make_survey,
    make_ticket,
)

pytestmark = pytest.mark.django_db

STAGE_SLUGS = ["onboarding", "adoption", "expansion", "renewal", "advocacy"]


def criterion(slug: str, position: int) -> SuccessCriterion:
    return SuccessCriterion.objects.get(stage__slug=slug, order=position)


def accounts_meeting(slug: str, position: int, as_of=NOW) -> set[int]:
    tree = criterion(slug, position).condition
    condition = compile_condition(tree, EvaluationContext("account", as_of))
    return set(Account.objects.filter(condition).values_list("pk", flat=True))


def make_subscription(account, started_on, plan="Pro", **fields) -> Subscription:
    defaults = {
        "external_id": f"S-{account.pk}-{started_on.isoformat()}-{plan}",
        "seats": 5,
        "mrr": 100,
        "arr": 1200,
    }
    defaults.update(fields)
    return Subscription.objects.create(
        account=account, started_on=started_on, plan=plan, **defaults
    )


def test_five_stages_seeded_in_order():
    stages = list(Stage.objects.order_by("order"))

    assert [stage.slug for stage in stages] == STAGE_SLUGS
    assert [stage.order for stage in stages] == [1, 2, 3, 4, 5]
    assert all(stage.description for stage in stages)


@pytest.mark.parametrize("slug", STAGE_SLUGS)
def test_each_stage_has_valid_criteria(slug):
    criteria = list(SuccessCriterion.objects.filter(stage__slug=slug))

    assert len(criteria) >= 2
    for item in criteria:
        validate(item.condition, "account")
        assert item.target_days is not None


# -- onboarding ------------------------------------------------------------


def test_team_invited_needs_three_contacts():
    three = make_account()
    for _ in range(3):
        make_contact(three)
    two = make_account()
    for _ in range(2):
        make_contact(two)
    third_added_later = make_account()
    make_contact(third_added_later)
    make_contact(third_added_later)
    make_contact(third_added_later, added_at=NOW + timedelta(hours=1))

    assert accounts_meeting("onboarding", 1) == {three.pk}


def test_first_usage_within_seven_days_of_kickoff():
    kickoff = date(2024, 6, 1)
    on_last_day = make_contact(make_account(kickoff_date=kickoff))
    make_event(on_last_day, NOW.replace(day=8, hour=23))
    one_day_late = make_contact(make_account(kickoff_date=kickoff))
    make_event(one_day_late, NOW.replace(day=9, hour=0))
    before_kickoff = make_contact(make_account(kickoff_date=kickoff))
    make_event(before_kickoff, NOW.replace(day=1) - timedelta(hours=13))
    no_kickoff = make_contact(make_account(kickoff_date=None))
    make_event(no_kickoff, NOW.replace(day=2))

    assert accounts_meeting("onboarding", 2) == {on_last_day.account_id}


# -- adoption --------------------------------------------------------------


def test_three_features_used_in_last_week():
    weekly = make_contact()
    for feature in ("reports", "alerts", "exports"):
        make_event(weekly, NOW - timedelta(days=2), feature=feature)
    one_too_old = make_contact()
    make_event(one_too_old, NOW - timedelta(days=1), feature="reports")
    make_event(one_too_old, NOW - timedelta(days=1), feature="alerts")
    make_event(one_too_old, NOW - timedelta(days=7), feature="exports")
    repeated = make_contact()
    for _ in range(3):
        make_event(repeated, NOW - timedelta(days=1), feature="reports")

    assert accounts_meeting("adoption", 1) == {weekly.account_id}


def test_active_users_stable_or_growing():
    stable = make_account()
    for contact in (make_contact(stable), make_contact(stable)):
        make_event(contact, NOW - timedelta(days=45))
        make_event(contact, NOW - timedelta(days=5))
    shrinking = make_account()
    leaving = make_contact(shrinking)
    staying = make_contact(shrinking)
    make_event(leaving, NOW - timedelta(days=45))
    make_event(staying, NOW - timedelta(days=45))
    make_event(staying, NOW - timedelta(days=5))
    make_contact(make_account())

    assert accounts_meeting("adoption", 2) == {stable.pk}


# -- expansion -------------------------------------------------------------


def test_new_role_added_in_last_month():
    grown = make_account()
    make_contact(grown, role="Admin", added_at=NOW - timedelta(days=100))
    make_contact(grown, role="Analyst", added_at=NOW - timedelta(days=10))
    same_role = make_account()
    make_contact(same_role, role="Admin", added_at=NOW - timedelta(days=100))
    make_contact(same_role, role="admin", added_at=NOW - timedelta(days=10))
    first_contact_only = make_account()
    make_contact(first_contact_only, role="Admin", added_at=NOW - timedelta(days=10))
    too_old = make_account()
    make_contact(too_old, role="Admin", added_at=NOW - timedelta(days=100))
    make_contact(too_old, role="Analyst", added_at=NOW - timedelta(days=30))
    blank_role = make_account()
    make_contact(blank_role, role="Admin", added_at=NOW - timedelta(days=100))
    make_contact(blank_role, role="", added_at=NOW - timedelta(days=10))

    assert accounts_meeting("expansion", 1) == {grown.pk}


def test_premium_plan_or_upgrade():
    today = NOW.date()
    pro = make_account()
    make_subscription(pro, today - timedelta(days=200), plan="Pro")
    pro_ended = make_account(plan="Pro")
    make_subscription(
        pro_ended, today - timedelta(days=200), plan="Pro", ended_on=today
    )
    trial = make_account()
    make_subscription(
        trial, today - timedelta(days=10), plan="Enterprise", is_trial=True
    )
    no_history = make_account(plan="Enterprise")
    upgraded_basic = make_account()
    make_subscription(
        upgraded_basic, today - timedelta(days=20), plan="Basic", is_upgrade=True
    )
    starts_tomorrow = make_account()
    make_subscription(starts_tomorrow, today + timedelta(days=1), plan="Enterprise")
    make_account(plan="Basic")

    assert accounts_meeting("expansion", 2) == {
        pro.pk,
        no_history.pk,
        upgraded_basic.pk,
    }


# -- renewal ---------------------------------------------------------------


def test_no_urgent_ticket_open():
    quiet = make_account()
    urgent_open = make_account()
    make_ticket(urgent_open, NOW - timedelta(days=3), priority="urgent")
    urgent_closed = make_account()
    make_ticket(
        urgent_closed,
        NOW - timedelta(days=3),
        priority="urgent",
        closed_at=NOW - timedelta(days=1),
    )
    high_open = make_account()
    make_ticket(high_open, NOW - timedelta(days=3), priority="high")

    assert accounts_meeting("renewal", 1) == {
        quiet.pk,
        urgent_closed.pk,
        high_open.pk,
    }


def test_high_engagement_needs_twenty_events():
    engaged = make_contact()
    for day in range(20):
        make_event(engaged, NOW - timedelta(days=day, hours=1))
    nineteen = make_contact()
    for day in range(19):
        make_event(nineteen, NOW - timedelta(days=day, hours=1))
    make_event(nineteen, NOW - timedelta(days=30))

    assert accounts_meeting("renewal", 2) == {engaged.account_id}


# -- advocacy --------------------------------------------------------------


def test_promoter_nps_in_last_year():
    promoter = make_contact()
    make_survey(promoter, NOW - timedelta(days=300), 9)
    passive = make_contact()
    make_survey(passive, NOW - timedelta(days=10), 8)
    old_promoter = make_contact()
    make_survey(old_promoter, NOW - timedelta(days=366), 10)

    assert accounts_meeting("advocacy", 1) == {promoter.account_id}


def test_review_or_case_study_recorded():
    reviewer = make_contact()
    make_event(reviewer, NOW - timedelta(days=100), name="Review Submitted")
    case_study = make_contact()
    make_event(case_study, NOW - timedelta(days=200), name="Case Study Published")
    started_only = make_contact()
    make_event(started_only, NOW - timedelta(days=10), name="Review Started")
    old_review = make_contact()
    make_event(old_review, NOW - timedelta(days=366), name="Review Submitted")

    assert accounts_meeting("advocacy", 2) == {
        reviewer.account_id,
        case_study.account_id,
    }
