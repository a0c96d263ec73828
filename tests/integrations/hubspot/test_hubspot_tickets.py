"""HubSpot tickets become support tickets of their company's account."""

from datetime import UTC, datetime

import pytest

from customers.models import Account, Contact, SupportTicket
from integrations.hubspot.models import SyncKind, SyncStatus
from integrations.hubspot.services import start_sync
from integrations.hubspot.sync import claim_run, create_run, execute_run
from tests.integrations.hubspot.conftest import at

pytestmark = pytest.mark.django_db

PRIMARY_COMPANY = 26
TICKET_CONTACT = 16


def run(connection, object_type, kind=SyncKind.FULL):
    created = create_run(connection, object_type, kind)
    claimed = claim_run(created.pk)
    assert claimed is not None
    finished = execute_run(claimed)
    assert finished.status == SyncStatus.SUCCEEDED, finished.last_error
    return finished


@pytest.fixture
def synced(connection, fake_hubspot):
    connection.sync_tickets = True
    connection.ticket_closed_stages = ["4"]
    connection.save()
    fake_hubspot.put("companies", "1", at(1), name="Acme")
    fake_hubspot.put("companies", "2", at(2), name="Initech")
    run(connection, "company")
    fake_hubspot.put(
        "contacts", "501", at(3), email="ada@example.com", associatedcompanyid="1"
    )
    run(connection, "contact")
    return connection


def put_ticket(fake, number, minutes, company=None, contact=None, **properties):
    defaults = {
        "subject": f"Ticket {number}",
        "hs_pipeline": "0",
        "hs_pipeline_stage": "1",
        "hs_ticket_priority": "HIGH",
        "hs_ticket_category": "BILLING_ISSUE",
        "createdate": "2026-02-01T09:30:00.000Z",
    }
    fake.put("tickets", str(number), at(minutes), **{**defaults, **properties})
    if company is not None:
        fake.associate("tickets", str(number), "companies", company, PRIMARY_COMPANY)
    if contact is not None:
        fake.associate("tickets", str(number), "contacts", contact, TICKET_CONTACT)


def test_tickets_map_priority_topic_and_status(synced, fake_hubspot):
    put_ticket(fake_hubspot, 71, 1, company="1", contact="501")
    put_ticket(
        fake_hubspot,
        72,
        2,
        company="2",
        hs_ticket_priority="LOW",
        closed_date="2026-02-03T10:00:00.000Z",
    )
    # Closed by its stage, without a closed_date: closed at its last change.
    put_ticket(fake_hubspot, 73, 3, contact="501", hs_pipeline_stage="4")

    finished = run(synced, "ticket")

    assert finished.created == 3
    acme = Account.objects.get(external_id="1")
    first = SupportTicket.objects.get(external_id__endswith="-ticket-71")
    assert first.account == acme
    assert first.contact == Contact.objects.get(external_id="501")
    assert first.priority == "high"
    assert first.topic == "BILLING_ISSUE"
    assert first.opened_at == datetime(2026, 2, 1, 9, 30, tzinfo=UTC)
    assert first.closed_at is None
    second = SupportTicket.objects.get(external_id__endswith="-ticket-72")
    assert second.account.external_id == "2"
    assert second.priority == "low"
    assert second.closed_at == datetime(2026, 2, 3, 10, tzinfo=UTC)
    third = SupportTicket.objects.get(external_id__endswith="-ticket-73")
    # Without a company the ticket takes its contact's account.
    assert third.account == acme
    assert third.closed_at == at(3)


def test_bad_tickets_are_reported_and_the_rest_land(synced, fake_hubspot):
    put_ticket(fake_hubspot, 81, 1, company="1", hs_ticket_priority="CRITICAL")
    put_ticket(fake_hubspot, 82, 2, company="1", closed_date="31/02/2026")
    put_ticket(fake_hubspot, 83, 3)
    put_ticket(fake_hubspot, 84, 4, company="99")
    put_ticket(fake_hubspot, 85, 5, company="1", hs_ticket_priority="")

    finished = run(synced, "ticket")

    assert finished.skipped == 4
    assert finished.created == 1
    errors = finished.record_errors
    assert (
        "HubSpot ticket 81: hs_ticket_priority value 'CRITICAL' is not in"
        in (errors[0])
    )
    assert (
        "HubSpot ticket 82: property closed_date value '31/02/2026' is invalid"
        in (errors[1])
    )
    assert "HubSpot ticket 83 has no company and no synced contact" in errors[2]
    assert "HubSpot ticket 84: its company 99 is not synced yet" in errors[3]
    # A ticket without a priority gets medium.
    assert SupportTicket.objects.get().priority == "medium"


def test_ticket_sync_again_writes_nothing(synced, fake_hubspot):
    put_ticket(fake_hubspot, 71, 1, company="1", contact="501")
    run(synced, "ticket")

    again = run(synced, "ticket")

    assert again.unchanged == 1
    assert SupportTicket.objects.count() == 1


def test_closed_ticket_updates_its_row(synced, fake_hubspot):
    put_ticket(fake_hubspot, 71, 1, company="1")
    run(synced, "ticket")
    put_ticket(fake_hubspot, 71, 30, closed_date="2026-02-05T00:00:00.000Z")

    again = run(synced, "ticket", SyncKind.INCREMENTAL)

    assert again.updated == 1
    ticket = SupportTicket.objects.get()
    assert ticket.closed_at == datetime(2026, 2, 5, tzinfo=UTC)


def test_start_sync_adds_a_ticket_run(synced):
    runs = start_sync(synced, SyncKind.FULL)

    assert [run.object_type for run in runs] == ["company", "contact", "ticket"]
