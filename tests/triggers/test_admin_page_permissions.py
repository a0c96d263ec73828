"""Trigger pages check permissions before looking the trigger up."""

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from tests.triggers.factories import make_trigger

pytestmark = pytest.mark.django_db

MISSING_ID = 999999
PAGES = [
    ("admin:triggers_trigger_preview", []),
    ("admin:triggers_trigger_backtest", []),
    ("admin:triggers_trigger_activate", []),
    ("admin:triggers_trigger_backtest_run", [1]),
]


def staff_client(client, *codenames):
    user = User.objects.create_user("csm", "csm@example.com", "pw", is_staff=True)
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    client.force_login(user)
    return client


@pytest.mark.parametrize(("name", "extra"), PAGES)
def test_missing_trigger_forbidden_without_permission(client, name, extra):
    staff_client(client)
    existing = make_trigger({"kind": "inactivity", "days": 10}, is_active=False)

    missing = client.get(reverse(name, args=[MISSING_ID, *extra]))
    present = client.get(reverse(name, args=[existing.pk, *extra]))

    assert missing.status_code == 403
    assert present.status_code == 403


@pytest.mark.parametrize(("name", "extra"), PAGES)
def test_missing_trigger_not_found_with_permission(client, name, extra):
    staff_client(client, "view_trigger", "change_trigger")

    response = client.get(reverse(name, args=[MISSING_ID, *extra]))

    assert response.status_code == 404


def test_activate_needs_change_not_view(client):
    staff_client(client, "view_trigger")

    missing = client.get(reverse("admin:triggers_trigger_activate", args=[MISSING_ID]))

    assert missing.status_code == 403
