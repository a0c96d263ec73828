"""Each registered condition kind, evaluated through a trigger by a sweep."""

from datetime import date, timedelta

import pytest

from conditions import kinds
from customers.models import Subscription
from tests.factories import (
    NOW,
    make_account,
    make_contact,
    make_event,
    make_health,
    make_survey,
    make_ticket,
)
from tests.triggers.factories import make_trigger
from triggers.models import Firing
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db


def fired_subjects(trigger):
    firings = Firing.objects.filter(trigger=trigger)
    if trigger.subject_type == "contact":
        return set(firings.values_list("contact_id", flat=True))
    return set(firings.values_list("account_id", flat=True))


def case_inactivity():
    silent = make_contact()
    active = make_contact()
    make_event(active, NOW - timedelta(days=1))
    return "contact", {"kind": "inactivity", "days": 10}, {silent.pk}


def case_event_count():
    busy = make_contact()
    for days in (1, 2, 3):
        make_event(busy, NOW - timedelta(days=days))
    light = make_contact()
    for days in (1, 2):
        make_event(light, NOW - timedelta(days=days))
    rule = {"kind": "event_count", "days": 7, "op": ">=", "value": 3}
    return "contact", rule, {busy.pk}


def case_distinct_features():
    varied = make_contact()
    make_event(varied, NOW - timedelta(days=1), feature="reports")
    make_event(varied, NOW - timedelta(days=2), feature="exports")
    repetitive = make_contact()
    make_event(repetitive, NOW - timedelta(days=1), feature="reports")
    make_event(repetitive, NOW - timedelta(days=2), feature="reports")
    rule = {"kind": "distinct_features", "days": 30, "op": ">=", "value": 2}
    return "contact", rule, {varied.pk}


def case_first_usage_within():
    quick = make_account(signup_date=date(2024, 6, 1))
    make_event(make_contact(quick), NOW.replace(day=3))
    slow = make_account(signup_date=date(2024, 5, 1))
    make_event(make_contact(slow), NOW.replace(month=5, day=20))
    rule = {"kind": "first_usage_within", "days": 7, "after": "signup"}
    return "account", rule, {quick.pk}


def case_active_users_trend():
    growing = make_account()
    for _ in range(2):
        make_event(make_contact(growing), NOW - timedelta(days=5))
    make_event(make_contact(growing), NOW - timedelta(days=40))
    shrinking = make_account()
    make_event(make_contact(shrinking), NOW - timedelta(days=5))
    for _ in range(2):
        make_event(make_contact(shrinking), NOW - timedelta(days=40))
    return "account", {"kind": "active_users_trend", "days": 30}, {growing.pk}


def case_renewal_within():
    soon = make_account(renewal_date=NOW.date() + timedelta(days=30))
    make_account(renewal_date=NOW.date() + timedelta(days=90))
    make_account(renewal_date=None)
    return "account", {"kind": "renewal_within", "days": 60}, {soon.pk}


def case_health_score():
    healthy = make_account()
    make_health(healthy, date(2024, 6, 1), 80)
    at_risk = make_account()
    make_health(at_risk, date(2024, 6, 1), 60)
    return "account", {"kind": "health_score", "op": ">", "value": 70}, {healthy.pk}


def case_plan():
    pro = make_account(plan="Pro")
    make_account(plan="Basic")
    return "account", {"kind": "plan", "plans": ["Pro"]}, {pro.pk}


def case_team_growth():
    growing = make_account()
    make_contact(growing, added_at=NOW - timedelta(days=2))
    make_contact(growing, added_at=NOW - timedelta(days=3))
    steady = make_account()
    make_contact(steady, added_at=NOW - timedelta(days=2))
    return "account", {"kind": "team_growth", "days": 7, "value": 2}, {growing.pk}


def case_contact_count():
    large = make_account()
    for _ in range(3):
        make_contact(large)
    small = make_account()
    for _ in range(2):
        make_contact(small)
    return "account", {"kind": "contact_count", "op": ">=", "value": 3}, {large.pk}


