"""Deal and ticket webhooks update records and announce the change."""

from datetime import date

import pytest

from customers.models import Account, Subscription, SupportTicket
from customers.signals import data_changed
from integrations.hubspot.crm_models import HubSpotDeal
from integrations.hubspot.models import WebhookEvent
from tests.integrations.hubspot.test_hubspot_deals import (
    deals_connection,  # noqa: F401
    put_deal,
)
from tests.integrations.hubspot.test_hubspot_tickets import (
    put_ticket,
    synced,  # noqa: F401
)
from tests.integrations.hubspot.test_hubspot_webhooks import event, post

pytestmark = pytest.mark.django_db


@pytest.fixture
def announced():
    """Collect the (account id, source) pairs that data_changed sends."""
    received = []

    def receiver(sender, account_id, source, **kwargs):
        received.append((account_id, source))

    data_changed.connect(receiver)
    yield received
    data_changed.disconnect(receiver)


def deliver(client, connection, capture, *events):
    with capture(execute=True):
        response = post(client, connection, list(events))
    assert response.status_code == 200, response.content
    for stored in WebhookEvent.objects.filter(
        event_id__in=[e["eventId"] for e in events]
    ):
        assert stored.processed_at is not None, stored.last_error


def test_deal_property_change_sets_the_renewal_date(
    client,
    deals_connection,  # noqa: F811
    fake_hubspot,
    announced,
    django_capture_on_commit_callbacks,
):
    put_deal(
        fake_hubspot,
        11,
        5,
        company=1,
        dealtype="renewal",
        closedate="2027-03-31T00:00:00.000Z",
    )

    deliver(
        client,
        deals_connection,
        django_capture_on_commit_callbacks,
        event(101, "11", "deal.creation"),
    )
    put_deal(
        fake_hubspot,
        11,
        6,
        company=1,
        dealtype="renewal",
        closedate="2027-02-28T00:00:00.000Z",
    )
    deliver(
        client,
        deals_connection,
        django_capture_on_commit_callbacks,
        event(102, "11", "deal.propertyChange", propertyName="closedate"),
    )

    acme = Account.objects.get(external_id="1")
    assert acme.renewal_date == date(2027, 2, 28)
    assert HubSpotDeal.objects.get(hubspot_id="11").close_date == date(2027, 2, 28)
    assert (acme.pk, "crm") in announced


def test_won_expansion_deal_by_generic_subscription(
    client,
    deals_connection,  # noqa: F811
    fake_hubspot,
    announced,
    django_capture_on_commit_callbacks,
):
    put_deal(
        fake_hubspot,
        21,
        5,
        company=2,
        dealtype="upgrade",
        closedate="2026-04-15T00:00:00.000Z",
        hs_is_closed="true",
        hs_is_closed_won="true",
    )

    deliver(
        client,
        deals_connection,
        django_capture_on_commit_callbacks,
        event(111, "21", "object.propertyChange", objectTypeId="0-3"),
    )

    initech = Account.objects.get(external_id="2")
    upgrade = Subscription.objects.get(external_id__endswith="-deal-21")
    assert upgrade.account == initech
    assert upgrade.is_upgrade
    assert upgrade.started_on == date(2026, 4, 15)
    assert (initech.pk, "subscriptions") in announced
    assert WebhookEvent.objects.get(event_id=111).subscription_type == (
        "deal.propertyChange"
    )


def test_deleted_deal_takes_its_upgrade_with_it(
    client,
    deals_connection,  # noqa: F811
    fake_hubspot,
    django_capture_on_commit_callbacks,
):
    put_deal(
        fake_hubspot,
        22,
        5,
        company=2,
        dealtype="upgrade",
        closedate="2026-04-15T00:00:00.000Z",
        hs_is_closed="true",
        hs_is_closed_won="true",
    )
    deliver(
        client,
        deals_connection,
        django_capture_on_commit_callbacks,
        event(121, "22", "deal.creation"),
    )
    assert Subscription.objects.filter(external_id__endswith="-deal-22").exists()
    fake_hubspot.remove("deals", "22")

    deliver(
        client,
        deals_connection,
        django_capture_on_commit_callbacks,
        event(122, "22", "deal.deletion"),
    )

    assert not HubSpotDeal.objects.filter(hubspot_id="22").exists()
    assert not Subscription.objects.filter(external_id__endswith="-deal-22").exists()


