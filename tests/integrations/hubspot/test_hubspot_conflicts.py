"""Field ownership: the owner wins when both sides changed a field."""

from datetime import date

import pytest

from customers.models import Account
from customers.services import update_account_attributes
from integrations.hubspot.crm_models import FieldConflict
from integrations.hubspot.models import (
    FieldOwner,
    HubSpotLink,
    PropertyMapping,
    SyncKind,
    SyncStatus,
)
from integrations.hubspot.sync import claim_run, create_run, execute_run
from tests.integrations.hubspot.conftest import at

pytestmark = pytest.mark.django_db


def run(connection, kind=SyncKind.INCREMENTAL):
    created = create_run(connection, "company", kind)
    claimed = claim_run(created.pk)
    assert claimed is not None
    finished = execute_run(claimed)
    assert finished.status == SyncStatus.SUCCEEDED, finished.last_error
    return finished


def put_company(fake, minutes, **properties):
    values = {"name": "Acme", "seats": "10", "mrr": "100", "plan_tier": "pro"}
    fake.put("companies", "1", at(minutes), **{**values, **properties})


def own(connection, hubspot_property, owner):
    PropertyMapping.objects.filter(
        connection=connection, hubspot_property=hubspot_property
    ).update(owner=owner)


@pytest.fixture
def synced(connection, fake_hubspot):
    put_company(fake_hubspot, 1)
    run(connection, SyncKind.FULL)
    return Account.objects.get(external_id="1")


def test_hubspot_owned_field_wins(connection, fake_hubspot, synced):
    update_account_attributes(synced, {"seats": 12})
    put_company(fake_hubspot, 10, seats="15")

    run(connection)

    assert Account.objects.get(pk=synced.pk).seats == 15
    conflict = FieldConflict.objects.get()
    assert conflict.field_name == "seats"
    assert conflict.owner == FieldOwner.HUBSPOT
    assert conflict.hubspot_value == 15
    assert conflict.nudgepath_value == 12
    assert conflict.synced_value == 10
    assert conflict.losing_value == 12
    assert conflict.account == synced


def test_nudgepath_owned_field_keeps_the_local_value(connection, fake_hubspot, synced):
    own(connection, "mrr", FieldOwner.NUDGEPATH)
    update_account_attributes(synced, {"mrr": "130.00"})
    put_company(fake_hubspot, 10, mrr="140.5")

    run(connection)

    assert str(Account.objects.get(pk=synced.pk).mrr) == "130.00"
    conflict = FieldConflict.objects.get()
    assert conflict.owner == FieldOwner.NUDGEPATH
    # Amounts are compared and logged as plain decimal text.
    assert conflict.hubspot_value == "140.5"
    assert conflict.nudgepath_value == "130"
    assert conflict.losing_value == "140.5"


def test_change_on_one_side_passes_without_conflict(connection, fake_hubspot, synced):
    own(connection, "renewal_date", FieldOwner.NUDGEPATH)
    # HubSpot alone changes a field that Nudgepath owns: it is taken.
    put_company(fake_hubspot, 10, renewal_date="2027-06-30")
    run(connection)
    # Nudgepath alone changes a field that HubSpot owns: it is kept.
    update_account_attributes(synced, {"seats": 20})
    put_company(fake_hubspot, 20, renewal_date="2027-06-30", name="Acme Inc")

    run(connection)

    account = Account.objects.get(pk=synced.pk)
    assert account.renewal_date == date(2027, 6, 30)
    assert account.seats == 20
    assert account.name == "Acme Inc"
    assert FieldConflict.objects.count() == 0


def test_same_value_on_both_sides_is_no_conflict(connection, fake_hubspot, synced):
    update_account_attributes(synced, {"seats": 15})
    put_company(fake_hubspot, 10, seats="15")

    run(connection)

    assert FieldConflict.objects.count() == 0
    link = HubSpotLink.objects.get(hubspot_id="1", object_type="company")
    assert link.synced_values["seats"] == 15


def test_conflict_sync_again_writes_nothing(connection, fake_hubspot, synced):
    own(connection, "seats", FieldOwner.NUDGEPATH)
    update_account_attributes(synced, {"seats": 12})
    put_company(fake_hubspot, 10, seats="15")
    run(connection)
    stamp = Account.objects.get(pk=synced.pk).updated_at

    again = run(connection, SyncKind.FULL)

    assert again.unchanged == 1
    assert FieldConflict.objects.count() == 1
    assert Account.objects.get(pk=synced.pk).updated_at == stamp
    assert Account.objects.get(pk=synced.pk).seats == 12


def test_link_without_synced_values(connection, fake_hubspot, synced):
    # A link written before synced values existed has none to compare with.
    HubSpotLink.objects.update(synced_values={})
    update_account_attributes(synced, {"seats": 12})

    run(connection, SyncKind.FULL)

    assert Account.objects.get(pk=synced.pk).seats == 10
    conflict = FieldConflict.objects.get()
    assert conflict.synced_value is None
    assert conflict.nudgepath_value == 12


def test_conflict_log_lists_rows_in_admin(
    admin_client, connection, fake_hubspot, synced
):
    update_account_attributes(synced, {"seats": 12})
    put_company(fake_hubspot, 10, seats="15")
    run(connection)

    page = admin_client.get("/admin/integrations/fieldconflict/")

    assert page.status_code == 200
    assert "Acme" in page.content.decode()
    for path in ("hubspotowner", "hubspotdeal"):
        assert admin_client.get(f"/admin/integrations/{path}/").status_code == 200


def test_value_filled_in_hubspot_is_no_conflict(connection, fake_hubspot):
    # HubSpot has no seats at first, so the new account keeps its default.
    fake_hubspot.put("companies", "1", at(1), name="Acme", seats="")
    run(connection, SyncKind.FULL)
    assert Account.objects.get(external_id="1").seats == 1
    fake_hubspot.put("companies", "1", at(10), name="Acme", seats="25")

    run(connection)

    assert Account.objects.get(external_id="1").seats == 25
    assert FieldConflict.objects.count() == 0
