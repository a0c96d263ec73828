"""Journey property write-backs pushed to a fake HubSpot by batch update."""

import pytest
from django.utils import timezone

from customers.models import Account
from integrations.hubspot.sync import claim_run, create_run, execute_run
from integrations.hubspot.tasks import push_crm_write_backs
from integrations.hubspot.writeback import hubspot_value, push_write_backs
from tests.factories import make_account
from tests.integrations.hubspot.conftest import at
from tests.triggers.factories import make_step, make_trigger
from triggers.models import CrmWriteBack
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

INACTIVE = {"kind": "inactivity", "days": 10}


def sync_companies(connection, fake, *numbers):
    for number in numbers:
        fake.put("companies", str(number), at(number), name=f"Company {number}")
    claimed = claim_run(create_run(connection, "company", "full").pk)
    assert claimed is not None
    execute_run(claimed)


def set_risk(value):
    """Run a journey that sets onboarding_risk on every inactive account."""
    trigger = make_trigger(INACTIVE, subject_type="account")
    make_step(
        trigger,
        1,
        "set_property",
        property_object="account",
        property_name="onboarding_risk",
        property_value=value,
    )
    run_sweep(timezone.now(), triggers=[trigger])


def test_write_backs_reach_hubspot(connection, fake_hubspot):
    sync_companies(connection, fake_hubspot, 1, 2)
    set_risk("high")

    counts = push_write_backs(connection)

    assert counts.pushed == 2
    assert counts.failed == 0
    for number in (1, 2):
        company = fake_hubspot.objects["companies"][str(number)]
        assert company["properties"]["onboarding_risk"] == "high"
    for row in CrmWriteBack.objects.all():
        assert row.status == "pushed"
        assert row.pushed_at is not None
    updates = [r for r in fake_hubspot.requests if r[1].endswith("/batch/update")]
    assert len(updates) == 1


def test_multi_status_marks_each_row(connection, fake_hubspot):
    sync_companies(connection, fake_hubspot, 1, 2)
    set_risk("high")
    # Company 2 was deleted in HubSpot since the sync, so its update fails alone.
    fake_hubspot.remove("companies", "2")

    counts = push_write_backs(connection)

    assert (counts.pushed, counts.failed) == (1, 1)
    first = CrmWriteBack.objects.get(account__external_id="1")
    second = CrmWriteBack.objects.get(account__external_id="2")
    assert first.status == "pushed"
    assert second.status == "failed"
    assert "OBJECT_NOT_FOUND" in second.last_error


def test_rejected_value_fails_with_hubspots_message(connection, fake_hubspot):
    sync_companies(connection, fake_hubspot, 1)
    fake_hubspot.options["onboarding_risk"] = {"low", "medium", "high"}
    set_risk("extreme")

    counts = push_write_backs(connection)

    row = CrmWriteBack.objects.get()
    assert counts.failed == 1
    assert row.status == "failed"
    assert "extreme was not one of the allowed options" in row.last_error
    assert "onboarding_risk" not in fake_hubspot.objects["companies"]["1"]["properties"]


def test_unlinked_account_fails_without_a_request(connection, fake_hubspot):
    make_account(external_id="local-only")
    set_risk("high")

    push_crm_write_backs()

    row = CrmWriteBack.objects.get()
    assert row.status == "failed"
    assert f"account {Account.objects.get().pk} is not linked" in row.last_error
    assert not [r for r in fake_hubspot.requests if r[1].endswith("/batch/update")]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(True, "true"), (False, "false"), (None, ""), (7, "7"), (["a", "b"], "a;b")],
)
def test_values_become_hubspot_strings(value, expected):
    assert hubspot_value(value) == expected
