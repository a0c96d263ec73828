"""Success criteria are edited as text in the condition language."""

import pytest
from django.urls import reverse

from lifecycle.models import SuccessCriterion

pytestmark = pytest.mark.django_db


def criterion_data(criterion, condition):
    return {
        "stage": criterion.stage_id,
        "order": criterion.order,
        "name": criterion.name,
        "description": criterion.description,
        "condition": condition,
        "target_days": criterion.target_days,
    }


def test_criterion_form_shows_text(admin_client):
    criterion = SuccessCriterion.objects.get(stage__slug="onboarding", order=1)

    response = admin_client.get(
        reverse("admin:lifecycle_successcriterion_change", args=[criterion.pk])
    )

    assert "contact_count &gt;= 3" in response.content.decode()


def test_criterion_text_saved_as_tree(admin_client):
    criterion = SuccessCriterion.objects.get(stage__slug="onboarding", order=1)
    url = reverse("admin:lifecycle_successcriterion_change", args=[criterion.pk])
    text = 'contacts(contact.role == "admin") >= 2 and account.stage == "onboarding"'

    response = admin_client.post(url, criterion_data(criterion, text))

    assert response.status_code == 302
    criterion.refresh_from_db()
    assert criterion.condition == {
        "all": [
            {
                "kind": "contacts_matching",
                "where": {
                    "kind": "attribute",
                    "field": "contact.role",
                    "op": "==",
                    "value": "admin",
                },
                "op": ">=",
                "value": 2,
            },
            {"kind": "lifecycle_stage", "op": "==", "value": "onboarding"},
        ]
    }


def test_criterion_error_shows_position(admin_client):
    criterion = SuccessCriterion.objects.get(stage__slug="onboarding", order=1)
    url = reverse("admin:lifecycle_successcriterion_change", args=[criterion.pk])
    text = 'contact_count >= 3 and account.stage == "growth"'

    response = admin_client.post(url, criterion_data(criterion, text))

    page = response.content.decode()
    column = text.index("account.stage") + 1
    assert response.status_code == 200
    assert f"Line 1, column {column}: stage &#x27;growth&#x27; does not exist" in page
    criterion.refresh_from_db()
    assert criterion.condition == {"kind": "contact_count", "op": ">=", "value": 3}
