"""Deals: renewal dates from open renewal deals, won expansions as upgrades."""

from datetime import date
from decimal import Decimal

import pytest

from customers.models import Account, Subscription
from integrations.hubspot.crm_models import DealKind, HubSpotDeal
from integrations.hubspot.models import SyncKind, SyncStatus
from integrations.hubspot.services import start_sync
from integrations.hubspot.sync import claim_run, create_run, execute_run
from tests.integrations.hubspot.conftest import at

pytestmark = pytest.mark.django_db

PRIMARY = 5
UNLABELED = 341


def run(connection, object_type, kind=SyncKind.FULL):
    created = create_run(connection, object_type, kind)
    claimed = claim_run(created.pk)
    assert claimed is not None
    return execute_run(claimed)


@pytest.fixture
def deals_connection(connection, fake_hubspot):
    connection.sync_deals = True
    connection.renewal_date_from_deals = True
    connection.renewal_deal_types = ["renewal"]
    connection.renewal_pipelines = ["renewals"]
    connection.expansion_deal_types = ["upgrade", "seats"]
    connection.deal_seats_property = "seats_added"
    connection.save()
    fake_hubspot.put(
        "companies", "1", at(1), name="Acme", renewal_date="2026-12-31", seats="10"
    )
    fake_hubspot.put("companies", "2", at(2), name="Initech", seats="4")
    finished = run(connection, "company")
    assert finished.status == SyncStatus.SUCCEEDED, finished.last_error
    return connection


def put_deal(fake, number, minutes, company=None, type_id=PRIMARY, **properties):
    defaults = {
        "dealname": f"Deal {number}",
        "pipeline": "default",
        "dealstage": "appointmentscheduled",
        "hs_is_closed": "false",
        "hs_is_closed_won": "false",
    }
    fake.put("deals", str(number), at(minutes), **{**defaults, **properties})
    if company is not None:
        fake.associate("deals", str(number), "companies", str(company), type_id)


def test_open_renewal_deal_sets_renewal_date(deals_connection, fake_hubspot):
    # Two open renewals: the earlier close date is the next renewal.
    put_deal(
        fake_hubspot,
        11,
        1,
        company=1,
        dealtype="renewal",
        closedate="2027-03-31T00:00:00.000Z",
    )
    put_deal(
        fake_hubspot, 12, 2, company=1, pipeline="renewals", closedate="1798761600000"
    )
    # A closed renewal and a new-business deal do not count.
    put_deal(
        fake_hubspot,
        13,
        3,
        company=1,
        dealtype="renewal",
        closedate="2026-06-30T00:00:00.000Z",
        hs_is_closed="true",
    )
    put_deal(
        fake_hubspot,
        14,
        4,
        company=1,
        dealtype="newbusiness",
        closedate="2026-01-15T00:00:00.000Z",
    )

    finished = run(deals_connection, "deal")

    assert finished.status == SyncStatus.SUCCEEDED, finished.last_error
    assert finished.created == 4
    # 1798761600000 ms is 2027-01-01T00:00:00Z.
    assert Account.objects.get(external_id="1").renewal_date == date(2027, 1, 1)
    kinds = dict(HubSpotDeal.objects.values_list("hubspot_id", "kind"))
    assert kinds == {
        "11": DealKind.RENEWAL,
        "12": DealKind.RENEWAL,
        "13": DealKind.RENEWAL,
        "14": DealKind.OTHER,
    }


def test_company_property_no_longer_sets_renewal_date(deals_connection, fake_hubspot):
    put_deal(
        fake_hubspot,
        11,
        1,
        company=1,
        dealtype="renewal",
        closedate="2027-03-31T00:00:00.000Z",
    )
    run(deals_connection, "deal")
    fake_hubspot.put("companies", "1", at(30), name="Acme", renewal_date="2030-01-01")

    run(deals_connection, "company", SyncKind.INCREMENTAL)

    assert Account.objects.get(external_id="1").renewal_date == date(2027, 3, 31)


def test_account_without_open_renewal_keeps_its_date(deals_connection, fake_hubspot):
    renewal = {"dealtype": "renewal", "closedate": "2027-03-31T00:00:00.000Z"}
    put_deal(fake_hubspot, 11, 1, company=1, **renewal)
    run(deals_connection, "deal")
    # The renewal is won; the next term's deal does not exist yet.
    put_deal(fake_hubspot, 11, 50, hs_is_closed="true", **renewal)

    finished = run(deals_connection, "deal", SyncKind.INCREMENTAL)

    assert finished.updated == 1
    assert HubSpotDeal.objects.get(hubspot_id="11").is_closed is True
    assert Account.objects.get(external_id="1").renewal_date == date(2027, 3, 31)


def test_won_expansion_is_an_upgrade_subscription(deals_connection, fake_hubspot):
    put_deal(
        fake_hubspot,
        21,
        1,
        company=2,
        dealtype="seats",
        amount="1200.50",
        seats_added="6",
        closedate="2026-02-10T12:00:00.000Z",
        hs_is_closed="true",
        hs_is_closed_won="true",
    )
    # An open expansion is recorded as a deal but not yet as an upgrade.
    put_deal(
        fake_hubspot,
        22,
        2,
        company=2,
        dealtype="upgrade",
        closedate="2026-05-01T00:00:00.000Z",
    )

    finished = run(deals_connection, "deal")

    assert finished.status == SyncStatus.SUCCEEDED, finished.last_error
    account = Account.objects.get(external_id="2")
    upgrade = Subscription.objects.get(account=account)
    assert upgrade.is_upgrade is True
    assert upgrade.started_on == date(2026, 2, 10)
    assert upgrade.seats == 4
    deal = HubSpotDeal.objects.get(hubspot_id="21")
    assert deal.kind == DealKind.EXPANSION
    assert deal.amount == Decimal("1200.50")
    assert deal.seats_added == 6
    assert deal.account == account


