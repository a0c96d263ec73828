"""Health admin: weight sets with validation, account health with trend."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from customers.health import registered_measures
from customers.models import HealthScore
from lifecycle.models import HealthSource, HealthWeight, HealthWeightSet, Stage
from tests.factories import make_account, make_contact, make_event, make_health

pytestmark = pytest.mark.django_db

ADD_URL = "admin:lifecycle_healthweightset_add"


def weights_form(stage: Stage | None = None, **weights: object) -> dict[str, object]:
    form: dict[str, object] = {
        "stage": stage.pk if stage else "",
        "source": HealthSource.MEASURES,
        "crm_property": "",
    }
    for key in registered_measures():
        form[f"weight_{key}"] = weights.get(key, 0)
    return form


def stored_weights(row: HealthWeightSet) -> dict[str, int]:
    return dict(row.weights.values_list("measure", "weight"))


def test_add_form_lists_every_measure(admin_client):
    response = admin_client.get(reverse(ADD_URL))

    page = response.content.decode()
    assert response.status_code == 200
    for measure in registered_measures().values():
        assert measure.label in page
    assert "Learning progress" in page


def test_weights_saved(admin_client):
    adoption = Stage.objects.get(slug="adoption")

    response = admin_client.post(
        reverse(ADD_URL), weights_form(adoption, usage=3, learning=2)
    )

    assert response.status_code == 302
    row = HealthWeightSet.objects.get(stage=adoption)
    weights = stored_weights(row)
    assert weights["usage"] == 3
    assert weights["learning"] == 2
    assert weights["csat"] == 0
    assert set(weights) == set(registered_measures())


def test_edit_replaces_weights(admin_client):
    admin_client.post(reverse(ADD_URL), weights_form(usage=3))
    row = HealthWeightSet.objects.get(stage=None)

    admin_client.post(
        reverse("admin:lifecycle_healthweightset_change", args=[row.pk]),
        weights_form(support=4),
    )

    weights = stored_weights(row)
    assert weights["usage"] == 0
    assert weights["support"] == 4
    assert HealthWeight.objects.filter(weight_set=row).count() == len(weights)


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"usage": -3}, "Weight &#x27;-3&#x27; for Product usage is invalid"),
        ({"usage": "lots"}, "Weight &#x27;lots&#x27; for Product usage is invalid"),
        ({"usage": "2.5"}, "Weight &#x27;2.5&#x27; for Product usage is invalid"),
        ({"usage": 5000}, "give a whole number from 0 to 1000"),
        ({}, "Weight set &#x27;default&#x27; has no positive weight"),
    ],
)
def test_bad_weights_rejected(admin_client, weights, message):
    response = admin_client.post(reverse(ADD_URL), weights_form(**weights))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not HealthWeightSet.objects.exists()


def test_crm_source_needs_property(admin_client):
    form = weights_form()
    form["source"] = HealthSource.CRM_PROPERTY

    response = admin_client.post(reverse(ADD_URL), form)

    assert response.status_code == 200
    assert "A CRM property source needs the property" in response.content.decode()
    assert not HealthWeightSet.objects.exists()


def test_crm_source_saved_without_weights(admin_client):
    form = weights_form()
    form["source"] = HealthSource.CRM_PROPERTY
    form["crm_property"] = " cs_health "

    response = admin_client.post(reverse(ADD_URL), form)

    assert response.status_code == 302
    assert HealthWeightSet.objects.get().crm_property == "cs_health"


def test_second_default_set_rejected(admin_client):
    admin_client.post(reverse(ADD_URL), weights_form(usage=1))

    response = admin_client.post(reverse(ADD_URL), weights_form(usage=2))

    assert response.status_code == 200
    assert "A weight set for this stage already exists" in response.content.decode()
    assert HealthWeightSet.objects.count() == 1


def test_recompute_action_queues_every_account(
    admin_client, django_capture_on_commit_callbacks
):
    admin_client.post(reverse(ADD_URL), weights_form(support=1))
    row = HealthWeightSet.objects.get()
    account = make_account()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = admin_client.post(
            reverse("admin:lifecycle_healthweightset_changelist"),
            {"action": "recompute_every_account", "_selected_action": [row.pk]},
            follow=True,
        )

    assert response.status_code == 200
    assert len(callbacks) == 1
    # The task runs eagerly in tests, once the request's transaction commits.
    stored = HealthScore.objects.get(account=account, scored_on=timezone.localdate())
    assert stored.score == 100


def account_with_history(scores: list[int]):
    account = make_account()
    today = timezone.localdate()
    for offset, score in enumerate(reversed(scores)):
        make_health(account, today - timedelta(days=offset), score)
    return account


def test_account_health_page_shows_trend(admin_client):
    account = account_with_history([40, 50, 65])
    latest = HealthScore.objects.get(account=account, scored_on=timezone.localdate())
    latest.measures = {
        "usage": {
            "label": "Product usage",
            "available": True,
            "weight": 40,
            "value": 80.0,
            "points": 32.0,
            "uses": 16,
        }
    }
    latest.save()

    response = admin_client.get(
        reverse("admin:lifecycle_accounthealth_change", args=[account.pk])
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert "<polyline" in page
    assert "Health scores from 40 to 65" in page
    assert "<td>Product usage</td><td>40</td><td>80.0</td><td>32.0</td>" in page
    assert "uses 16" in page


def test_account_health_list_shows_change(admin_client):
    account_with_history([70, 61])

    response = admin_client.get(reverse("admin:lifecycle_accounthealth_changelist"))

    page = response.content.decode()
    assert response.status_code == 200
    assert "-9" in page
    assert "Health scores from 70 to 61" in page


def test_account_health_list_query_count(admin_client):
    def queries() -> int:
        with CaptureQueriesContext(connection) as captured:
            response = admin_client.get(
                reverse("admin:lifecycle_accounthealth_changelist")
            )
        assert response.status_code == 200
        return len(captured.captured_queries)

    account_with_history([50, 60])
    few = queries()
    for _ in range(10):
        account_with_history([30, 35, 40])

    assert queries() == few


def test_recompute_selected_accounts(admin_client):
    chosen = make_account(seats=1)
    make_event(make_contact(chosen), timezone.now() - timedelta(days=1), quantity=20)
    other = make_account()

    response = admin_client.post(
        reverse("admin:lifecycle_accounthealth_changelist"),
        {"action": "recompute_selected", "_selected_action": [chosen.pk]},
        follow=True,
    )

    assert response.status_code == 200
    assert "1 scored, 0 without data" in response.content.decode()
    assert HealthScore.objects.filter(account=chosen).count() == 1
    assert not HealthScore.objects.filter(account=other).exists()


def test_csm_sees_only_own_accounts(client, django_user_model):
    csm = django_user_model.objects.create_user("csm", is_staff=True)
    csm.user_permissions.add(
        Permission.objects.get(codename="view_accounthealth"),
    )
    own = make_account(owner=csm, name="Own Account")
    other = make_account(name="Other Account")
    client.force_login(csm)

    listing = client.get(reverse("admin:lifecycle_accounthealth_changelist"))
    foreign = client.get(
        reverse("admin:lifecycle_accounthealth_change", args=[other.pk])
    )
    mine = client.get(reverse("admin:lifecycle_accounthealth_change", args=[own.pk]))

    assert listing.status_code == 200
    assert "Own Account" in listing.content.decode()
    assert "Other Account" not in listing.content.decode()
    assert foreign.status_code == 403
    assert mine.status_code == 200
