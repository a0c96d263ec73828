"""The preview page: count, leaves and sample values in the admin."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_account, make_contact, make_health
from tests.triggers.factories import make_trigger
from triggers.models import Trigger

pytestmark = pytest.mark.django_db


def preview_url(trigger):
    return reverse("admin:triggers_trigger_preview", args=[trigger.pk])


def test_preview_page_shows_values(admin_client):
    account = make_account()
    make_health(account, timezone.localdate() - timedelta(days=1), 82)
    contact = make_contact(account)
    make_contact(make_account())
    trigger = make_trigger(
        {"kind": "health_score", "op": ">", "value": 70}, is_active=False
    )

    response = admin_client.get(preview_url(trigger))

    text = " ".join(response.content.decode().split())
    assert response.status_code == 200
    assert "<strong>1</strong> subject matches" in text
    assert contact.email in text
    assert "✔ 82" in text
    assert "health score &gt; 70" in text


def test_preview_page_reports_invalid_condition(admin_client):
    trigger = make_trigger({"kind": "inactivity", "days": 10}, is_active=False)
    Trigger.objects.filter(pk=trigger.pk).update(condition={"kind": "nope"})

    response = admin_client.get(preview_url(trigger))

    assert response.status_code == 200
    assert "Invalid condition at $: unknown condition kind" in (
        response.content.decode().replace("&#x27;", "'")
    )


def page_queries(admin_client, trigger, contacts):
    for _ in range(contacts):
        make_contact()
    with CaptureQueriesContext(connection) as queries:
        response = admin_client.get(preview_url(trigger))
    assert response.status_code == 200
    return len(queries)


def test_preview_page_queries_do_not_grow(admin_client):
    trigger = make_trigger({"kind": "inactivity", "days": 10}, is_active=False)

    few = page_queries(admin_client, trigger, 2)
    many = page_queries(admin_client, trigger, 40)

    assert few == many
