"""Checklist items ticked by usage events, by conditions and by hand."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from lifecycle.checklists import account_checklist, tick_checklists, tick_item
from lifecycle.models import ChecklistItem, ChecklistTick, Stage
from tests.factories import NOW, make_account, make_contact, make_event

pytestmark = pytest.mark.django_db

THREE_CONTACTS = {"kind": "contact_count", "op": ">=", "value": 3}


def item(name: str, **fields) -> ChecklistItem:
    return ChecklistItem.objects.create(
        stage=Stage.objects.get(slug="onboarding"), name=name, **fields
    )


def ticks(checklist_item) -> dict[int, tuple]:
    return {
        tick.account_id: (tick.ticked_at, tick.source)
        for tick in ChecklistTick.objects.filter(item=checklist_item)
    }


def test_event_ticks_at_first_event():
    workflow = item("Run the first workflow", event_name="Workflow Run")
    account = make_account()
    contact = make_contact(account)
    make_event(contact, NOW - timedelta(days=3), name="Workflow Run")
    make_event(contact, NOW - timedelta(days=1), name="Workflow Run")
    make_event(contact, NOW - timedelta(days=5), name="Signed In")
    idle = make_account()
    make_event(make_contact(idle), NOW - timedelta(days=2), name="Signed In")

    report = tick_checklists(NOW)

    assert ticks(workflow) == {account.pk: (NOW - timedelta(days=3), "event")}
    assert report.ticked == 1


def test_event_after_as_of_ignored():
    workflow = item("Run the first workflow", event_name="Workflow Run")
    contact = make_contact(make_account())
    make_event(contact, NOW + timedelta(seconds=1), name="Workflow Run")

    tick_checklists(NOW)

    assert ticks(workflow) == {}


def test_condition_ticks_at_as_of():
    team = item("Invite 3 team members", condition=THREE_CONTACTS)
    account = make_account()
    for _ in range(3):
        make_contact(account)
    small = make_account()
    make_contact(small)

    tick_checklists(NOW)

    assert ticks(team) == {account.pk: (NOW, "condition")}


def test_second_run_changes_nothing():
    workflow = item("Run the first workflow", event_name="Workflow Run")
    team = item("Invite 3 team members", condition=THREE_CONTACTS)
    account = make_account()
    for _ in range(3):
        make_contact(account)
    make_event(
        account.contacts.earliest("pk"), NOW - timedelta(days=2), name="Workflow Run"
    )
    tick_checklists(NOW)
    before = (ticks(workflow), ticks(team))

    again = tick_checklists(NOW)
    later = tick_checklists(NOW + timedelta(days=1))

    assert (again.ticked, later.ticked) == (0, 0)
    assert (ticks(workflow), ticks(team)) == before


def test_earlier_run_moves_tick_back():
    team = item("Invite 3 team members", condition=THREE_CONTACTS)
    account = make_account()
    for _ in range(3):
        make_contact(account, added_at=NOW - timedelta(days=30))
    tick_checklists(NOW)

    tick_checklists(NOW - timedelta(days=10))

    assert ticks(team) == {account.pk: (NOW - timedelta(days=10), "condition")}


def test_event_before_manual_tick_wins(admin_user):
    workflow = item("Run the first workflow", event_name="Workflow Run")
    account = make_account()
    tick_item(account, workflow, by=admin_user, at=NOW)
    make_event(make_contact(account), NOW - timedelta(days=4), name="Workflow Run")

    tick_checklists(NOW)

    tick = ChecklistTick.objects.get(item=workflow, account=account)
    assert (tick.ticked_at, tick.source) == (NOW - timedelta(days=4), "event")
    assert tick.ticked_by is None


def test_manual_tick_once(admin_user):
    setup = item("Set up the account")
    account = make_account()

    first = tick_item(account, setup, by=admin_user, at=NOW)
    second = tick_item(account, setup, by=admin_user)

    assert first is not None
    assert (first.source, first.ticked_by) == ("manual", admin_user)
    assert second is None
    assert ChecklistTick.objects.filter(item=setup).count() == 1


def test_invalid_condition_skipped():
    broken = item("Broken", condition={"kind": "no_such_kind"})
    team = item("Invite 3 team members", condition=THREE_CONTACTS)
    account = make_account()
    for _ in range(3):
        make_contact(account)

    report = tick_checklists(NOW)

    assert report.invalid_items == (broken.pk,)
    assert ticks(team) == {account.pk: (NOW, "condition")}


def test_run_queries_do_not_grow():
    item("Run the first workflow", event_name="Workflow Run")
    item("Invite 3 team members", condition=THREE_CONTACTS)

    def queries_for(count: int) -> int:
        ChecklistTick.objects.all().delete()
        for _ in range(count):
            account = make_account()
            for _ in range(3):
                make_contact(account)
            make_event(account.contacts.earliest("pk"), NOW, name="Workflow Run")
        with CaptureQueriesContext(connection) as queries:
            tick_checklists(NOW)
        return len(queries)

    assert queries_for(2) == queries_for(20)


def test_checklist_as_of_reads_ticks_by_then(admin_user):
    setup = item("Set up the account")
    account = make_account()
    tick_item(account, setup, by=admin_user, at=NOW)

    before = account_checklist(account, NOW - timedelta(seconds=1))
    after = account_checklist(account, NOW)

    assert [entry.tick for entry in before] == [None]
    assert after[0].tick is not None
    assert after[0].tick.ticked_at == NOW


def test_account_page_shows_checklist(admin_client):
    item("Run the first workflow", event_name="Workflow Run")
    item("Set up the account")
    account = make_account()
    make_event(make_contact(account), NOW, name="Workflow Run")
    tick_checklists(NOW)

    page = admin_client.get(reverse("accounts:detail", args=[account.pk]))

    text = page.content.decode()
    assert "Checklist: 1 of 2 ticked" in text
    assert "A usage event" in text
    assert "a CSM ticks it" in text


def test_admin_tick_by_hand(admin_client, admin_user):
    setup = item("Set up the account")
    account = make_account()

    response = admin_client.post(
        reverse("admin:lifecycle_checklisttick_add"),
        {"account": account.pk, "item": setup.pk},
    )

    assert response.status_code == 302
    tick = ChecklistTick.objects.get(item=setup, account=account)
    assert (tick.source, tick.ticked_by) == ("manual", admin_user)


def test_admin_item_blank_condition(admin_client):
    response = admin_client.post(
        reverse("admin:lifecycle_checklistitem_add"),
        {
            "stage": Stage.objects.get(slug="onboarding").pk,
            "order": 1,
            "name": "Run the first workflow",
            "description": "",
            "event_name": "Workflow Run",
            "condition": "",
        },
    )

    assert response.status_code == 302
    saved = ChecklistItem.objects.get(name="Run the first workflow")
    assert saved.condition is None


def test_admin_item_condition_as_text(admin_client):
    url = reverse("admin:lifecycle_checklistitem_add")
    form = {
        "stage": Stage.objects.get(slug="onboarding").pk,
        "order": 1,
        "name": "Invite 3 team members",
        "description": "",
        "event_name": "",
        "condition": "contact_count >= 3",
    }

    saved = admin_client.post(url, form)
    form["condition"] = "contact_count >="
    rejected = admin_client.post(url, {**form, "name": "Broken"})

    assert saved.status_code == 302
    assert ChecklistItem.objects.get(name=form["name"]).condition == THREE_CONTACTS
    assert rejected.status_code == 200
    assert "Line 1, column" in rejected.content.decode()


def test_role_groups_have_checklist_permissions():
    admins = Group.objects.get(name="Nudgepath admins")
    managers = Group.objects.get(name="CS managers")
    csms = Group.objects.get(name="CSMs")

    def codenames(group) -> set[str]:
        return set(
            group.permissions.filter(
                content_type__app_label="lifecycle",
                content_type__model__startswith="checklist",
            ).values_list("codename", flat=True)
        )

    assert codenames(admins) == {
        f"{action}_{model}"
        for action in ("add", "change", "delete", "view")
        for model in ("checklistitem", "checklisttick", "checklistuntick")
    }
    assert codenames(managers) == {
        "view_checklistitem",
        "view_checklisttick",
        "view_checklistuntick",
    }
    # Ticking by hand on their own accounts (lifecycle 0009 and 0010).
    assert codenames(csms) == {
        "view_checklisttick",
        "add_checklisttick",
        "view_checklistuntick",
    }
