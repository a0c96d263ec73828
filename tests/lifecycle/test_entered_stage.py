"""The entered_stage condition kind: a stage change as an event for triggers."""

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conditions import (
    EvaluationContext,
    MissingReferenceError,
    compile_condition,
    describe,
    format_condition,
    leaf_value,
    parse_condition,
    validate,
)
from customers.models import Account, Contact
from lifecycle.models import Stage, StageChange
from lifecycle.services import evaluate_stages, set_stage
from tests.factories import NOW, make_account, make_contact
from tests.lifecycle.helpers import onboarded_account

pytestmark = pytest.mark.django_db

ENTERED_ADOPTION = {"kind": "entered_stage", "stage": "adoption", "days": 7}


def move(account, slug: str, changed_at: datetime) -> None:
    StageChange.objects.create(
        account=account,
        to_stage=Stage.objects.get(slug=slug),
        changed_at=changed_at,
        source="criteria",
    )


def accounts_matching(tree, as_of: datetime) -> set[int]:
    condition = compile_condition(tree, EvaluationContext("account", as_of))
    return set(Account.objects.filter(condition).values_list("pk", flat=True))


def test_text_round_trips():
    text = 'entered_stage("adoption", last 7 days)'

    tree = parse_condition(text, "account")

    assert tree == ENTERED_ADOPTION
    assert format_condition(tree) == text
    assert describe(tree) == "entered stage adoption in the last 7 days"


def test_unknown_stage_rejected():
    tree = {"kind": "entered_stage", "stage": "onbording", "days": 7}

    with pytest.raises(MissingReferenceError) as error:
        validate(tree, "account")

    assert "stage 'onbording' does not exist" in str(error.value)


def test_window_is_half_open():
    # The window of 7 days as of NOW is (NOW - 7 days, NOW].
    on_the_edge = make_account()
    move(on_the_edge, "adoption", NOW - timedelta(days=7))
    just_inside = make_account()
    move(just_inside, "adoption", NOW - timedelta(days=7) + timedelta(seconds=1))
    at_as_of = make_account()
    move(at_as_of, "adoption", NOW)
    after_as_of = make_account()
    move(after_as_of, "adoption", NOW + timedelta(seconds=1))

    matched = accounts_matching(ENTERED_ADOPTION, NOW)

    assert matched == {just_inside.pk, at_as_of.pk}


def test_other_stage_does_not_match():
    account = make_account()
    move(account, "expansion", NOW - timedelta(days=1))

    assert accounts_matching(ENTERED_ADOPTION, NOW) == set()


def test_entry_counts_after_leaving():
    # Entered adoption 3 days ago and moved on to expansion yesterday.
    account = make_account()
    move(account, "adoption", NOW - timedelta(days=3))
    move(account, "expansion", NOW - timedelta(days=1))

    assert accounts_matching(ENTERED_ADOPTION, NOW) == {account.pk}
    stays = {"kind": "lifecycle_stage", "op": "==", "value": "adoption"}
    still_there = {"all": [ENTERED_ADOPTION, stays]}
    assert accounts_matching(still_there, NOW) == set()


def test_exact_as_of_past_instant():
    account = onboarded_account()
    evaluate_stages(NOW)

    # The move to adoption is dated NOW; a day before, nothing had entered.
    assert accounts_matching(ENTERED_ADOPTION, NOW - timedelta(days=1)) == set()
    assert accounts_matching(ENTERED_ADOPTION, NOW) == {account.pk}
    assert accounts_matching(ENTERED_ADOPTION, NOW + timedelta(days=6)) == {account.pk}
    assert accounts_matching(ENTERED_ADOPTION, NOW + timedelta(days=7)) == set()


def test_manual_move_counts(admin_user):
    account = make_account()
    evaluate_stages(NOW)
    adoption = Stage.objects.get(slug="adoption")

    set_stage(account, adoption, by=admin_user, reason="Kickoff done offline", at=NOW)

    assert accounts_matching(ENTERED_ADOPTION, NOW) == {account.pk}


def test_contacts_match_through_account():
    account = make_account()
    first, second = make_contact(account), make_contact(account)
    other = make_contact(make_account())
    move(account, "adoption", NOW - timedelta(days=2))
    condition = compile_condition(ENTERED_ADOPTION, EvaluationContext("contact", NOW))

    matched = set(Contact.objects.filter(condition).values_list("pk", flat=True))

    assert matched == {first.pk, second.pk}
    assert other.pk not in matched


def test_population_is_one_query():
    for days_ago in range(6):
        account = make_account()
        move(account, "onboarding", NOW - timedelta(days=40))
        move(account, "adoption", NOW - timedelta(days=days_ago))
    condition = compile_condition(ENTERED_ADOPTION, EvaluationContext("account", NOW))

    with CaptureQueriesContext(connection) as queries:
        matched = list(Account.objects.filter(condition).values_list("pk", flat=True))

    assert len(matched) == 6
    assert len(queries) == 1


def test_value_is_latest_entry_in_window():
    account = make_account()
    move(account, "adoption", datetime(2024, 6, 10, 9, tzinfo=UTC))
    move(account, "onboarding", datetime(2024, 6, 11, 9, tzinfo=UTC))
    move(account, "adoption", datetime(2024, 6, 13, 9, tzinfo=UTC))
    outside = make_account()
    move(outside, "adoption", NOW - timedelta(days=30))
    value = leaf_value(ENTERED_ADOPTION, EvaluationContext("account", NOW))

    values = dict(Account.objects.annotate(entered=value).values_list("pk", "entered"))

    assert values[account.pk] == datetime(2024, 6, 13, 9, tzinfo=UTC)
    assert values[outside.pk] is None
