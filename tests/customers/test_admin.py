"""Customers admin: every list page renders in a fixed number of queries."""

from datetime import date, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from customers.models import ChurnEvent, Subscription
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

LIST_PAGES = [
    "admin:customers_account_changelist",
    "admin:customers_contact_changelist",
    "admin:customers_subscription_changelist",
    "admin:customers_usageevent_changelist",
    "admin:customers_supportticket_changelist",
    "admin:customers_surveyresponse_changelist",
    "admin:customers_healthscore_changelist",
    "admin:customers_churnevent_changelist",
]


def make_customer(owner) -> None:
    account = make_account(owner=owner)
    contact = make_contact(account)
    make_event(contact, NOW - timedelta(days=1))
    make_ticket(account, NOW - timedelta(days=2), contact=contact)
    make_survey(contact, NOW - timedelta(days=3), 9)
    make_health(account, date(2024, 6, 1), 70)
    Subscription.objects.create(
        account=account,
        external_id=f"S-{account.pk}",
        started_on=date(2024, 1, 1),
        plan="Pro",
        seats=5,
        mrr=100,
        arr=1200,
    )
    ChurnEvent.objects.create(
        account=account, external_id=f"CH-{account.pk}", churned_on=date(2024, 5, 1)
    )


def list_page_queries(client, url_name: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(url_name))
    assert response.status_code == 200
    return len(queries.captured_queries)


@pytest.mark.parametrize("url_name", LIST_PAGES)
def test_list_page_queries_do_not_grow(admin_client, admin_user, url_name):
    make_customer(admin_user)
    few = list_page_queries(admin_client, url_name)

    for _ in range(9):
        make_customer(admin_user)

    assert list_page_queries(admin_client, url_name) == few


def test_account_page_lists_contacts(admin_client):
    account = make_account()
    make_contact(account, email="champion@example.com", is_champion=True)

    response = admin_client.get(
        reverse("admin:customers_account_change", args=[account.pk])
    )

    assert response.status_code == 200
    assert "champion@example.com" in response.content.decode()


def test_usage_events_are_read_only(admin_client):
    response = admin_client.get(reverse("admin:customers_usageevent_add"))

    assert response.status_code == 403
