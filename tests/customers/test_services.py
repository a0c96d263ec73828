"""Subjects as of an instant, and the kinds customers added for expansion."""

from datetime import UTC, date, datetime, timedelta

import pytest

from conditions import EvaluationContext, compile_condition
from customers.models import Contact, Subscription
from customers.services import subjects_as_of
from tests.factories import NOW, make_account, make_contact

pytestmark = pytest.mark.django_db


def test_contacts_as_of_added_at():
    before = make_contact(added_at=NOW - timedelta(days=1))
    exactly = make_contact(added_at=NOW)
    make_contact(added_at=NOW + timedelta(seconds=1))

    contacts = set(subjects_as_of("contact", NOW).values_list("pk", flat=True))

    assert contacts == {before.pk, exactly.pk}


def test_accounts_as_of_signup_date():
    same_day = make_account(signup_date=date(2024, 6, 15))
    make_account(signup_date=date(2024, 6, 16))
    midnight = datetime(2024, 6, 15, tzinfo=UTC)

    accounts = set(subjects_as_of("account", midnight).values_list("pk", flat=True))

    assert accounts == {same_day.pk}


def test_subjects_reject_bad_input():
    with pytest.raises(ValueError, match="subject 'company' is invalid"):
        subjects_as_of("company", NOW)
    with pytest.raises(ValueError, match="has no time zone"):
        subjects_as_of("account", datetime(2024, 6, 15))  # noqa: DTZ001


def test_subscription_plan_for_contacts():
    account = make_account(plan="Basic")
    Subscription.objects.create(
        account=account,
        external_id="S-history",
        started_on=date(2024, 1, 1),
        ended_on=date(2024, 5, 1),
        plan="Enterprise",
        seats=10,
        mrr=1000,
        arr=12000,
    )
    contact = make_contact(account)
    rule = {"kind": "subscription_plan", "plans": ["Enterprise"]}

    def matching(as_of):
        condition = compile_condition(rule, EvaluationContext("contact", as_of))
        return set(Contact.objects.filter(condition).values_list("pk", flat=True))

    assert matching(NOW) == set()
    assert matching(datetime(2024, 4, 30, 12, tzinfo=UTC)) == {contact.pk}
    assert matching(datetime(2024, 5, 1, 12, tzinfo=UTC)) == set()


def test_upgraded_within_window_edges():
    account = make_account()
    Subscription.objects.create(
        account=account,
        external_id="S-upgrade",
        started_on=date(2024, 6, 15) - timedelta(days=90),
        plan="Pro",
        seats=10,
        mrr=500,
        arr=6000,
        is_upgrade=True,
    )
    contact = make_contact(account)
    rule = {"kind": "upgraded_within", "days": 90}

    def matching(as_of):
        condition = compile_condition(rule, EvaluationContext("contact", as_of))
        return set(Contact.objects.filter(condition).values_list("pk", flat=True))

    assert matching(NOW) == set()
    assert matching(NOW - timedelta(days=1)) == {contact.pk}
