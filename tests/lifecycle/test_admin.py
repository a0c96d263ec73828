"""Lifecycle admin: condition checks, the manual override form, list queries."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from lifecycle.models import AccountStage, Stage, StageChange, SuccessCriterion
from lifecycle.services import evaluate_stages
from tests.factories import NOW
from tests.lifecycle.helpers import adopted_account, onboarded_account

pytestmark = pytest.mark.django_db

LIST_PAGES = [
    "admin:lifecycle_stage_changelist",
    "admin:lifecycle_successcriterion_changelist",
    "admin:lifecycle_accountstage_changelist",
    "admin:lifecycle_stagechange_changelist",
    "admin:lifecycle_criterionmet_changelist",
]


def criterion_form(criterion: SuccessCriterion, condition: str) -> dict[str, object]:
    return {
        "stage": criterion.stage_id,
        "order": criterion.order,
        "name": criterion.name,
        "description": criterion.description,
        "condition": condition,
        "target_days": criterion.target_days,
        "required_to_advance": "on" if criterion.required_to_advance else "",
    }


def test_stage_page_shows_condition_in_words(admin_client):
    onboarding = Stage.objects.get(slug="onboarding")

    response = admin_client.get(
        reverse("admin:lifecycle_stage_change", args=[onboarding.pk])
    )

    assert response.status_code == 200
    assert "contacts at the account &gt;= 3" in response.content.decode()


def test_invalid_condition_shows_path(admin_client):
    criterion = SuccessCriterion.objects.get(stage__slug="onboarding", order=1)
    url = reverse("admin:lifecycle_successcriterion_change", args=[criterion.pk])
    condition = '{"all": [{"kind": "contact_count", "op": ">=", "value": -1}]}'

    response = admin_client.post(url, criterion_form(criterion, condition))

    assert response.status_code == 200
    page = response.content.decode()
    assert "Invalid condition at $.all[0]" in page
    assert "below the minimum" in page
    criterion.refresh_from_db()
    assert criterion.condition == {"kind": "contact_count", "op": ">=", "value": 3}


def test_valid_condition_is_saved(admin_client):
    criterion = SuccessCriterion.objects.get(stage__slug="onboarding", order=1)
    url = reverse("admin:lifecycle_successcriterion_change", args=[criterion.pk])
    condition = '{"kind": "contact_count", "op": ">=", "value": 5}'

    response = admin_client.post(url, criterion_form(criterion, condition))

    assert response.status_code == 302
    criterion.refresh_from_db()
    assert criterion.condition["value"] == 5


def test_criterion_page_sets_required_to_advance(admin_client):
    criterion = SuccessCriterion.objects.get(stage__slug="adoption", order=2)
    url = reverse("admin:lifecycle_successcriterion_change", args=[criterion.pk])
    form = criterion_form(criterion, "active_users_stable(last 30 days)")

    response = admin_client.post(url, {**form, "required_to_advance": ""})

    assert response.status_code == 302
    criterion.refresh_from_db()
    assert criterion.required_to_advance is False


def test_override_form_needs_reason(admin_client):
    account = onboarded_account()
    evaluate_stages(NOW)
    placement = AccountStage.objects.get(account=account)
    url = reverse("admin:lifecycle_accountstage_change", args=[placement.pk])
    renewal = Stage.objects.get(slug="renewal")

    missing = admin_client.post(url, {"stage": renewal.pk, "reason": ""})

    assert missing.status_code == 200
    assert "This field is required" in missing.content.decode()
    assert not StageChange.objects.filter(source="manual").exists()

    saved = admin_client.post(url, {"stage": renewal.pk, "reason": "Early renewal"})

    assert saved.status_code == 302
    change = StageChange.objects.get(source="manual")
    assert change.to_stage == renewal
    assert change.reason == "Early renewal"
    assert change.changed_by is not None
    assert change.changed_by.username == "admin"
    assert AccountStage.objects.get(account=account).stage == renewal


def list_page_queries(client, url_name: str) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(reverse(url_name))
    assert response.status_code == 200
    return len(queries.captured_queries)


@pytest.mark.parametrize("url_name", LIST_PAGES)
def test_list_page_queries_do_not_grow(admin_client, url_name):
    adopted_account()
    onboarded_account()
    evaluate_stages(NOW)
    few = list_page_queries(admin_client, url_name)

    for _ in range(8):
        adopted_account()
        onboarded_account()
    evaluate_stages(NOW)

    assert list_page_queries(admin_client, url_name) == few
