"""Admin pages of a trigger: activation, preview and backtest, with permissions."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse
from django.utils import timezone

from tests.factories import make_contact, make_event
from tests.triggers.factories import make_trigger
from triggers.models import Firing, Trigger

pytestmark = pytest.mark.django_db

INACTIVE_10_DAYS = {"kind": "inactivity", "days": 10}


def staff_user(client, *codenames):
    user = User.objects.create_user("csm", "csm@example.com", "pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client.force_login(user)
    return user


def page(name, trigger):
    return reverse(f"admin:triggers_trigger_{name}", args=[trigger.pk])


def draft():
    return make_trigger(INACTIVE_10_DAYS, is_active=False)


def test_activate_page_shows_counts(admin_client):
    make_contact()
    make_contact()
    busy = make_contact()
    make_event(busy, timezone.now() - timedelta(days=1))
    trigger = draft()

    response = admin_client.get(page("activate", trigger))

    text = response.content.decode()
    assert response.status_code == 200
    assert "<strong>2</strong> subjects match now" in " ".join(text.split())
    assert 'name="csrfmiddlewaretoken"' in text
    assert "checked" not in text


def test_activate_requires_a_choice(admin_client):
    make_contact()
    trigger = draft()

    response = admin_client.post(page("activate", trigger), {})

    assert response.status_code == 200
    assert "Choose whether the trigger acts" in response.content.decode()
    trigger.refresh_from_db()
    assert not trigger.is_active


def test_activate_from_now_on_records_baseline(admin_client):
    contact = make_contact()
    trigger = draft()

    response = admin_client.post(page("activate", trigger), {"choice": "from_now_on"})

    assert response.status_code == 302
    assert response.url == page("change", trigger)
    trigger.refresh_from_db()
    assert trigger.is_active
    assert not trigger.backfill
    assert trigger.activated_at is not None
    firing = Firing.objects.get(trigger=trigger)
    assert firing.contact_id == contact.pk
    assert firing.outcome == "baseline"


def test_activate_with_backfill_writes_no_firing(admin_client):
    make_contact()
    trigger = draft()

    admin_client.post(page("activate", trigger), {"choice": "backfill"})

    trigger.refresh_from_db()
    assert trigger.is_active
    assert trigger.backfill
    assert not Firing.objects.exists()


def test_activate_rejects_get_side_effects(admin_client):
    make_contact()
    trigger = draft()

    admin_client.get(page("activate", trigger), {"choice": "backfill"})

    trigger.refresh_from_db()
    assert not trigger.is_active


def test_activate_needs_csrf_token(client):
    staff_user(client, "view_trigger", "change_trigger")
    client.handler.enforce_csrf_checks = True
    trigger = draft()

    response = client.post(page("activate", trigger), {"choice": "backfill"})

    assert response.status_code == 403
    trigger.refresh_from_db()
    assert not trigger.is_active


def test_activate_forbidden_without_change_permission(client):
    staff_user(client, "view_trigger")
    trigger = draft()

    get = client.get(page("activate", trigger))
    post = client.post(page("activate", trigger), {"choice": "backfill"})

    assert get.status_code == 403
    assert post.status_code == 403
    trigger.refresh_from_db()
    assert not trigger.is_active


@pytest.mark.parametrize("name", ["preview", "backtest", "activate"])
def test_pages_forbidden_without_permission(client, name):
    staff_user(client)
    trigger = draft()

    response = client.get(page(name, trigger))

    assert response.status_code == 403


@pytest.mark.parametrize("name", ["preview", "backtest", "activate"])
def test_pages_need_staff_login(client, name):
    trigger = draft()

    response = client.get(page(name, trigger))

    assert response.status_code == 302
    assert "/login/" in response.url


def test_view_permission_allows_preview_and_backtest(client):
    staff_user(client, "view_trigger")
    make_contact()
    trigger = draft()

    preview = client.get(page("preview", trigger))
    backtest = client.get(page("backtest", trigger))

    assert preview.status_code == 200
    assert backtest.status_code == 200
    assert "Activate…" not in preview.content.decode()


def test_active_trigger_activate_page_redirects(admin_client):
    trigger = make_trigger(INACTIVE_10_DAYS)

    response = admin_client.get(page("activate", trigger))

    assert response.status_code == 302
    assert response.url == page("change", trigger)


def test_unknown_trigger_is_not_found(admin_client):
    response = admin_client.get(
        reverse("admin:triggers_trigger_preview", args=[999999])
    )

    assert response.status_code == 404


def empty_inlines(admin_client):
    """Return the management fields of the add page's inlines, with no rows."""
    page = admin_client.get(reverse("admin:triggers_trigger_add"))
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        prefix = inline.formset.prefix
        data[f"{prefix}-TOTAL_FORMS"] = "0"
        data[f"{prefix}-INITIAL_FORMS"] = "0"
    return data


def test_ticking_active_on_add_goes_to_activation(admin_client):
    make_contact()

    response = admin_client.post(
        reverse("admin:triggers_trigger_add"),
        {
            **empty_inlines(admin_client),
            "name": "Quiet contacts",
            "slug": "quiet",
            "subject_type": "contact",
            "condition": '{"kind": "inactivity", "days": 10}',
            "occurrence": "once",
            "recipients": "champions",
            "holdout_percent": "0",
            "is_active": "on",
        },
    )

    trigger = Trigger.objects.get(slug="quiet")
    assert response.status_code == 302
    assert response.url == page("activate", trigger)
    assert not trigger.is_active
    assert not Firing.objects.exists()


def test_activate_action_takes_one_trigger(admin_client):
    first = draft()
    second = draft()
    changelist = reverse("admin:triggers_trigger_changelist")

    one = admin_client.post(
        changelist, {"action": "activate", "_selected_action": [first.pk]}
    )
    two = admin_client.post(
        changelist,
        {"action": "activate", "_selected_action": [first.pk, second.pk]},
        follow=True,
    )

    assert one.status_code == 302
    assert one.url == page("activate", first)
    assert "Select exactly one trigger" in two.content.decode()
    assert not Trigger.objects.filter(is_active=True).exists()


def test_change_page_links_to_pages(admin_client):
    trigger = draft()

    response = admin_client.get(page("change", trigger))

    text = response.content.decode()
    assert page("preview", trigger) in text
    assert page("backtest", trigger) in text
    assert page("activate", trigger) in text