def test_deal_association_change_moves_account(
    client,
    deals_connection,  # noqa: F811
    fake_hubspot,
    django_capture_on_commit_callbacks,
):
    put_deal(fake_hubspot, 23, 5, company=1)
    deliver(
        client,
        deals_connection,
        django_capture_on_commit_callbacks,
        event(131, "23", "deal.creation"),
    )
    fake_hubspot.associations[("deals", "companies")]["23"] = [("2", 5)]
    association = event(132, "23", "deal.associationChange")
    del association["objectId"]
    association.update(fromObjectId=23, toObjectId=2, associationType="DEAL_TO_COMPANY")

    deliver(client, deals_connection, django_capture_on_commit_callbacks, association)

    assert HubSpotDeal.objects.get(hubspot_id="23").account == Account.objects.get(
        external_id="2"
    )


def test_ticket_creation_and_closing(
    client,
    synced,  # noqa: F811
    fake_hubspot,
    announced,
    django_capture_on_commit_callbacks,
):
    put_ticket(fake_hubspot, 71, 5, company="1", contact="501")

    deliver(
        client,
        synced,
        django_capture_on_commit_callbacks,
        event(141, "71", "ticket.creation"),
    )
    ticket = SupportTicket.objects.get(external_id=f"hubspot-{synced.pk}-ticket-71")
    assert ticket.closed_at is None
    assert ticket.priority == "high"
    assert ticket.contact is not None
    assert ticket.contact.external_id == "501"

    put_ticket(
        fake_hubspot, 71, 9, hs_pipeline_stage="4", closed_date="2026-03-02T10:00:00Z"
    )
    deliver(
        client,
        synced,
        django_capture_on_commit_callbacks,
        event(142, "71", "ticket.propertyChange", propertyName="hs_pipeline_stage"),
    )

    ticket.refresh_from_db()
    assert ticket.closed_at is not None
    assert ticket.closed_at.isoformat() == "2026-03-02T10:00:00+00:00"
    acme = Account.objects.get(external_id="1")
    assert ticket.account == acme
    assert announced.count((acme.pk, "tickets")) >= 2


def test_ticket_of_unsynced_company_fails(
    client,
    synced,  # noqa: F811
    fake_hubspot,
    django_capture_on_commit_callbacks,
):
    put_ticket(fake_hubspot, 72, 5, company="999")

    with django_capture_on_commit_callbacks(execute=True):
        post(client, synced, [event(151, "72", "ticket.creation")])

    stored = WebhookEvent.objects.get(event_id=151)
    assert stored.processed_at is None
    assert stored.next_attempt_at is None
    assert "company 999 is not synced yet" in stored.last_error
    assert not SupportTicket.objects.filter(external_id__endswith="-ticket-72").exists()


def test_deleted_ticket_keeps_its_support_ticket(
    client,
    synced,  # noqa: F811
    fake_hubspot,
    django_capture_on_commit_callbacks,
):
    put_ticket(fake_hubspot, 73, 5, company="1")
    deliver(
        client,
        synced,
        django_capture_on_commit_callbacks,
        event(161, "73", "ticket.creation"),
    )

    deliver(
        client,
        synced,
        django_capture_on_commit_callbacks,
        event(162, "73", "ticket.deletion"),
    )

    assert SupportTicket.objects.filter(external_id__endswith="-ticket-73").exists()


def test_deal_event_without_deal_sync_fails(
    client, connection, fake_hubspot, django_capture_on_commit_callbacks
):
    put_deal(fake_hubspot, 24, 5)

    with django_capture_on_commit_callbacks(execute=True):
        post(client, connection, [event(171, "24", "deal.creation")])

    stored = WebhookEvent.objects.get(event_id=171)
    assert stored.processed_at is None
    assert stored.next_attempt_at is None
    assert "Sync deals is off" in stored.last_error
    assert not HubSpotDeal.objects.exists()
