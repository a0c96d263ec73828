"""HubSpot owners mapped to the CSMs who own accounts, by email."""

import pytest
from django.contrib.auth import get_user_model

from customers.models import Account
from integrations.hubspot.crm_models import HubSpotOwner
from integrations.hubspot.models import PropertyMapping, SyncKind, SyncStatus, Target
from integrations.hubspot.owners import refresh_owners
from integrations.hubspot.sync import claim_run, create_run, execute_run
from tests.integrations.hubspot.conftest import at

pytestmark = pytest.mark.django_db


def run_companies(connection, kind=SyncKind.FULL):
    created = create_run(connection, "company", kind)
    claimed = claim_run(created.pk)
    assert claimed is not None
    return execute_run(claimed)


@pytest.fixture
def owner_mapping(connection):
    # The shared fixture keeps hubspot_owner_id as a custom property; here it
    # names the account's owner instead.
    PropertyMapping.objects.filter(
        connection=connection, hubspot_property="hubspot_owner_id"
    ).update(target=Target.OWNER)
    return connection


@pytest.fixture
def csm():
    return get_user_model().objects.create_user(
        username="ada", email="Ada.Lovelace@example.com", is_staff=True
    )


def test_owner_email_sets_the_account_owner(owner_mapping, fake_hubspot, csm):
    fake_hubspot.put_owner("501", "ada.lovelace@example.com", "Ada", "Lovelace")
    fake_hubspot.put("companies", "1", at(1), name="Acme", hubspot_owner_id="501")

    finished = run_companies(owner_mapping)

    assert finished.status == SyncStatus.SUCCEEDED, finished.last_error
    assert finished.warnings == []
    assert Account.objects.get(external_id="1").owner == csm
    owner = HubSpotOwner.objects.get(owner_id="501")
    assert owner.user == csm
    assert owner.first_name == "Ada"


def test_unmatched_owner_is_reported_not_guessed(owner_mapping, fake_hubspot, csm):
    fake_hubspot.put_owner("502", "grace@example.com", "Grace", "Hopper")
    fake_hubspot.put("companies", "1", at(1), name="Acme", hubspot_owner_id="502")
    fake_hubspot.put("companies", "2", at(2), name="Initech", hubspot_owner_id="999")

    finished = run_companies(owner_mapping)

    assert finished.status == SyncStatus.SUCCEEDED, finished.last_error
    # Both companies land; only their owners are left unset.
    assert finished.created == 2
    assert Account.objects.get(external_id="1").owner is None
    assert Account.objects.get(external_id="2").owner is None
    assert len(finished.warnings) == 2
    assert (
        "502 <grace@example.com> matches no active staff user" in (finished.warnings[0])
    )
    assert "HubSpot owner 999 is not among the owners" in finished.warnings[1]
    assert HubSpotOwner.objects.get(owner_id="502").user is None


def test_owner_of_inactive_or_duplicate_email_matches_nobody(connection, fake_hubspot):
    users = get_user_model().objects
    users.create_user(username="a", email="twin@example.com", is_staff=True)
    users.create_user(username="b", email="TWIN@example.com", is_staff=True)
    users.create_user(
        username="c", email="gone@example.com", is_staff=True, is_active=False
    )
    users.create_user(username="d", email="learner@example.com")
    fake_hubspot.put_owner("1", "twin@example.com")
    fake_hubspot.put_owner("2", "gone@example.com")
    fake_hubspot.put_owner("3", "learner@example.com")

    result = refresh_owners(connection)

    assert result.created == 3
    assert result.unmatched == [
        "1 <twin@example.com>",
        "2 <gone@example.com>",
        "3 <learner@example.com>",
    ]


def test_owner_read_pages_and_keeps_archived(
    connection, fake_hubspot, csm, monkeypatch
):
    monkeypatch.setattr("integrations.hubspot.owners.OWNERS_PAGE_SIZE", 2)
    for number in range(1, 6):
        fake_hubspot.put_owner(str(number), f"owner{number}@example.com")
    fake_hubspot.put_owner("9", "ada.lovelace@example.com", archived=True)

    result = refresh_owners(connection)

    assert result.created == 6
    gets = [path for method, path, _ in fake_hubspot.requests if method == "GET"]
    # Five active owners at two a page, then one page of archived owners.
    assert len(gets) == 4
    archived = HubSpotOwner.objects.get(owner_id="9")
    assert archived.archived is True
    assert archived.user == csm


def test_owner_read_again_changes_nothing(connection, fake_hubspot, csm):
    fake_hubspot.put_owner("501", "ada.lovelace@example.com")
    refresh_owners(connection)
    before = list(HubSpotOwner.objects.values_list("pk", "updated_at"))

    again = refresh_owners(connection)

    assert again.created == 0
    assert again.updated == 0
    assert list(HubSpotOwner.objects.values_list("pk", "updated_at")) == before


def test_owner_picked_by_hand_stays(owner_mapping, fake_hubspot, csm):
    fake_hubspot.put_owner("503", "ada@personal.example")
    fake_hubspot.put("companies", "1", at(1), name="Acme", hubspot_owner_id="503")
    refresh_owners(owner_mapping)
    HubSpotOwner.objects.filter(owner_id="503").update(user=csm)

    finished = run_companies(owner_mapping)

    assert finished.warnings == []
    assert HubSpotOwner.objects.get(owner_id="503").user == csm
    assert Account.objects.get(external_id="1").owner == csm


def test_sync_again_writes_no_owner_change(owner_mapping, fake_hubspot, csm):
    fake_hubspot.put_owner("501", "ada.lovelace@example.com")
    fake_hubspot.put("companies", "1", at(1), name="Acme", hubspot_owner_id="501")
    run_companies(owner_mapping)
    stamp = Account.objects.get(external_id="1").updated_at

    again = run_companies(owner_mapping)

    assert again.unchanged == 1
    assert again.updated == 0
    assert Account.objects.get(external_id="1").updated_at == stamp


def test_owner_matched_later_is_set_next_sync(owner_mapping, fake_hubspot):
    fake_hubspot.put_owner("504", "lin@example.com")
    fake_hubspot.put("companies", "1", at(1), name="Acme", hubspot_owner_id="504")
    first = run_companies(owner_mapping)
    assert len(first.warnings) == 1
    lin = get_user_model().objects.create_user(
        username="lin", email="lin@example.com", is_staff=True
    )

    again = run_companies(owner_mapping)

    assert again.warnings == []
    assert again.updated == 1
    assert Account.objects.get(external_id="1").owner == lin
