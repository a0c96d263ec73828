"""Admin pages of the HubSpot connection and its sync runs."""

import pytest
from django.core.exceptions import ValidationError

from integrations.hubspot.models import HubSpotConnection, PropertyMapping
from tests.integrations.hubspot.conftest import TOKEN

pytestmark = pytest.mark.django_db


def test_change_page_masks_the_token(admin_client, connection):
    page = admin_client.get(
        f"/admin/integrations/hubspotconnection/{connection.pk}/change/"
    )

    assert page.status_code == 200
    content = page.content.decode()
    assert TOKEN not in content
    assert TOKEN[-4:] in content
    assert "app-secret-for-tests" not in content


def test_blank_token_keeps_the_stored_one(admin_client, connection):
    response = admin_client.post(
        f"/admin/integrations/hubspotconnection/{connection.pk}/change/",
        {
            "name": "Renamed portal",
            "access_token": "",
            "app_secret": "",
            "host": connection.host,
            "is_active": "on",
            "deal_type_property": "dealtype",
            "renewal_deal_types": "[]",
            "renewal_pipelines": "[]",
            "expansion_deal_types": "[]",
            "ticket_priorities": '{"LOW": "low"}',
            "ticket_topic_property": "hs_ticket_category",
            "ticket_closed_stages": "[]",
            "mappings-TOTAL_FORMS": "0",
            "mappings-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    connection.refresh_from_db()
    assert connection.name == "Renamed portal"
    assert connection.access_token == TOKEN
    assert connection.app_secret == "app-secret-for-tests"


def test_new_connection_needs_a_token(admin_client):
    response = admin_client.post(
        "/admin/integrations/hubspotconnection/add/",
        {
            "name": "Portal",
            "access_token": "",
            "host": "",
            "mappings-TOTAL_FORMS": "0",
            "mappings-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    assert "The access token is missing" in response.content.decode()
    assert not HubSpotConnection.objects.exists()


def test_mapping_rejects_a_target_of_the_other_object(connection):
    mapping = PropertyMapping(
        connection=connection,
        object_type="contact",
        hubspot_property="x",
        target="renewal_date",
    )

    with pytest.raises(ValidationError, match="is not a field of a contact"):
        mapping.full_clean()


def test_sync_run_list_shows_runs(admin_client, connection):
    from integrations.hubspot.sync import create_run

    create_run(connection, "company")

    page = admin_client.get("/admin/integrations/syncrun/")

    assert page.status_code == 200
    assert "Queued" in page.content.decode()
