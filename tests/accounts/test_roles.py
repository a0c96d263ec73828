"""Each role against each account view and the customer record's admin pages."""

import importlib

import pytest
from django.apps import apps
from django.contrib.auth.models import Group
from django.urls import reverse

from customers.models import Account
from customers.roles import ADMIN_GROUP, CSM_GROUP, MANAGER_GROUP
from tests.accounts.builders import grant, join, make_user
from tests.factories import make_account, make_contact, make_ticket

pytestmark = pytest.mark.django_db

role_migration = importlib.import_module("customers.migrations.0006_role_groups")


@pytest.fixture(autouse=True)
def role_groups():
    # A transactional test elsewhere may have flushed the groups that the
    # migration created; creating them again is idempotent.
    role_migration.create_role_groups(apps, schema_editor=None)


@pytest.fixture
def accounts(django_user_model):
    """Two accounts: one owned by the CSM of the tests, one by another CSM."""
    csm = join(make_user(django_user_model), CSM_GROUP)
    other_csm = join(make_user(django_user_model), CSM_GROUP)
    own = make_account(name="Own account", owner=csm)
    other = make_account(name="Other account", owner=other_csm)
    return csm, own, other


def view_urls(own: Account, other: Account) -> dict[str, str]:
    return {
        "list": reverse("accounts:list"),
        "attention": reverse("accounts:attention"),
        "own page": reverse("accounts:detail", args=[own.pk]),
        "other page": reverse("accounts:detail", args=[other.pk]),
    }


def admin_change(account: Account) -> str:
    return reverse("admin:customers_account_change", args=[account.pk])


ADMIN_CHANGELIST = reverse("admin:customers_account_changelist")


def change_form(account: Account, **changes) -> dict[str, str]:
    """The POST body of the account's admin change form, with changes."""
    data = {
        "name": account.name,
        "external_id": account.external_id,
        "industry": account.industry,
        "country": account.country,
        "plan": account.plan,
        "seats": str(account.seats),
        "mrr": str(account.mrr),
        "arr": str(account.arr),
        "signup_date": account.signup_date.isoformat(),
        "kickoff_date": "",
        "renewal_date": "",
        "churned_on": "",
        "time_zone": account.time_zone,
        "properties": "{}",
        "owner": str(account.owner_id or ""),
        "contacts-TOTAL_FORMS": "0",
        "contacts-INITIAL_FORMS": "0",
        "contacts-MIN_NUM_FORMS": "0",
        "contacts-MAX_NUM_FORMS": "1000",
    }
    data.update(changes)
    return data


def listed_names(response) -> set[str]:
    return {row.account.name for row in response.context["rows"]}


# -- the groups ------------------------------------------------------------------


def test_migration_creates_the_three_groups():
    csm = set(
        Group.objects.get(name=CSM_GROUP).permissions.values_list("codename", flat=True)
    )
    manager = Group.objects.get(name=MANAGER_GROUP).permissions
    admin = Group.objects.get(name=ADMIN_GROUP).permissions

    assert {"view_account", "change_account", "view_contact"} <= csm
    assert "view_all_accounts" not in csm
    # CSMs add nothing but checklist ticks by hand (lifecycle 0009).
    added = {code for code in csm if code.startswith("add_")}
    assert added <= {"add_checklisttick"}
    assert not {code for code in csm if code.startswith("delete_")}
    assert manager.filter(codename="view_all_accounts").exists()
    assert not manager.exclude(codename__startswith="view_").exists()
    assert manager.filter(content_type__app_label="triggers").exists()
    assert admin.filter(codename="change_trigger").exists()
    assert admin.filter(codename="add_stage").exists()
    assert admin.filter(codename="change_periodictask").exists()
    assert admin.filter(codename="view_all_accounts").exists()
    assert not admin.filter(content_type__app_label="auth").exists()


# -- the account views -----------------------------------------------------------


def test_anonymous_users_are_sent_to_sign_in(client, accounts):
    _csm, own, other = accounts

    for name, url in view_urls(own, other).items():
        response = client.get(url)
        assert response.status_code == 302, name
        assert response.url.startswith(reverse("admin:login")), name


