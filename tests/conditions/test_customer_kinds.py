"""The customer condition kinds, evaluated as one query over contacts or accounts."""

from datetime import date, timedelta
from zoneinfo import ZoneInfo

import pytest

from conditions import (
    ConditionError,
    EvaluationContext,
    compile_condition,
    describe,
    validate,
)
from conditions.registry import MAX_DEPTH
from customers.models import Account, Contact
from tests.factories import (
    NOW,
    make_account,
    make_contact,
    make_event,
    make_health,
    make_survey,
    make_ticket,
)

pytestmark = pytest.mark.django_db


def matching_contacts(tree, as_of=NOW):
    condition = compile_condition(tree, EvaluationContext("contact", as_of))
    return set(Contact.objects.filter(condition).values_list("pk", flat=True))


def matching_accounts(tree, as_of=NOW):
    condition = compile_condition(tree, EvaluationContext("account", as_of))
    return set(Account.objects.filter(condition).values_list("pk", flat=True))


def test_inactivity_matches_contact_without_events():
    silent = make_contact()

    assert matching_contacts({"kind": "inactivity", "days": 10}) == {silent.pk}


def test_inactivity_window_boundary_day():
    # An event exactly 10 days old is outside a 10-day window; a newer one is inside.
    on_boundary = make_contact()
    make_event(on_boundary, NOW - timedelta(days=10))
    inside = make_contact()
    make_event(inside, NOW - timedelta(days=10) + timedelta(seconds=1))

    assert matching_contacts({"kind": "inactivity", "days": 10}) == {on_boundary.pk}


def test_inactivity_ignores_events_after_as_of():
    contact = make_contact()
    make_event(contact, NOW + timedelta(hours=1))

    assert matching_contacts({"kind": "inactivity", "days": 10}) == {contact.pk}


def test_as_of_in_other_time_zone_is_same_instant():
    contact = make_contact()
    make_event(contact, NOW - timedelta(days=9, hours=23))
    tokyo_now = NOW.astimezone(ZoneInfo("Asia/Tokyo"))

    assert (
        matching_contacts({"kind": "inactivity", "days": 10}, as_of=tokyo_now) == set()
    )
    assert matching_contacts({"kind": "inactivity", "days": 9}, as_of=tokyo_now) == {
        contact.pk
    }


def test_renewal_within_edges():
    today = NOW.date()
    due_last_day = make_contact(make_account(renewal_date=today + timedelta(days=60)))
    make_contact(make_account(renewal_date=today + timedelta(days=61)))
    make_contact(make_account(renewal_date=None))
    make_contact(make_account(renewal_date=today - timedelta(days=1)))

    assert matching_contacts({"kind": "renewal_within", "days": 60}) == {
        due_last_day.pk
    }


def test_health_score_uses_history_as_of():
    account = make_account()
    make_health(account, date(2024, 5, 1), 80)
    make_health(account, date(2024, 6, 1), 60)
    rule = {"kind": "health_score", "op": ">", "value": 70}

    assert matching_accounts(rule) == set()
    assert matching_accounts(rule, as_of=NOW.replace(month=5, day=15)) == {account.pk}
    assert matching_accounts(rule, as_of=NOW.replace(month=4, day=15)) == set()


def test_team_growth_counts_recent_contacts():
    growing = make_account()
    make_contact(growing, added_at=NOW - timedelta(days=2))
    make_contact(growing, added_at=NOW - timedelta(days=3))
    steady = make_account()
    make_contact(steady, added_at=NOW - timedelta(days=40))

    assert matching_accounts({"kind": "team_growth", "days": 7, "value": 2}) == {
        growing.pk
    }


def test_survey_score_within_last_day():
    promoter = make_contact()
    make_survey(promoter, NOW - timedelta(hours=3), 9)
    old_promoter = make_contact()
    make_survey(old_promoter, NOW - timedelta(days=2), 10)
    detractor = make_contact()
    make_survey(detractor, NOW - timedelta(hours=1), 6)
    rule = {"kind": "survey_score", "survey": "nps", "min": 9, "max": 10, "days": 1}

    assert matching_contacts(rule) == {promoter.pk}


def test_open_tickets_by_priority_as_of():
    account = make_account()
    make_ticket(
        account,
        NOW - timedelta(days=5),
        priority="urgent",
        closed_at=NOW - timedelta(days=1),
    )
    rule = {"kind": "open_tickets", "op": "==", "value": 0, "priorities": ["urgent"]}

    assert matching_accounts(rule) == {account.pk}
    assert matching_accounts(rule, as_of=NOW - timedelta(days=2)) == set()


def test_composition_all_any_not():
    account = make_account(renewal_date=NOW.date() + timedelta(days=30))
    make_health(account, NOW.date(), 75)
    healthy_renewing = make_contact(account)
    other = make_contact(make_account())
    make_event(other, NOW - timedelta(days=1))
    rule = {
        "any": [
            {
                "all": [
                    {"kind": "renewal_within", "days": 90},
                    {"kind": "health_score", "op": ">", "value": 70},
                ]
            },
            {"not": {"kind": "inactivity", "days": 10}},
        ]
    }

    assert matching_contacts(rule) == {healthy_renewing.pk, other.pk}


@pytest.mark.parametrize(
    ("tree", "message"),
    [
        ({"kind": "no_such_kind"}, "unknown condition kind 'no_such_kind'"),
        ({"kind": "inactivity"}, "parameter 'days' is missing"),
        ({"kind": "inactivity", "days": "ten"}, "days='ten' must be a whole number"),
        ({"all": []}, "'all' needs a non-empty list"),
        ({"kind": "plan", "plans": ["Gold"]}, "plans='Gold' is not one of"),
        (
            {"all": [{"kind": "inactivity", "days": 10, "weeks": 2}]},
            "$.all[0]: kind 'inactivity' has no parameter weeks",
        ),
    ],
)
def test_invalid_tree_names_the_fault(tree, message):
    with pytest.raises(ConditionError) as error:
        validate(tree, "contact")

    assert message in str(error.value)


def test_contact_added_within_window():
    account = make_account()
    newcomer = make_contact(account, added_at=NOW - timedelta(hours=20))
    make_contact(account, added_at=NOW - timedelta(days=1))
    make_contact(account, added_at=NOW + timedelta(hours=1))

    assert matching_contacts({"kind": "contact_added_within", "days": 1}) == {
        newcomer.pk
    }


def test_contact_added_within_rejects_accounts():
    with pytest.raises(ConditionError, match="does not apply to an account"):
        validate({"kind": "contact_added_within", "days": 1}, "account")


def test_nesting_deeper_than_limit_rejected():
    tree: dict = {"kind": "inactivity", "days": 10}
    for _ in range(MAX_DEPTH + 1):
        tree = {"not": tree}

    with pytest.raises(ConditionError, match="nest at most 20 groups deep"):
        validate(tree, "contact")


def test_describe_invalid_leaf_names_fault():
    assert describe({"kind": "inactivity"}) == (
        "inactivity (invalid: parameter 'days' is missing)"
    )
    assert describe({"all": [{"kind": "plan", "plans": ["Gold"]}]}).startswith(
        "(plan (invalid: plans='Gold' is not one of"
    )
    assert describe({"kind": "inactivity", "days": 10}) == (
        "no usage events in the last 10 days"
    )