def test_lost_expansion_removes_its_upgrade(deals_connection, fake_hubspot):
    won = {"hs_is_closed": "true", "hs_is_closed_won": "true"}
    put_deal(
        fake_hubspot,
        21,
        1,
        company=2,
        dealtype="upgrade",
        closedate="2026-02-10T00:00:00.000Z",
        **won,
    )
    run(deals_connection, "deal")
    assert Subscription.objects.count() == 1
    put_deal(
        fake_hubspot,
        21,
        40,
        company=2,
        dealtype="upgrade",
        closedate="2026-02-10T00:00:00.000Z",
        hs_is_closed="true",
        hs_is_closed_won="false",
    )

    finished = run(deals_connection, "deal", SyncKind.INCREMENTAL)

    assert finished.updated == 1
    assert Subscription.objects.count() == 0


def test_deal_takes_its_primary_company(deals_connection, fake_hubspot):
    fake_hubspot.associate("deals", "31", "companies", "1", UNLABELED)
    put_deal(
        fake_hubspot,
        31,
        1,
        company=2,
        type_id=PRIMARY,
        dealtype="renewal",
        closedate="2027-08-01T00:00:00.000Z",
    )

    run(deals_connection, "deal")

    assert HubSpotDeal.objects.get(hubspot_id="31").company_id == "2"
    assert Account.objects.get(external_id="2").renewal_date == date(2027, 8, 1)


def test_bad_deals_are_reported_and_the_rest_land(deals_connection, fake_hubspot):
    put_deal(fake_hubspot, 41, 1, company=1, dealtype="renewal", closedate="2027-13-45")
    put_deal(fake_hubspot, 42, 2, company=1, amount="twelve")
    put_deal(
        fake_hubspot, 43, 3, dealtype="renewal", closedate="2027-04-01T00:00:00.000Z"
    )
    put_deal(
        fake_hubspot,
        44,
        4,
        company=77,
        dealtype="renewal",
        closedate="2027-04-01T00:00:00.000Z",
    )
    put_deal(
        fake_hubspot,
        45,
        5,
        company=1,
        dealtype="renewal",
        closedate="2027-05-01T00:00:00.000Z",
    )

    finished = run(deals_connection, "deal")

    assert finished.status == SyncStatus.SUCCEEDED, finished.last_error
    assert finished.skipped == 2
    assert finished.created == 3
    assert (
        "HubSpot deal 41: property closedate value '2027-13-45' is invalid"
        in (finished.record_errors[0])
    )
    assert (
        "HubSpot deal 42: property amount value 'twelve' is invalid"
        in (finished.record_errors[1])
    )
    assert finished.warnings == [
        "HubSpot deal 43 has no company, so it sets no renewal date or expansion; "
        "associate it with a company in HubSpot",
        "HubSpot deal 44: its company 77 is not synced yet; run the company sync, "
        "then sync deals again",
    ]
    assert Account.objects.get(external_id="1").renewal_date == date(2027, 5, 1)


def test_deal_sync_again_writes_nothing(deals_connection, fake_hubspot):
    put_deal(
        fake_hubspot,
        21,
        1,
        company=2,
        dealtype="upgrade",
        closedate="2026-02-10T00:00:00.000Z",
        hs_is_closed="true",
        hs_is_closed_won="true",
    )
    put_deal(
        fake_hubspot,
        11,
        2,
        company=1,
        dealtype="renewal",
        closedate="2027-03-31T00:00:00.000Z",
    )
    run(deals_connection, "deal")
    stamps = list(HubSpotDeal.objects.order_by("pk").values_list("updated_at"))
    accounts = list(Account.objects.order_by("pk").values_list("updated_at"))

    again = run(deals_connection, "deal")

    assert again.unchanged == 2
    assert list(HubSpotDeal.objects.order_by("pk").values_list("updated_at")) == stamps
    assert list(Account.objects.order_by("pk").values_list("updated_at")) == accounts
    assert Subscription.objects.count() == 1


def test_start_sync_adds_a_deal_run(deals_connection):
    runs = start_sync(deals_connection, SyncKind.FULL)

    assert [run.object_type for run in runs] == ["company", "contact", "deal"]


def test_deal_finds_its_company_synced_later(deals_connection, fake_hubspot):
    put_deal(
        fake_hubspot,
        51,
        1,
        company=3,
        dealtype="renewal",
        closedate="2027-09-30T00:00:00.000Z",
    )
    first = run(deals_connection, "deal")
    assert len(first.warnings) == 1
    fake_hubspot.put("companies", "3", at(60), name="Globex")
    run(deals_connection, "company", SyncKind.INCREMENTAL)

    # The deal did not change, so the incremental run does not read it again.
    run(deals_connection, "deal", SyncKind.INCREMENTAL)

    globex = Account.objects.get(external_id="3")
    assert HubSpotDeal.objects.get(hubspot_id="51").account == globex
    assert globex.renewal_date == date(2027, 9, 30)