def test_users_without_a_role_get_403(client, accounts, django_user_model):
    _csm, own, other = accounts
    learner = make_user(django_user_model, staff=False)
    staff = make_user(django_user_model)
    # A learner given the permission still needs to be staff.
    learner_with_permission = grant(
        make_user(django_user_model, staff=False), "customers.view_account"
    )

    for user in (learner, staff, learner_with_permission):
        client.force_login(user)
        for name, url in view_urls(own, other).items():
            assert client.get(url).status_code == 403, (user.username, name)


def test_csm_sees_own_accounts_only(client, accounts):
    csm, own, other = accounts
    client.force_login(csm)
    urls = view_urls(own, other)

    assert listed_names(client.get(urls["list"])) == {"Own account"}
    assert client.get(urls["attention"]).status_code == 200
    own_page = client.get(urls["own page"])
    assert own_page.status_code == 200
    assert own_page.context["may_edit"] is True
    assert client.get(urls["other page"]).status_code == 403


def test_csm_with_view_all_sees_every_account(client, accounts):
    csm, own, other = accounts
    csm = grant(csm, "customers.view_all_accounts")
    client.force_login(csm)
    urls = view_urls(own, other)

    assert listed_names(client.get(urls["list"])) == {"Own account", "Other account"}
    other_page = client.get(urls["other page"])
    assert other_page.status_code == 200
    assert other_page.context["may_edit"] is True


def test_manager_sees_every_account_read_only(client, accounts, django_user_model):
    _csm, own, other = accounts
    manager = join(make_user(django_user_model), MANAGER_GROUP)
    client.force_login(manager)
    urls = view_urls(own, other)

    assert listed_names(client.get(urls["list"])) == {"Own account", "Other account"}
    assert client.get(urls["attention"]).status_code == 200
    for name in ("own page", "other page"):
        page = client.get(urls[name])
        assert page.status_code == 200, name
        assert page.context["may_edit"] is False, name
        assert "Edit account" not in page.content.decode(), name


def test_admin_group_sees_and_may_edit_every_account(
    client, accounts, django_user_model
):
    _csm, own, other = accounts
    configurer = join(make_user(django_user_model), ADMIN_GROUP)
    client.force_login(configurer)
    urls = view_urls(own, other)

    assert listed_names(client.get(urls["list"])) == {"Own account", "Other account"}
    page = client.get(urls["other page"])
    assert page.status_code == 200
    assert page.context["may_edit"] is True


# -- the Account admin -----------------------------------------------------------


def test_admin_sign_in_for_anonymous_and_non_staff(client, accounts, django_user_model):
    _csm, own, _other = accounts
    learner = make_user(django_user_model, staff=False)

    for user in (None, learner):
        if user is not None:
            client.force_login(user)
        for url in (ADMIN_CHANGELIST, admin_change(own)):
            response = client.get(url)
            assert response.status_code == 302
            assert response.url.startswith(reverse("admin:login"))
        response = client.post(admin_change(own), change_form(own, name="Renamed"))
        assert response.status_code == 302
    own.refresh_from_db()
    assert own.name == "Own account"


def test_admin_rejects_staff_without_a_role(client, accounts, django_user_model):
    _csm, own, _other = accounts
    client.force_login(make_user(django_user_model))

    assert client.get(ADMIN_CHANGELIST).status_code == 403
    assert client.get(admin_change(own)).status_code == 403
    response = client.post(admin_change(own), change_form(own, name="Renamed"))
    assert response.status_code == 403
    own.refresh_from_db()
    assert own.name == "Own account"


