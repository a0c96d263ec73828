"""Full and incremental syncs through the official client against a fake HubSpot."""

import time
from datetime import date
from decimal import Decimal

import pytest

from customers.models import Account, Contact, HealthScore
from customers.signals import data_changed
from integrations.hubspot.models import HubSpotLink, SyncKind, SyncRun, SyncStatus
from integrations.hubspot.records import HubSpotRecord, Outcome, apply_record
from integrations.hubspot.services import resume_sync, start_sync
from integrations.hubspot.sync import (
    claim_run,
    create_resumed_run,
    create_run,
    execute_run,
)
from tests.integrations.hubspot.conftest import at
from tests.integrations.hubspot.fake_hubspot import Injected, millis

pytestmark = pytest.mark.django_db


def run(connection, object_type="company", kind=SyncKind.FULL):
    created = create_run(connection, object_type, kind)
    claimed = claim_run(created.pk)
    assert claimed is not None
    return execute_run(claimed)


def put_company(fake, number, minutes, **properties):
    defaults = {
        "name": f"Company {number}",
        "renewal_date": "2027-01-15",
        "plan_tier": "pro",
    }
    fake.put("companies", str(number), at(minutes), **{**defaults, **properties})


def test_full_sync_pages_through_every_company(connection, fake_hubspot, settings):
    settings.NUDGEPATH_HUBSPOT_PAGE_SIZE = 3
    for number in range(1, 8):
        put_company(
            fake_hubspot, number, minutes=number, seats=number, mrr=f"{number}9.5"
        )

    finished = run(connection)

    assert finished.status == SyncStatus.SUCCEEDED, finished.last_error
    assert finished.fetched == 7
    assert finished.created == 7
    searches = fake_hubspot.searches("companies")
    assert [body.get("after") for body in searches] == [None, "3", "6"]
    for number in range(1, 8):
        account = Account.objects.get(external_id=str(number))
        assert account.name == f"Company {number}"
        assert account.seats == number
        assert account.mrr == Decimal(f"{number}9.5")
        assert account.renewal_date == date(2027, 1, 15)
        assert account.plan == "Pro"


def test_sync_writes_mapped_values(connection, fake_hubspot):
    put_company(
        fake_hubspot,
        10,
        minutes=1,
        is_trial="true",
        plan_tier="enterprise",
        health="72",
        nps_latest="9",
        hubspot_owner_id="31337",
        renewal_date="1798761600000",
    )

    run(connection)

    account = Account.objects.get(external_id="10")
    assert account.is_trial is True
    assert account.plan == "Enterprise"
    assert account.health_score == 72
    assert HealthScore.objects.get(account=account).scored_on == at(1).date()
    assert account.properties == {"nps": 9, "hubspot_owner_id": "31337"}
    # 1798761600000 ms is 2027-01-01T00:00:00Z, HubSpot's form of a date.
    assert account.renewal_date == date(2027, 1, 1)


def test_sync_sends_data_changed_for_each_account(connection, fake_hubspot):
    put_company(fake_hubspot, 1, minutes=1)
    put_company(fake_hubspot, 2, minutes=2)
    received = []

    def receiver(sender, account_id, source, **kwargs):
        received.append((account_id, source))

    data_changed.connect(receiver)
    try:
        run(connection)
    finally:
        data_changed.disconnect(receiver)

    ids = set(Account.objects.values_list("pk", flat=True))
    assert {account_id for account_id, source in received if source == "crm"} == ids


def test_search_cap_moves_the_window(connection, fake_hubspot, settings):
    settings.NUDGEPATH_HUBSPOT_PAGE_SIZE = 2
    settings.NUDGEPATH_HUBSPOT_SEARCH_RESULT_LIMIT = 5
    fake_hubspot.search_cap = 5
    # 13 companies, some modified at the same instant, so that a new window
    # starts on a timestamp shared by records already read.
    minutes = [1, 2, 2, 3, 4, 4, 4, 5, 6, 7, 7, 8, 9]
    for number, minute in enumerate(minutes, start=1):
        put_company(fake_hubspot, number, minutes=minute)

    finished = run(connection)

    assert finished.status == SyncStatus.SUCCEEDED, finished.last_error
    assert finished.created == len(minutes)
    assert Account.objects.count() == len(minutes)
    assert sorted(Account.objects.values_list("external_id", flat=True)) == sorted(
        str(number) for number in range(1, len(minutes) + 1)
    )
    searches = fake_hubspot.searches("companies")
    assert all(int(body.get("after") or 0) < 5 for body in searches)
    lower_bounds = [
        int(body["filterGroups"][0]["filters"][0]["value"])
        for body in searches
        if body.get("filterGroups")
    ]
    assert len(lower_bounds) >= 2
    assert lower_bounds == sorted(lower_bounds)


