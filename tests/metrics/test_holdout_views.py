"""The staff-only holdout page and its CSV download."""

import csv
import io
from datetime import timedelta

import pytest
from django.urls import reverse

from metrics.holdouts import holdout_comparison
from tests.metrics.test_holdout import AS_OF, build_population

pytestmark = pytest.mark.django_db

PAGE = reverse("metrics:holdouts")
CSV = reverse("metrics:holdouts-csv")


@pytest.fixture
def staff_client(client, django_user_model):
    client.force_login(
        django_user_model.objects.create_user(username="manager", is_staff=True)
    )
    return client


@pytest.mark.parametrize("url", [PAGE, CSV])
def test_anonymous_redirected(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert reverse("admin:login") in response["Location"]


@pytest.mark.parametrize("url", [PAGE, CSV])
def test_non_staff_forbidden(client, django_user_model, url):
    client.force_login(django_user_model.objects.create_user(username="learner"))

    assert client.get(url).status_code == 403


def test_page_lists_trigger_outcomes(staff_client):
    trigger = build_population(seed=5, contacts=60)
    as_of_day = AS_OF.date().isoformat()

    response = staff_client.get(PAGE, {"as_of": as_of_day})

    text = response.content.decode()
    assert response.status_code == 200
    assert trigger.name in text
    assert "Used the product" in text
    assert "holdouts.csv?as_of=" in text


def test_csv_matches_service(staff_client):
    build_population(seed=5, contacts=60)
    as_of_day = AS_OF.date().isoformat()

    response = staff_client.get(CSV, {"as_of": as_of_day})

    rows = list(csv.DictReader(io.StringIO(response.content.decode())))
    # The page reads as_of as the end of that UTC day.
    [comparison] = holdout_comparison(as_of=AS_OF.replace(hour=0) + timedelta(days=1))
    assert response["Content-Type"].startswith("text/csv")
    assert [row["metric"] for row in rows] == ["active", "completed", "churned"]
    assert {int(row["treated_n"]) for row in rows} == {comparison.treated}
    assert {int(row["control_n"]) for row in rows} == {comparison.control}


def test_invalid_as_of_rejected(staff_client):
    response = staff_client.get(CSV, {"as_of": "yesterday"})

    assert response.status_code == 400
    assert "Invalid date 'yesterday'" in response.content.decode()
