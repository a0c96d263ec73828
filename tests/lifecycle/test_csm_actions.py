"""A CSM ticks checklist items and moves stages from the account page and the admin."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.urls import reverse
from django.utils import timezone

from customers.roles import ADMIN_GROUP, CSM_GROUP, MANAGER_GROUP
from lifecycle.checklists import tick_checklists, tick_item
from lifecycle.models import (
    AccountStage,
    ChecklistItem,
    ChecklistTick,
    ChecklistUntick,
    Stage,
    StageChange,
)
from lifecycle.services import evaluate_stages
from tests.accounts.builders import grant, join, make_user
from tests.factories import NOW, make_account, make_contact, make_event

pytestmark = pytest.mark.django_db

role_migration = importlib.import_module("customers.migrations.0006_role_groups")
stage_permissions = importlib.import_module(
    "lifecycle.migrations.0009_csm_stage_permissions"
)
untick_permissions = importlib.import_module(
    "lifecycle.migrations.0010_checklist_unticks"
)


@pytest.fixture(autouse=True)
def role_groups():
    # A transactional test elsewhere may have flushed the groups that the
    # migrations filled; both functions only add, so running them is safe.
    role_migration.create_role_groups(apps, schema_editor=None)
    stage_permissions.grant_csm_stage_permissions(apps, schema_editor=None)
    untick_permissions.grant_untick_permissions(apps, schema_editor=None)


@pytest.fixture
def accounts(django_user_model):
    """The CSM of the tests, an account they own and one another CSM owns."""
    csm = join(make_user(django_user_model), CSM_GROUP)
    other_csm = join(make_user(django_user_model), CSM_GROUP)
    own = make_account(name="Own account", owner=csm)
    other = make_account(name="Other account", owner=other_csm)
    evaluate_stages(NOW)
    return csm, own, other


@pytest.fixture
def setup_item() -> ChecklistItem:
    return ChecklistItem.objects.create(
        stage=Stage.objects.get(slug="onboarding"), name="Set up the account"
    )


def tick_url(account, item) -> str:
    return reverse("lifecycle:tick_item", args=[account.pk, item.pk])


def move_url(account) -> str:
    return reverse("lifecycle:move_stage", args=[account.pk])


def stage_of(account) -> str:
    return AccountStage.objects.get(account=account).stage.slug


# -- ticking by hand on the account page ----------------------------------------


def test_csm_ticks_own_account_item(client, accounts, setup_item):
    csm, own, _ = accounts
    client.force_login(csm)
    before = timezone.now()

    response = client.post(tick_url(own, setup_item))

    assert response.status_code == 302
    assert response["Location"] == reverse("accounts:detail", args=[own.pk]) + "#stage"
    tick = ChecklistTick.objects.get(account=own, item=setup_item)
    assert tick.source == "manual"
    assert tick.ticked_by == csm
    assert before <= tick.ticked_at <= timezone.now()


def test_second_tick_changes_nothing(client, accounts, setup_item):
    csm, own, _ = accounts
    client.force_login(csm)
    client.post(tick_url(own, setup_item))
    first = ChecklistTick.objects.get(account=own, item=setup_item)

    response = client.post(tick_url(own, setup_item), follow=True)

    assert ChecklistTick.objects.filter(account=own, item=setup_item).count() == 1
    assert ChecklistTick.objects.get(pk=first.pk).ticked_at == first.ticked_at
    assert (
        "&quot;Set up the account&quot; was ticked already."
        in response.content.decode()
    )


def test_csm_cannot_tick_other_account(client, accounts, setup_item):
    csm, _, other = accounts
    client.force_login(csm)

    response = client.post(tick_url(other, setup_item))

    assert response.status_code == 403
    assert not ChecklistTick.objects.exists()


def test_view_all_csm_ticks_any_account(client, accounts, setup_item):
    csm, _, other = accounts
    client.force_login(grant(csm, "customers.view_all_accounts"))

    response = client.post(tick_url(other, setup_item))

    assert response.status_code == 302
    assert ChecklistTick.objects.get(account=other).ticked_by == csm


def test_manager_cannot_tick(client, accounts, setup_item, django_user_model):
    _, own, _ = accounts
    client.force_login(join(make_user(django_user_model), MANAGER_GROUP))

    response = client.post(tick_url(own, setup_item))

    assert response.status_code == 403
    assert not ChecklistTick.objects.exists()


def test_tick_needs_sign_in_and_post(client, accounts, setup_item):
    csm, own, _ = accounts

    signed_out = client.post(tick_url(own, setup_item))
    client.force_login(csm)
    by_get = client.get(tick_url(own, setup_item))

    assert signed_out.status_code == 302
    assert signed_out["Location"].startswith(reverse("admin:login"))
    assert by_get.status_code == 405
    assert not ChecklistTick.objects.exists()


def test_unknown_item_not_found(client, accounts):
    csm, own, _ = accounts
    client.force_login(csm)

    response = client.post(reverse("lifecycle:tick_item", args=[own.pk, 999999]))

    assert response.status_code == 404


def test_page_offers_forms_to_editors_only(
    client, accounts, setup_item, django_user_model
):
    csm, own, _ = accounts
    manager = join(make_user(django_user_model), MANAGER_GROUP)
    page = reverse("accounts:detail", args=[own.pk])

    client.force_login(csm)
    as_csm = client.get(page).content.decode()
    client.force_login(manager)
    as_manager = client.get(page).content.decode()

    assert tick_url(own, setup_item) in as_csm
    assert move_url(own) in as_csm
    assert tick_url(own, setup_item) not in as_manager
    assert move_url(own) not in as_manager
    assert "Checklist: 0 of 1 ticked" in as_manager


# -- moving by hand on the account page -------------------------------------------


def test_csm_moves_own_account(client, accounts):
    csm, own, _ = accounts
    client.force_login(csm)

    response = client.post(
        move_url(own), {"stage": "adoption", "reason": "Kickoff done by phone"}
    )

    assert response.status_code == 302
    assert stage_of(own) == "adoption"
    change = StageChange.objects.get(account=own, source="manual")
    assert change.from_stage is not None
    assert change.from_stage.slug == "onboarding"
    assert change.to_stage.slug == "adoption"
    assert change.changed_by == csm
    assert change.reason == "Kickoff done by phone"


@pytest.mark.parametrize(
    ("form", "message"),
    [
        ({"stage": "adoption", "reason": "  "}, "A reason is required"),
        ({"stage": "adopton", "reason": "Kickoff"}, "Stage &#x27;adopton&#x27; does"),
        ({"stage": "adoption", "reason": "x" * 2001}, "2001 characters"),
    ],
)
def test_invalid_move_rejected(client, accounts, form, message):
    csm, own, _ = accounts
    client.force_login(csm)

    response = client.post(move_url(own), form)

    assert response.status_code == 400
    assert message in response.content.decode()
    assert stage_of(own) == "onboarding"
    assert not StageChange.objects.filter(source="manual").exists()


def test_csm_cannot_move_other_account(client, accounts):
    csm, _, other = accounts
    client.force_login(csm)

    response = client.post(move_url(other), {"stage": "adoption", "reason": "Why"})

    assert response.status_code == 403
    assert stage_of(other) == "onboarding"


def test_manager_cannot_move(client, accounts, django_user_model):
    _, own, _ = accounts
    client.force_login(join(make_user(django_user_model), MANAGER_GROUP))

    response = client.post(move_url(own), {"stage": "adoption", "reason": "Why"})

    assert response.status_code == 403
    assert stage_of(own) == "onboarding"


# -- the admin pages, narrowed to the CSM's accounts ---------------------------


def test_csm_admin_lists_own_stages_only(client, accounts):
    csm, own, other = accounts
    client.force_login(csm)

    stages = client.get(reverse("admin:lifecycle_accountstage_changelist"))
    history = client.get(reverse("admin:lifecycle_stagechange_changelist"))
    other_stage = AccountStage.objects.get(account=other)
    other_page = client.get(
        reverse("admin:lifecycle_accountstage_change", args=[other_stage.pk])
    )

    assert stages.status_code == 200
    assert [row.account for row in stages.context["cl"].result_list] == [own]
    assert {row.account for row in history.context["cl"].result_list} == {own}
    assert other_page.status_code == 403


def test_csm_admin_moves_own_account(client, accounts):
    csm, own, _ = accounts
    client.force_login(csm)
    placement = AccountStage.objects.get(account=own)

    response = client.post(
        reverse("admin:lifecycle_accountstage_change", args=[placement.pk]),
        {
            "stage": Stage.objects.get(slug="adoption").pk,
            "reason": "Kickoff done by phone",
        },
    )

    assert response.status_code == 302
    assert stage_of(own) == "adoption"
    assert StageChange.objects.get(account=own, source="manual").changed_by == csm


def test_csm_admin_ticks_own_account_only(client, accounts, setup_item):
    csm, own, other = accounts
    client.force_login(csm)
    url = reverse("admin:lifecycle_checklisttick_add")

    rejected = client.post(url, {"account": other.pk, "item": setup_item.pk})
    ticked = client.post(url, {"account": own.pk, "item": setup_item.pk})

    assert rejected.status_code == 200
    assert "Select a valid choice" in rejected.content.decode()
    assert ticked.status_code == 302
    tick = ChecklistTick.objects.get()
    assert (tick.account, tick.ticked_by, tick.source) == (own, csm, "manual")


def test_manager_admin_is_read_only(client, accounts, django_user_model):
    _, own, _ = accounts
    client.force_login(join(make_user(django_user_model), MANAGER_GROUP))
    placement = AccountStage.objects.get(account=own)

    listed = client.get(reverse("admin:lifecycle_accountstage_changelist"))
    saved = client.post(
        reverse("admin:lifecycle_accountstage_change", args=[placement.pk]),
        {"stage": Stage.objects.get(slug="adoption").pk, "reason": "Why"},
    )
    tick_page = client.get(reverse("admin:lifecycle_checklisttick_add"))

    assert listed.status_code == 200
    assert saved.status_code == 403
    assert tick_page.status_code == 403
    assert stage_of(own) == "onboarding"


def test_role_groups_stage_permissions():
    def codenames(group_name: str) -> set[str]:
        from django.contrib.auth.models import Group

        return set(
            Group.objects.get(name=group_name)
            .permissions.filter(content_type__app_label="lifecycle")
            .values_list("codename", flat=True)
        )

    assert codenames(CSM_GROUP) == {
        *stage_permissions.CSM_PERMISSIONS,
        "view_checklistuntick",
    }
    assert "view_checklistuntick" in codenames(MANAGER_GROUP)
    assert "delete_checklistuntick" in codenames(ADMIN_GROUP)
    assert {"change_accountstage", "add_checklisttick"} <= codenames(ADMIN_GROUP)
    assert not {"change_accountstage", "add_checklisttick"} & codenames(MANAGER_GROUP)


def test_stage_time_report_for_managers(client, accounts, django_user_model):
    _, own, _ = accounts
    StageChange.objects.filter(account=own).update(
        changed_at=timezone.now() - timedelta(days=12)
    )
    client.force_login(join(make_user(django_user_model), MANAGER_GROUP))

    response = client.get(reverse("admin:lifecycle_stage_changelist"))

    assert response.status_code == 200
    onboarding = next(
        row for row in response.context["stage_times"] if row.stage.slug == "onboarding"
    )
    assert onboarding.current_accounts == 2
    assert "Time in each stage" in response.content.decode()


def test_timeline_shows_tick_by_hand(client, accounts, setup_item):
    csm, own, _ = accounts
    client.force_login(csm)
    client.post(tick_url(own, setup_item))

    page = client.get(reverse("accounts:detail", args=[own.pk]))

    titles = {entry.title: entry.detail for entry, _ in page.context["timeline"]}
    assert titles["Ticked Set up the account"] == (
        f"Onboarding checklist · Ticked by a CSM · by {csm.get_username()}"
    )


# -- taking a tick by hand back ---------------------------------------------------


def untick_url(account, item) -> str:
    return reverse("lifecycle:untick_item", args=[account.pk, item.pk])


def test_csm_unticks_own_tick(client, accounts, setup_item):
    csm, own, _ = accounts
    client.force_login(csm)
    client.post(tick_url(own, setup_item))
    ticked_at = ChecklistTick.objects.get().ticked_at

    response = client.post(untick_url(own, setup_item), {"reason": "Ticked by mistake"})

    assert response.status_code == 302
    assert not ChecklistTick.objects.exists()
    untick = ChecklistUntick.objects.get()
    assert (untick.account, untick.item) == (own, setup_item)
    assert (untick.ticked_at, untick.ticked_by) == (ticked_at, csm)
    assert untick.unticked_by == csm
    assert untick.reason == "Ticked by mistake"
    assert untick.unticked_at >= ticked_at


def test_untick_twice_records_once(client, accounts, setup_item):
    csm, own, _ = accounts
    client.force_login(csm)
    client.post(tick_url(own, setup_item))
    client.post(untick_url(own, setup_item), {"reason": "Ticked by mistake"})

    again = client.post(
        untick_url(own, setup_item), {"reason": "Ticked by mistake"}, follow=True
    )

    assert ChecklistUntick.objects.count() == 1
    assert "&quot;Set up the account&quot; is not ticked." in again.content.decode()


def test_untick_needs_reason(client, accounts, setup_item):
    csm, own, _ = accounts
    client.force_login(csm)
    client.post(tick_url(own, setup_item))

    response = client.post(untick_url(own, setup_item), {"reason": " "})

    assert response.status_code == 400
    assert "A reason is required to untick" in response.content.decode()
    assert ChecklistTick.objects.count() == 1
    assert not ChecklistUntick.objects.exists()


def test_untick_rejects_tick_by_usage(client, accounts, admin_user):
    csm, own, _ = accounts
    workflow = ChecklistItem.objects.create(
        stage=Stage.objects.get(slug="onboarding"),
        name="Run the first workflow",
        event_name="Workflow Run",
    )
    make_event(make_contact(own), NOW - timedelta(days=1), name="Workflow Run")
    tick_checklists(NOW)
    client.force_login(csm)

    response = client.post(untick_url(own, workflow), {"reason": "Looks wrong"})

    assert response.status_code == 400
    assert "only ticks by hand can be taken back" in response.content.decode()
    assert ChecklistTick.objects.get(account=own, item=workflow).source == "event"


@pytest.mark.parametrize("role", ["other CSM", "manager"])
def test_untick_forbidden_without_edit(
    client, accounts, setup_item, django_user_model, role
):
    csm, own, _ = accounts
    tick_item(own, setup_item, by=csm)
    if role == "manager":
        client.force_login(join(make_user(django_user_model), MANAGER_GROUP))
    else:
        client.force_login(join(make_user(django_user_model), CSM_GROUP))

    response = client.post(untick_url(own, setup_item), {"reason": "Wrong"})

    assert response.status_code == 403
    assert ChecklistTick.objects.count() == 1


def test_page_and_timeline_show_untick(client, accounts, setup_item):
    csm, own, _ = accounts
    client.force_login(csm)
    client.post(tick_url(own, setup_item))
    ticked_page = client.get(reverse("accounts:detail", args=[own.pk]))
    client.post(untick_url(own, setup_item), {"reason": "Ticked by mistake"})

    page = client.get(reverse("accounts:detail", args=[own.pk]))

    assert untick_url(own, setup_item) in ticked_page.content.decode()
    titles = {entry.title: entry.detail for entry, _ in page.context["timeline"]}
    assert titles["Unticked Set up the account"] == (
        f"by {csm.get_username()} · Ticked by mistake"
    )
    assert tick_url(own, setup_item) in page.content.decode()
