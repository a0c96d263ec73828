"""The account list: each filter, search, sorting, bad input and query count."""

import html
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from lifecycle.models import Stage
from tests.accounts.builders import add_activity, grant, make_user, place_in_stage
from tests.factories import make_account

pytestmark = pytest.mark.django_db

LIST = reverse("accounts:list")


def names(response) -> list[str]:
    return [row.account.name for row in response.context["rows"]]


def test_search_matches_part_of_the_name(admin_client):
    make_account(name="Acme Corp")
    make_account(name="Globex")
    make_account(name="acme labs")

    response = admin_client.get(LIST, {"q": "ACME"})

    assert names(response) == ["Acme Corp", "acme labs"]


def test_stage_filter_and_column(admin_client):
    now = timezone.now()
    onboarding = Stage.objects.get(slug="onboarding")
    adoption = Stage.objects.get(slug="adoption")
    first = make_account(name="First")
    second = make_account(name="Second")
    make_account(name="Unplaced")
    place_in_stage(first, onboarding, now)
    place_in_stage(second, adoption, now)

    adopting = admin_client.get(LIST, {"stage": "adoption"})
    unplaced = admin_client.get(LIST, {"stage": "none"})
    everyone = admin_client.get(LIST)

    assert names(adopting) == ["Second"]
    assert names(unplaced) == ["Unplaced"]
    assert [row.columns for row in everyone.context["rows"]] == [
        ["Onboarding"],
        ["Adoption"],
        [""],
    ]


def test_health_bands(admin_client):
    for name, score in (("A", 85), ("B", 70), ("C", 69), ("D", 40), ("E", 39)):
        make_account(name=name, health_score=score)
    make_account(name="F")

    def band(value: str) -> list[str]:
        return names(admin_client.get(LIST, {"health": value}))

    assert band("good") == ["A", "B"]
    assert band("watch") == ["C", "D"]
    assert band("at_risk") == ["E"]
    assert band("none") == ["F"]


def test_renewal_windows(admin_client):
    today = timezone.localdate()
    make_account(name="Today", renewal_date=today)
    make_account(name="In 30", renewal_date=today + timedelta(days=30))
    make_account(name="In 31", renewal_date=today + timedelta(days=31))
    make_account(name="Past", renewal_date=today - timedelta(days=1))
    make_account(
        name="Churned",
        renewal_date=today + timedelta(days=5),
        churned_on=today - timedelta(days=3),
    )

    def window(value: str) -> list[str]:
        return names(admin_client.get(LIST, {"renewal": value}))

    assert window("30") == ["In 30", "Today"]
    assert window("90") == ["In 30", "In 31", "Today"]
    assert window("overdue") == ["Past"]


def test_owner_filter(admin_client, admin_user, django_user_model):
    csm = make_user(django_user_model)
    make_account(name="Mine", owner=admin_user)
    make_account(name="Theirs", owner=csm)
    make_account(name="Nobody's")

    assert names(admin_client.get(LIST, {"owner": "me"})) == ["Mine"]
    assert names(admin_client.get(LIST, {"owner": str(csm.pk)})) == ["Theirs"]
    assert names(admin_client.get(LIST, {"owner": "none"})) == ["Nobody's"]


def test_segment_filters(admin_client):
    make_account(name="A", plan="Pro", industry="Retail", properties={"tier": "gold"})
    make_account(name="B", plan="Pro", industry="Health", properties={"tier": 2})
    make_account(name="C", plan="Basic", industry="Retail")

    assert names(admin_client.get(LIST, {"plan": "Pro"})) == ["A", "B"]
    assert names(admin_client.get(LIST, {"industry": "Retail"})) == ["A", "C"]
    assert names(admin_client.get(LIST, {"property": "tier"})) == ["A", "B"]
    assert names(admin_client.get(LIST, {"property": "tier", "value": "gold"})) == ["A"]
    # A number stored by the CRM matches its text.
    assert names(admin_client.get(LIST, {"property": "tier", "value": "2"})) == ["B"]


def test_filters_combine(admin_client):
    make_account(name="Acme Pro", plan="Pro", health_score=30)
    make_account(name="Acme Basic", plan="Basic", health_score=30)
    make_account(name="Acme Pro healthy", plan="Pro", health_score=90)

    response = admin_client.get(LIST, {"q": "acme", "plan": "Pro", "health": "at_risk"})

    assert names(response) == ["Acme Pro"]


def test_sort_by_health_puts_unscored_last(admin_client):
    make_account(name="High", health_score=90)
    make_account(name="None")
    make_account(name="Low", health_score=10)

    assert names(admin_client.get(LIST, {"sort": "health"})) == ["Low", "High", "None"]


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"health": "great"}, "health 'great' is invalid"),
        ({"renewal": "7"}, "renewal '7' is invalid"),
        ({"owner": "bob"}, "owner 'bob' is invalid"),
        ({"stage": "orbit"}, "stage 'orbit' does not exist"),
        ({"value": "gold"}, "has no property name"),
        ({"property": "a;b"}, "property name 'a;b' is invalid"),
        ({"q": "x" * 201}, "q is longer than 200"),
        ({"sort": "size"}, "sort 'size' is invalid"),
    ],
)
def test_invalid_filter_is_rejected_with_the_value(admin_client, params, message):
    response = admin_client.get(LIST, params)

    assert response.status_code == 400
    assert message in html.unescape(response.content.decode())


def test_list_pages(admin_client):
    for number in range(55):
        make_account(name=f"Account {number:02d}")

    first = admin_client.get(LIST)
    second = admin_client.get(LIST, {"page": "2"})

    assert len(first.context["rows"]) == 50
    assert names(second) == [f"Account {number}" for number in range(50, 55)]


def test_csm_sees_only_own_accounts_in_the_list(client, django_user_model):
    csm = grant(make_user(django_user_model), "customers.view_account")
    make_account(name="Mine", owner=csm)
    make_account(name="Theirs", owner=make_user(django_user_model))
    client.force_login(csm)

    everyone = client.get(LIST)
    searched = client.get(LIST, {"q": "Theirs"})

    assert names(everyone) == ["Mine"]
    assert names(searched) == []


def test_list_query_count_does_not_grow(admin_client, admin_user):
    now = timezone.now()
    onboarding = Stage.objects.get(slug="onboarding")
    params = {
        "q": "acct",
        "stage": "onboarding",
        "plan": "Pro",
        "health": "watch",
        "renewal": "90",
        "owner": "me",
        "industry": "Retail",
        "property": "tier",
        "value": "gold",
    }

    def add_accounts(count: int) -> None:
        for _ in range(count):
            account = make_account(
                name="Acct",
                plan="Pro",
                health_score=50,
                renewal_date=timezone.localdate() + timedelta(days=10),
                owner=admin_user,
                industry="Retail",
                properties={"tier": "gold"},
            )
            place_in_stage(account, onboarding, now)
            add_activity(account, 2, now)

    add_accounts(2)
    with CaptureQueriesContext(connection) as small:
        response = admin_client.get(LIST, params)
    assert len(response.context["rows"]) == 2

    add_accounts(12)
    with CaptureQueriesContext(connection) as large:
        response = admin_client.get(LIST, params)
    assert len(response.context["rows"]) == 14

    assert len(large) == len(small)