def case_survey_score():
    promoter = make_contact()
    make_survey(promoter, NOW - timedelta(hours=3), 9)
    detractor = make_contact()
    make_survey(detractor, NOW - timedelta(hours=3), 6)
    rule = {"kind": "survey_score", "survey": "nps", "min": 9, "max": 10, "days": 1}
    return "contact", rule, {promoter.pk}


def case_open_tickets():
    waiting = make_account()
    make_ticket(waiting, NOW - timedelta(days=2))
    resolved = make_account()
    make_ticket(resolved, NOW - timedelta(days=2), closed_at=NOW - timedelta(days=1))
    return "account", {"kind": "open_tickets", "op": ">=", "value": 1}, {waiting.pk}


def make_subscription(account, started_on, **fields):
    defaults = {
        "external_id": f"S-{account.pk}-{started_on:%Y%m%d}",
        "plan": "Basic",
        "seats": 5,
        "mrr": 100,
        "arr": 1200,
    }
    defaults.update(fields)
    return Subscription.objects.create(
        account=account, started_on=started_on, **defaults
    )


def case_new_role_added():
    diversifying = make_account()
    make_contact(diversifying, role="Admin", added_at=NOW - timedelta(days=100))
    make_contact(diversifying, role="Analyst", added_at=NOW - timedelta(days=2))
    same_roles = make_account()
    make_contact(same_roles, role="Admin", added_at=NOW - timedelta(days=100))
    make_contact(same_roles, role="admin", added_at=NOW - timedelta(days=2))
    return "account", {"kind": "new_role_added", "days": 7}, {diversifying.pk}


def case_subscription_plan():
    enterprise = make_account()
    make_subscription(enterprise, date(2024, 1, 1), plan="Enterprise")
    downgraded = make_account()
    make_subscription(
        downgraded, date(2024, 1, 1), plan="Enterprise", ended_on=date(2024, 5, 1)
    )
    make_subscription(downgraded, date(2024, 5, 1), plan="Basic")
    rule = {"kind": "subscription_plan", "plans": ["Enterprise"]}
    return "account", rule, {enterprise.pk}


def case_upgraded_within():
    recent = make_account()
    make_subscription(recent, date(2024, 6, 1), is_upgrade=True)
    earlier = make_account()
    make_subscription(earlier, date(2024, 4, 1), is_upgrade=True)
    return "account", {"kind": "upgraded_within", "days": 30}, {recent.pk}


def case_contact_added_within():
    account = make_account()
    newcomer = make_contact(account, added_at=NOW - timedelta(hours=6))
    make_contact(account, added_at=NOW - timedelta(days=3))
    return "contact", {"kind": "contact_added_within", "days": 1}, {newcomer.pk}


CASES = {
    "inactivity": case_inactivity,
    "event_count": case_event_count,
    "distinct_features": case_distinct_features,
    "first_usage_within": case_first_usage_within,
    "active_users_trend": case_active_users_trend,
    "renewal_within": case_renewal_within,
    "health_score": case_health_score,
    "plan": case_plan,
    "team_growth": case_team_growth,
    "contact_count": case_contact_count,
    "survey_score": case_survey_score,
    "open_tickets": case_open_tickets,
    "new_role_added": case_new_role_added,
    "subscription_plan": case_subscription_plan,
    "upgraded_within": case_upgraded_within,
    "contact_added_within": case_contact_added_within,
}


@pytest.mark.parametrize("kind", sorted(CASES))
def test_kind_fires_matching_subjects(kind):
    subject_type, rule, expected = CASES[kind]()
    trigger = make_trigger(rule, subject_type=subject_type)

    report = run_sweep(NOW, triggers=[trigger])

    assert fired_subjects(trigger) == expected
    assert report.fired == len(expected)


def test_every_customer_kind_has_a_case():
    customer_kinds = {
        name
        for name, kind in kinds().items()
        if kind.compile.__module__ == "customers.conditions"
    }

    missing = customer_kinds - set(CASES)
    assert not missing, f"add a case to CASES for the kinds {sorted(missing)}"