def test_admin_csm_lists_and_edits_own_accounts_only(client, accounts):
    csm, own, other = accounts
    client.force_login(csm)

    changelist = client.get(ADMIN_CHANGELIST)
    assert changelist.status_code == 200
    assert {account.name for account in changelist.context["cl"].result_list} == {
        "Own account"
    }

    own_page = client.get(admin_change(own))
    assert own_page.status_code == 200
    assert own_page.context["has_change_permission"] is True
    # A CSM cannot hand the account to someone else.
    assert "owner" not in own_page.context["adminform"].form.fields

    saved = client.post(admin_change(own), change_form(own, name="Own, renamed"))
    assert saved.status_code == 302
    own.refresh_from_db()
    assert own.name == "Own, renamed"
    assert own.owner == csm

    assert client.get(admin_change(other)).status_code == 403
    rejected = client.post(admin_change(other), change_form(other, name="Taken"))
    assert rejected.status_code == 403
    other.refresh_from_db()
    assert other.name == "Other account"


def test_admin_csm_with_view_all_edits_any_account(client, accounts):
    csm, _own, other = accounts
    client.force_login(grant(csm, "customers.view_all_accounts"))

    changelist = client.get(ADMIN_CHANGELIST)
    assert len(changelist.context["cl"].result_list) == 2
    saved = client.post(admin_change(other), change_form(other, name="Reassigned"))
    assert saved.status_code == 302
    other.refresh_from_db()
    assert other.name == "Reassigned"


def test_admin_manager_reads_every_account_and_cannot_save(
    client, accounts, django_user_model
):
    _csm, own, other = accounts
    client.force_login(join(make_user(django_user_model), MANAGER_GROUP))

    changelist = client.get(ADMIN_CHANGELIST)
    assert changelist.status_code == 200
    assert len(changelist.context["cl"].result_list) == 2
    page = client.get(admin_change(other))
    assert page.status_code == 200
    assert page.context["has_change_permission"] is False

    response = client.post(admin_change(own), change_form(own, name="Renamed"))
    assert response.status_code == 403
    own.refresh_from_db()
    assert own.name == "Own account"


def test_admin_group_edits_any_account(client, accounts, django_user_model):
    _csm, _own, other = accounts
    client.force_login(join(make_user(django_user_model), ADMIN_GROUP))

    assert len(client.get(ADMIN_CHANGELIST).context["cl"].result_list) == 2
    saved = client.post(
        admin_change(other), change_form(other, name="Configured", seats="12")
    )
    assert saved.status_code == 302
    other.refresh_from_db()
    assert (other.name, other.seats) == ("Configured", 12)


def test_admin_csm_sees_only_rows_of_own_accounts(client, accounts):
    csm, own, other = accounts
    mine = make_contact(own)
    theirs = make_contact(other)
    make_ticket(own, mine.added_at)
    their_ticket = make_ticket(other, theirs.added_at)
    client.force_login(csm)

    contacts = client.get(reverse("admin:customers_contact_changelist"))
    tickets = client.get(reverse("admin:customers_supportticket_changelist"))

    assert [row.pk for row in contacts.context["cl"].result_list] == [mine.pk]
    assert {row.account_id for row in tickets.context["cl"].result_list} == {own.pk}
    their_contact_page = reverse("admin:customers_contact_change", args=[theirs.pk])
    assert client.get(their_contact_page).status_code == 403
    assert (
        client.get(
            reverse("admin:customers_supportticket_change", args=[their_ticket.pk])
        ).status_code
        == 403
    )


def test_admin_csm_cannot_move_contact(client, accounts):
    csm, own, other = accounts
    contact = make_contact(own)
    client.force_login(csm)

    response = client.post(
        reverse("admin:customers_contact_change", args=[contact.pk]),
        {
            "account": str(other.pk),
            "external_id": contact.external_id,
            "email": contact.email,
            "first_name": contact.first_name,
            "last_name": contact.last_name,
            "added_at_0": "2024-01-01",
            "added_at_1": "00:00:00",
            "properties": "{}",
        },
    )

    assert response.status_code == 200
    assert "account" in response.context["adminform"].form.errors
    contact.refresh_from_db()
    assert contact.account_id == own.pk


def test_admin_csm_has_no_configuration_pages(client, accounts):
    csm, _own, _other = accounts
    client.force_login(csm)

    for name in (
        "admin:triggers_trigger_changelist",
        "admin:lifecycle_stage_changelist",
        "admin:lifecycle_accounthealth_changelist",
    ):
        assert client.get(reverse(name)).status_code == 403, name