def test_429_is_retried_after_retry_after(connection, fake_hubspot):
    put_company(fake_hubspot, 1, minutes=1)
    fake_hubspot.injected.append(
        Injected(
            "/search",
            429,
            {"Retry-After": "1"},
            {
                "status": "error",
                "message": "You have reached your ten_secondly_rolling limit.",
                "errorType": "RATE_LIMIT",
                "policyName": "TEN_SECONDLY_ROLLING",
            },
        )
    )

    started = time.monotonic()
    finished = run(connection)
    elapsed = time.monotonic() - started

    assert finished.status == SyncStatus.SUCCEEDED, finished.last_error
    assert len(fake_hubspot.searches("companies")) == 2
    assert elapsed >= 1.0
    assert Account.objects.filter(external_id="1").exists()


def test_invalid_value_skips_only_that_record(connection, fake_hubspot):
    put_company(fake_hubspot, 1, minutes=1)
    put_company(fake_hubspot, 2, minutes=2, renewal_date="2027-13-45")
    put_company(fake_hubspot, 3, minutes=3, seats="twelve")

    finished = run(connection)

    assert finished.status == SyncStatus.SUCCEEDED
    assert finished.created == 1
    assert finished.skipped == 2
    assert list(Account.objects.values_list("external_id", flat=True)) == ["1"]
    date_error, seats_error = finished.record_errors
    assert "HubSpot company 2" in date_error
    assert "renewal_date" in date_error
    assert "'2027-13-45'" in date_error
    assert "HubSpot company 3" in seats_error
    assert "seats" in seats_error
    assert "'twelve'" in seats_error


def test_unknown_option_names_the_value(connection, fake_hubspot):
    put_company(fake_hubspot, 1, minutes=1, plan_tier="platinum")

    finished = run(connection)

    assert finished.skipped == 1
    assert "'platinum'" in finished.record_errors[0]
    assert "basic, enterprise, pro" in finished.record_errors[0]


def test_incremental_sync_reads_changes_since_last_run(connection, fake_hubspot):
    put_company(fake_hubspot, 1, minutes=1)
    put_company(fake_hubspot, 2, minutes=2)
    run(connection)
    put_company(fake_hubspot, 2, minutes=30, name="Company 2 renamed")

    finished = run(connection, kind=SyncKind.INCREMENTAL)

    search = fake_hubspot.searches("companies")[-1]
    bound = search["filterGroups"][0]["filters"][0]
    assert bound["propertyName"] == "hs_lastmodifieddate"
    assert bound["operator"] == "GTE"
    assert int(bound["value"]) == millis("2026-03-01T09:02:00.000Z")
    assert finished.fetched == 1
    assert finished.updated == 1
    assert Account.objects.get(external_id="2").name == "Company 2 renamed"


def test_failed_run_resumes_from_its_cursor(connection, fake_hubspot, settings):
    settings.NUDGEPATH_HUBSPOT_PAGE_SIZE = 2
    settings.NUDGEPATH_HUBSPOT_MAX_ATTEMPTS = 1
    for number in range(1, 7):
        put_company(fake_hubspot, number, minutes=number)
    # The first page succeeds; the second fails with 500.
    failing_after_one_page = _fail_nth_search(fake_hubspot, 2)

    failed = run(connection)
    failing_after_one_page.stop()

    assert failed.status == SyncStatus.FAILED
    assert "500" in failed.last_error
    assert failed.cursor["after"] == "2"
    assert Account.objects.count() == 2

    claimed = claim_run(create_resumed_run(failed).pk)
    assert claimed is not None
    resumed = execute_run(claimed)

    assert resumed.status == SyncStatus.SUCCEEDED, resumed.last_error
    assert resumed.resumed_from == failed
    assert resumed.created == 4
    assert fake_hubspot.searches("companies")[-2].get("after") == "2"
    assert Account.objects.count() == 6


class _fail_nth_search:
    """Answer the nth search request from now with 500, once."""

    def __init__(self, fake, nth):
        self.fake = fake
        self.nth = nth
        self.original = fake.search
        fake.search = self.search
        self.count = 0

    def search(self, kind, body):
        self.count += 1
        if self.count == self.nth:
            return 500, {"status": "error", "message": "internal error"}, {}
        return self.original(kind, body)

    def stop(self):
        self.fake.search = self.original


def test_contacts_join_their_company(connection, fake_hubspot):
    put_company(fake_hubspot, 1, minutes=1)
    put_company(fake_hubspot, 2, minutes=2)
    fake_hubspot.put(
        "contacts",
        "501",
        at(3),
        email="ada@one.example",
        firstname="Ada",
        lastname="L",
        associatedcompanyid="1",
        is_champion="true",
    )
    fake_hubspot.put(
        "contacts",
        "502",
        at(4),
        email="bob@two.example",
        firstname="Bob",
        associatedcompanyid="2",
    )
    fake_hubspot.put("contacts", "503", at(5), email="cy@none.example", firstname="Cy")
    run(connection)

    finished = run(connection, "contact")

    assert finished.created == 2
    assert finished.skipped == 1
    assert "HubSpot contact 503 has no company" in finished.record_errors[0]
    ada = Contact.objects.get(external_id="501")
    assert ada.account.external_id == "1"
    assert ada.is_champion is True
    assert (ada.first_name, ada.last_name) == ("Ada", "L")
    assert Contact.objects.get(external_id="502").account.external_id == "2"


