"""Accounts needing attention: each rule at its edges, reasons, and query count."""

import html
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lifecycle.models import Stage
from tests.accounts.builders import (
    add_activity,
    grant,
    make_criterion,
    make_user,
    meet,
    place_in_stage,
)
from tests.factories import make_account, make_contact, make_event, make_health

pytestmark = pytest.mark.django_db

ATTENTION = reverse("accounts:attention")


def listed(response) -> dict[str, list[str]]:
    return {row.account.name: row.reasons for row in response.context["rows"]}


def test_health_drop_of_ten_points_in_30_days(admin_client):
    today = timezone.localdate()
    cases = {
        "Dropped 12": [(25, 80), (0, 68)],
        "Dropped 10 exactly": [(30, 70), (0, 60)],
        "Dropped 9": [(25, 80), (0, 71)],
        # 16 points below the score of 40 days ago, but only 1 in 30 days.
        "Old drop": [(40, 90), (25, 75), (0, 74)],
        "Rising": [(20, 40), (0, 70)],
        "One score": [(0, 10)],
    }
    for name, scores in cases.items():
        account = make_account(name=name)
        for days_ago, score in scores:
            make_health(account, today - timedelta(days=days_ago), score)

    response = admin_client.get(ATTENTION)

    reason = "Health dropped 10+ points in 30 days"
    assert listed(response) == {
        "Dropped 10 exactly": [reason],
        "Dropped 12": [reason],
    }


def test_renewal_near_with_low_engagement(admin_client):
    now = timezone.now()
    today = timezone.localdate()

    def account_with(name: str, seats: int, active: int, renewal_days: int, **fields):
        account = make_account(
            name=name,
            seats=seats,
            renewal_date=today + timedelta(days=renewal_days),
            **fields,
        )
        for _ in range(active):
            make_event(make_contact(account), now - timedelta(days=3))
        # Usage older than 30 days does not make a contact active.
        make_event(make_contact(account), now - timedelta(days=31))
        return account

    account_with("1 of 8 seats active", seats=8, active=1, renewal_days=30)
    account_with("1 of 4 seats active", seats=4, active=1, renewal_days=30)
    account_with("None of 1 seat active", seats=1, active=0, renewal_days=90)
    account_with("Renews in 91 days", seats=8, active=0, renewal_days=91)
    account_with(
        "Churned",
        seats=8,
        active=0,
        renewal_days=10,
        churned_on=today - timedelta(days=1),
    )
    account_with("Renewed yesterday", seats=8, active=0, renewal_days=-1)

    response = admin_client.get(ATTENTION)

    # Fewer than 25% of seats active: 1/8 is, 1/4 is not (exactly 25%).
    reason = "Renewal near, low engagement"
    assert listed(response) == {
        "1 of 8 seats active": [reason],
        "None of 1 seat active": [reason],
    }


def test_behind_on_a_criterion_of_the_current_stage(admin_client):
    now = timezone.now()
    pilot = Stage.objects.create(slug="pilot", name="Pilot", order=90)
    later = Stage.objects.create(slug="later", name="Later", order=91)
    due_10 = make_criterion(pilot, target_days=10)
    make_criterion(pilot, target_days=None)
    make_criterion(later, target_days=1)

    behind = make_account(name="Behind")
    place_in_stage(behind, pilot, now - timedelta(days=11))
    met = make_account(name="Met it")
    place_in_stage(met, pilot, now - timedelta(days=11))
    meet(met, due_10, now - timedelta(days=2))
    in_time = make_account(name="Still in time")
    place_in_stage(in_time, pilot, now - timedelta(days=9))
    elsewhere = make_account(name="In the later stage")
    place_in_stage(elsewhere, later, now - timedelta(hours=1))

    response = admin_client.get(ATTENTION)

    assert listed(response) == {"Behind": ["Behind on a success criterion"]}


def test_reasons_listed_together_and_rule_filter(admin_client):
    now = timezone.now()
    today = timezone.localdate()
    pilot = Stage.objects.create(slug="pilot", name="Pilot", order=90)
    make_criterion(pilot, target_days=1)
    both = make_account(name="Both", seats=10, renewal_date=today)
    place_in_stage(both, pilot, now - timedelta(days=5))
    make_health(both, today - timedelta(days=10), 90)
    make_health(both, today, 50)

    everything = admin_client.get(ATTENTION)
    only_health = admin_client.get(ATTENTION, {"rule": "health_dropping"})
    only_stage_rule = admin_client.get(
        ATTENTION, {"rule": "behind_on_criterion", "health": "good"}
    )

    assert listed(everything) == {
        "Both": [
            "Health dropped 10+ points in 30 days",
            "Renewal near, low engagement",
            "Behind on a success criterion",
        ]
    }
    assert listed(only_health) == {"Both": ["Health dropped 10+ points in 30 days"]}
    # The list's filters apply too: the account's score is 50, not good.
    assert listed(only_stage_rule) == {}


def test_unknown_rule_is_rejected(admin_client):
    response = admin_client.get(ATTENTION, {"rule": "late"})

    assert response.status_code == 400
    assert "rule 'late' is invalid" in html.unescape(response.content.decode())


def test_csm_sees_only_own_accounts_needing_attention(client, django_user_model):
    today = timezone.localdate()
    csm = grant(make_user(django_user_model), "customers.view_account")
    for name, owner in (("Mine", csm), ("Theirs", None)):
        account = make_account(name=name, owner=owner)
        make_health(account, today - timedelta(days=5), 80)
        make_health(account, today, 20)
    client.force_login(csm)

    response = client.get(ATTENTION)

    assert list(listed(response)) == ["Mine"]


def test_attention_query_count_does_not_grow(admin_client):
    now = timezone.now()
    today = timezone.localdate()
    pilot = Stage.objects.create(slug="pilot", name="Pilot", order=90)
    make_criterion(pilot, target_days=1)

    def add_accounts(count: int) -> None:
        for _ in range(count):
            account = make_account(seats=50, renewal_date=today)
            place_in_stage(account, pilot, now - timedelta(days=5))
            add_activity(account, 2, now)

    add_accounts(2)
    with CaptureQueriesContext(connection) as small:
        response = admin_client.get(ATTENTION)
    assert len(response.context["rows"]) == 2

    add_accounts(10)
    with CaptureQueriesContext(connection) as large:
        response = admin_client.get(ATTENTION)
    assert len(response.context["rows"]) == 12

    assert len(large) == len(small)
