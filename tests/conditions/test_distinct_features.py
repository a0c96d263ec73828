"""distinct_features compared every way, against a count made in Python."""

import operator
from datetime import timedelta

import pytest

from conditions import EvaluationContext, compile_condition
from customers.models import Account, Contact, UsageEvent
from tests.factories import NOW, make_account, make_contact, make_event

pytestmark = pytest.mark.django_db

OPERATORS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<": operator.lt,
    "<=": operator.le,
    "==": operator.eq,
}
DAYS = 7


def build_usage():
    """Contacts with 0 to 3 distinct features in the window, and noise outside it."""
    account = make_account()
    other = make_account()
    people = [make_contact(account) for _ in range(3)] + [make_contact(other)]
    for index, person in enumerate(people):
        for feature in ["reports", "alerts", "exports"][:index]:
            make_event(person, NOW - timedelta(days=1), feature=feature)
            make_event(person, NOW - timedelta(days=2), feature=feature)
        # Outside the window, blank, or another event: never counted.
        make_event(person, NOW - timedelta(days=DAYS), feature="old")
        make_event(person, NOW - timedelta(hours=1), feature="")
        make_event(person, NOW - timedelta(hours=1), name="Signed In", feature="x")
    # An event of the account without a contact counts for the account only.
    UsageEvent.objects.create(
        account=account,
        name="Feature Used",
        feature="billing",
        occurred_at=NOW - timedelta(hours=3),
    )


def features_in_window(events):
    window = events.filter(
        name="Feature Used",
        occurred_at__gt=NOW - timedelta(days=DAYS),
        occurred_at__lte=NOW,
    ).exclude(feature="")
    return len(set(window.values_list("feature", flat=True)))


@pytest.mark.parametrize("op", list(OPERATORS))
@pytest.mark.parametrize("value", [0, 1, 2, 3])
def test_contact_comparisons(op, value):
    build_usage()
    tree = {
        "kind": "distinct_features",
        "event": "Feature Used",
        "days": DAYS,
        "op": op,
        "value": value,
    }
    expected = {
        contact.pk
        for contact in Contact.objects.all()
        if OPERATORS[op](features_in_window(contact.usage_events.all()), value)
    }

    condition = compile_condition(tree, EvaluationContext("contact", NOW))
    matched = set(Contact.objects.filter(condition).values_list("pk", flat=True))

    assert matched == expected


@pytest.mark.parametrize("op", ["<", ">="])
def test_account_scope_and_subject(op):
    build_usage()
    tree = {"kind": "distinct_features", "event": "Feature Used", "days": DAYS}
    tree |= {"op": op, "value": 3}
    account_tree = tree | {"scope": "account"}
    expected_accounts = {
        account.pk
        for account in Account.objects.all()
        if OPERATORS[op](features_in_window(account.usage_events.all()), 3)
    }

    for_accounts = compile_condition(tree, EvaluationContext("account", NOW))
    for_contacts = compile_condition(account_tree, EvaluationContext("contact", NOW))

    assert (
        set(Account.objects.filter(for_accounts).values_list("pk", flat=True))
        == expected_accounts
    )
    assert set(
        Contact.objects.filter(for_contacts).values_list("pk", flat=True)
    ) == set(
        Contact.objects.filter(account__in=expected_accounts).values_list(
            "pk", flat=True
        )
    )
