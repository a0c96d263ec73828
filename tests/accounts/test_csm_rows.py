"""CSMs in the admin pages of the rows the engine writes: tasks, firings, emails."""

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.urls import reverse
from django.utils import timezone

from customers.roles import CSM_GROUP, MANAGER_GROUP
from tests.accounts.builders import add_activity, join, make_user
from tests.factories import make_account
from triggers.models import CsmTask, CsmTaskStatus, Firing, OutboxEmail

pytestmark = pytest.mark.django_db

role_migration = importlib.import_module("customers.migrations.0006_role_groups")
row_migration = importlib.import_module("triggers.migrations.0008_csm_row_permissions")


@pytest.fixture(autouse=True)
def role_groups():
    # Both migrations are safe to run again; a transactional test elsewhere
    # may have flushed what they created.
    role_migration.create_role_groups(apps, schema_editor=None)
    row_migration.grant_csm_rows(apps, schema_editor=None)


@pytest.fixture
def accounts(django_user_model):
    """Two accounts with a task, a firing and an email each, owned by two CSMs."""
    csm = join(make_user(django_user_model), CSM_GROUP)
    other_csm = join(make_user(django_user_model), CSM_GROUP)
    own = make_account(name="Own account", owner=csm)
    other = make_account(name="Other account", owner=other_csm)
    now = timezone.now()
    add_activity(own, 1, now)
    add_activity(other, 1, now)
    return csm, own, other


def listed(client, url_name: str) -> list:
    response = client.get(reverse(url_name))
    assert response.status_code == 200, url_name
    return list(response.context["cl"].result_list)


def test_migration_grants_csms_their_rows_and_nothing_more():
    granted = set(
        Group.objects.get(name=CSM_GROUP)
        .permissions.filter(content_type__app_label="triggers")
        .values_list("codename", flat=True)
    )

    assert granted == {
        "view_csmtask",
        "change_csmtask",
        "view_firing",
        "view_outboxemail",
    }


def test_csm_lists_only_the_rows_of_own_accounts(client, accounts):
    csm, own, _other = accounts
    client.force_login(csm)

    tasks = listed(client, "admin:triggers_csmtask_changelist")
    firings = listed(client, "admin:triggers_firing_changelist")
    emails = listed(client, "admin:triggers_outboxemail_changelist")

    assert [task.account_id for task in tasks] == [own.pk]
    assert [firing.account_id for firing in firings] == [own.pk]
    assert [email.contact.account_id for email in emails] == [own.pk]


def test_csm_gets_403_on_rows_of_another_account(client, accounts):
    csm, _own, other = accounts
    client.force_login(csm)
    pages = {
        "task": reverse(
            "admin:triggers_csmtask_change",
            args=[CsmTask.objects.get(account=other).pk],
        ),
        "firing": reverse(
            "admin:triggers_firing_change",
            args=[Firing.objects.get(account=other).pk],
        ),
        "email": reverse(
            "admin:triggers_outboxemail_change",
            args=[OutboxEmail.objects.get(contact__account=other).pk],
        ),
    }

    for name, url in pages.items():
        assert client.get(url).status_code == 403, name


def test_mark_done_skips_tasks_of_another_account(client, accounts):
    csm, own, other = accounts
    mine = CsmTask.objects.get(account=own)
    theirs = CsmTask.objects.get(account=other)
    client.force_login(csm)

    # Selecting another account's task in the changelist action is not
    # possible from the page; a forged POST must not reach it either.
    client.post(
        reverse("admin:triggers_csmtask_changelist"),
        {"action": "mark_done", "_selected_action": [mine.pk, theirs.pk]},
    )

    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.status == CsmTaskStatus.DONE
    assert theirs.status == CsmTaskStatus.OPEN


def test_csm_cannot_move_a_task_to_another_account(client, accounts):
    csm, own, other = accounts
    task = CsmTask.objects.get(account=own)
    client.force_login(csm)

    response = client.post(
        reverse("admin:triggers_csmtask_change", args=[task.pk]),
        {
            "account": str(other.pk),
            "owner": str(csm.pk),
            "title": task.title,
            "details": task.details,
            "due_on": task.due_on.isoformat(),
            "status": task.status,
        },
    )

    assert response.status_code == 200
    assert "account" in response.context["adminform"].form.errors
    task.refresh_from_db()
    assert task.account_id == own.pk


def test_manager_reads_every_task_and_cannot_change_one(
    client, accounts, django_user_model
):
    _csm, own, other = accounts
    manager = join(make_user(django_user_model), MANAGER_GROUP)
    client.force_login(manager)
    task = CsmTask.objects.get(account=other)

    tasks = listed(client, "admin:triggers_csmtask_changelist")
    response = client.post(
        reverse("admin:triggers_csmtask_change", args=[task.pk]),
        {"title": "Changed by a manager"},
    )

    assert {row.account_id for row in tasks} == {own.pk, other.pk}
    assert response.status_code == 403
    task.refresh_from_db()
    assert task.title != "Changed by a manager"


def test_contact_portal_user_read_only(client, accounts):
    csm, own, _other = accounts
    contact = own.contacts.earliest("pk")
    client.force_login(csm)

    response = client.get(reverse("admin:customers_contact_change", args=[contact.pk]))

    form = response.context["adminform"].form
    assert "user" not in form.fields


def test_contact_form_offers_only_visible_accounts(client, accounts):
    csm, own, other = accounts
    contact = own.contacts.earliest("pk")
    client.force_login(csm)

    response = client.get(reverse("admin:customers_contact_change", args=[contact.pk]))

    offered = response.context["adminform"].form.fields["associated_accounts"]
    assert set(offered.queryset.values_list("pk", flat=True)) == {own.pk}
    assert f'<option value="{other.pk}"' not in response.content.decode()


def test_task_owner_choices_are_active_staff(client, accounts, django_user_model):
    csm, own, _other = accounts
    learner = django_user_model.objects.create_user(username="learner", password="x")
    task = CsmTask.objects.get(account=own)
    client.force_login(csm)

    response = client.get(reverse("admin:triggers_csmtask_change", args=[task.pk]))

    owners = response.context["adminform"].form.fields["owner"].queryset
    assert csm in owners
    assert learner not in owners
    assert not owners.filter(is_staff=False).exists()