def test_contact_of_unsynced_company_is_skipped(connection, fake_hubspot):
    fake_hubspot.put(
        "contacts", "501", at(3), email="ada@one.example", associatedcompanyid="77"
    )

    finished = run(connection, "contact")

    assert finished.skipped == 1
    assert "company 77 is not synced yet" in finished.record_errors[0]
    assert not Contact.objects.exists()


def test_merged_company_keeps_its_account(connection, fake_hubspot):
    put_company(fake_hubspot, 100, minutes=1, name="Old name")
    run(connection)
    account = Account.objects.get(external_id="100")
    fake_hubspot.remove("companies", "100")
    put_company(
        fake_hubspot, 200, minutes=10, name="Merged name", hs_merged_object_ids="100"
    )

    finished = run(connection, kind=SyncKind.INCREMENTAL)

    assert finished.status == SyncStatus.SUCCEEDED
    assert Account.objects.count() == 1
    account.refresh_from_db()
    assert account.name == "Merged name"
    assert HubSpotLink.objects.get(hubspot_id="200").account == account
    assert HubSpotLink.objects.get(hubspot_id="100").merged_into == "200"


def test_contact_of_merged_away_company(connection, fake_hubspot):
    put_company(fake_hubspot, 100, minutes=1)
    put_company(fake_hubspot, 200, minutes=2, hs_merged_object_ids="100")
    run(connection)
    # The account linked to 100 came first; 200 took it over in the merge.
    fake_hubspot.put(
        "contacts", "501", at(3), email="ada@one.example", associatedcompanyid="100"
    )

    run(connection, "contact")

    contact = Contact.objects.get(external_id="501")
    assert contact.account == HubSpotLink.objects.get(hubspot_id="200").account


def test_start_sync_runs_companies_then_contacts(
    connection, fake_hubspot, django_capture_on_commit_callbacks
):
    put_company(fake_hubspot, 1, minutes=1)
    fake_hubspot.put(
        "contacts", "501", at(3), email="ada@one.example", associatedcompanyid="1"
    )

    with django_capture_on_commit_callbacks(execute=True):
        runs = start_sync(connection, SyncKind.FULL)

    statuses = SyncRun.objects.filter(pk__in=[r.pk for r in runs]).values_list(
        "object_type", "status", "created"
    )
    assert sorted(statuses) == [
        ("company", "succeeded", 1),
        ("contact", "succeeded", 1),
    ]
    assert Contact.objects.get(external_id="501").account.external_id == "1"


def test_resume_sync_rejects_a_run_that_did_not_fail(connection, fake_hubspot):
    put_company(fake_hubspot, 1, minutes=1)
    succeeded = run(connection)

    with pytest.raises(ValueError, match="only a failed run can be resumed"):
        resume_sync(succeeded)


def test_empty_incremental_run_keeps_the_starting_point(connection, fake_hubspot):
    put_company(fake_hubspot, 1, minutes=1)
    run(connection)
    run(connection, kind=SyncKind.INCREMENTAL)
    put_company(fake_hubspot, 2, minutes=9)

    third = run(connection, kind=SyncKind.INCREMENTAL)

    bound = fake_hubspot.searches("companies")[-1]["filterGroups"][0]["filters"][0]
    assert int(bound["value"]) == millis("2026-03-01T09:01:00.000Z")
    assert third.created == 1


def test_health_score_out_of_range_is_skipped(connection, fake_hubspot):
    put_company(fake_hubspot, 1, minutes=1, health="150")

    finished = run(connection)

    assert finished.status == SyncStatus.SUCCEEDED
    assert finished.skipped == 1
    assert "HubSpot company 1" in finished.record_errors[0]
    assert "property health value 150" in finished.record_errors[0]
    assert not Account.objects.exists()


def test_archived_record_is_marked_not_written(connection, fake_hubspot):
    put_company(fake_hubspot, 1, minutes=1, name="Before")
    run(connection)
    archived = HubSpotRecord(
        object_type="company",
        hubspot_id="1",
        properties={"name": "After", "hs_lastmodifieddate": "2026-03-01T10:00:00Z"},
        archived=True,
    )

    outcome = apply_record(connection, archived, [])

    assert outcome == Outcome.SKIPPED
    assert HubSpotLink.objects.get(hubspot_id="1").archived_at is not None
    assert Account.objects.get(external_id="1").name == "Before"
