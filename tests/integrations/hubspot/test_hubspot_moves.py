"""A contact whose HubSpot company changes moves to that company's account."""

from datetime import UTC, datetime

import pytest

from customers.models import Account, Contact, UsageEvent
from customers.services import record_usage_event
from integrations.hubspot.crm_models import ContactMove
from integrations.hubspot.models import SyncKind, SyncStatus
from integrations.hubspot.sync import claim_run, create_run, execute_run
from tests.integrations.hubspot.conftest import at

pytestmark = pytest.mark.django_db


def run(connection, object_type, kind=SyncKind.INCREMENTAL):
    created = create_run(connection, object_type, kind)
    claimed = claim_run(created.pk)
    assert claimed is not None
    finished = execute_run(claimed)
    assert finished.status == SyncStatus.SUCCEEDED, finished.last_error
    return finished


def put_ada(fake, minutes, company):
    fake.put(
        "contacts",
        "501",
        at(minutes),
        email="ada@example.com",
        firstname="Ada",
        associatedcompanyid=company,
    )


@pytest.fixture
def two_companies(connection, fake_hubspot):
    fake_hubspot.put("companies", "1", at(1), name="Acme")
    fake_hubspot.put("companies", "2", at(2), name="Initech")
    run(connection, "company", SyncKind.FULL)
    put_ada(fake_hubspot, 3, "1")
    run(connection, "contact", SyncKind.FULL)
    return connection


def test_contact_moves_with_its_history(two_companies, fake_hubspot):
    ada = Contact.objects.get(external_id="501")
    acme = Account.objects.get(external_id="1")
    initech = Account.objects.get(external_id="2")
    record_usage_event(ada, "Signed In", datetime(2026, 3, 1, 10, tzinfo=UTC))
    put_ada(fake_hubspot, 20, "2")

    finished = run(two_companies, "contact")

    assert finished.updated == 1
    moved = Contact.objects.get(external_id="501")
    assert moved.pk == ada.pk
    assert moved.account == initech
    assert list(moved.associated_accounts.all()) == []
    # The event stays the contact's, recorded for the account it happened at.
    event = UsageEvent.objects.get()
    assert event.contact_id == ada.pk
    assert event.account_id == acme.pk
    move = ContactMove.objects.get()
    assert (move.from_account, move.to_account) == (acme, initech)
    assert (move.from_company_id, move.to_company_id) == ("1", "2")


def test_moved_contact_sync_again_writes_nothing(two_companies, fake_hubspot):
    put_ada(fake_hubspot, 20, "2")
    run(two_companies, "contact")
    stamp = Contact.objects.get(external_id="501").updated_at

    again = run(two_companies, "contact", SyncKind.FULL)

    assert again.unchanged == 1
    assert ContactMove.objects.count() == 1
    assert Contact.objects.get(external_id="501").updated_at == stamp


def test_contact_matched_by_email_is_associated_not_moved(connection, fake_hubspot):
    fake_hubspot.put("companies", "1", at(1), name="Acme")
    run(connection, "company", SyncKind.FULL)
    other = Account.objects.create(
        external_id="csv-9", name="Imported", signup_date=at(0).date()
    )
    Contact.objects.create(
        account=other,
        external_id="csv-ada",
        email="ada@example.com",
        first_name="Ada",
        added_at=at(0),
    )
    put_ada(fake_hubspot, 3, "1")

    run(connection, "contact", SyncKind.FULL)

    ada = Contact.objects.get(email="ada@example.com")
    assert ada.account == other
    assert list(ada.associated_accounts.values_list("external_id", flat=True)) == ["1"]
    assert ContactMove.objects.count() == 0
