"""Applying the stored webhook events of one HubSpot record.

Each handler reads the record as HubSpot has it now, with one batch read,
and applies it as the sync does. So the events of one record are applied
once however many there are, and an event that arrives late cannot undo
a newer change. The sync's functions send data_changed for every change,
which hands it to the trigger engine's event path.
"""

import logging
from typing import Any

from hubspot.crm.companies import BatchReadInputSimplePublicObjectId as CompanyRead
from hubspot.crm.contacts import BatchReadInputSimplePublicObjectId as ContactRead
from hubspot.crm.deals import BatchReadInputSimplePublicObjectId as DealRead
from hubspot.crm.tickets import BatchReadInputSimplePublicObjectId as TicketRead

from integrations.hubspot.api import build_client, call
from integrations.hubspot.associations import read_associations
from integrations.hubspot.deals import apply_deal, deal_properties, remove_deal
from integrations.hubspot.models import (
    PLURALS,
    HubSpotConnection,
    ObjectType,
    PropertyMapping,
    WebhookEvent,
)
from integrations.hubspot.records import (
    HubSpotRecord,
    RecordError,
    apply_record,
    mark_archived,
    requested_properties,
)
from integrations.hubspot.tickets import apply_ticket, ticket_properties

logger = logging.getLogger(__name__)

OBJECT_TYPES = {
    "company": ObjectType.COMPANY,
    "contact": ObjectType.CONTACT,
    "deal": ObjectType.DEAL,
    "ticket": ObjectType.TICKET,
}
READ_REQUESTS: dict[str, Any] = {
    ObjectType.COMPANY: CompanyRead,
    ObjectType.CONTACT: ContactRead,
    ObjectType.DEAL: DealRead,
    ObjectType.TICKET: TicketRead,
}


def apply_object_events(
    connection: HubSpotConnection, events: list[WebhookEvent]
) -> None:
    """Apply the events of one record; raise RecordError or HubSpotError to fail.

    events are all about one record and one object type, oldest first.
    """
    kind, _, action = events[-1].subscription_type.partition(".")
    object_type = OBJECT_TYPES.get(kind)
    if object_type is None:
        raise RecordError(
            f"subscription type {events[-1].subscription_type} is not synced; "
            "subscribe the app to company, contact, deal or ticket events only"
        )
    _require_enabled(connection, object_type)
    object_id = events[-1].object_id
    if action == "deletion":
        _deleted(connection, object_type, object_id)
        return
    obj = read_object(connection, object_type, object_id)
    if obj is None:
        # The record is gone again (archived or merged away) since the event.
        _deleted(connection, object_type, object_id)
        return
    warnings: list[str] = []
    record = HubSpotRecord.from_api(object_type, obj)
    if object_type == ObjectType.DEAL:
        companies = read_associations(connection, "deals", "companies", [object_id])
        company_ids = companies.get(object_id, [])
        company_id = company_ids[0] if company_ids else None
        apply_deal(connection, record, company_id, warnings)
    elif object_type == ObjectType.TICKET:
        apply_ticket(
            connection,
            record,
            read_associations(connection, "tickets", "companies", [object_id]).get(
                object_id, []
            ),
            read_associations(connection, "tickets", "contacts", [object_id]).get(
                object_id, []
            ),
        )
    else:
        apply_record(connection, record, _mappings(connection, object_type), warnings)
    for warning in warnings:
        logger.warning("HubSpot webhook for %s %s: %s", kind, object_id, warning)


def _require_enabled(connection: HubSpotConnection, object_type: str) -> None:
    """Raise RecordError for deals or tickets that the connection does not sync."""
    enabled: dict[str, bool] = {
        ObjectType.DEAL: connection.sync_deals,
        ObjectType.TICKET: connection.sync_tickets,
    }
    if not enabled.get(object_type, True):
        label = "Sync deals" if object_type == ObjectType.DEAL else "Sync tickets"
        raise RecordError(
            f"{object_type} events arrive but {label} is off on the connection; "
            f"tick {label} or unsubscribe the app from {object_type} events"
        )


def read_object(connection: HubSpotConnection, object_type: str, object_id: str) -> Any:
    """Return the object as HubSpot has it now, or None when it is not found."""
    batch = getattr(build_client(connection).crm, f"{_plural(object_type)}").batch_api
    request = READ_REQUESTS[object_type](
        inputs=[{"id": object_id}],
        properties=_properties(connection, object_type),
        properties_with_history=[],
    )
    response = call(
        connection,
        lambda: batch.read(batch_read_input_simple_public_object_id=request),
        description=f"read {object_type} {object_id}",
    )
    for obj in response.results or []:
        if str(obj.id) == object_id:
            return obj
    return None


def _deleted(connection: HubSpotConnection, object_type: str, object_id: str) -> None:
    if object_type == ObjectType.DEAL:
        remove_deal(connection, object_id)
    elif object_type == ObjectType.TICKET:
        # The support ticket stays: the customer did ask for help.
        logger.info(
            "HubSpot ticket %s was deleted; its support ticket is kept", object_id
        )
    else:
        mark_archived(connection, object_type, object_id)


def _properties(connection: HubSpotConnection, object_type: str) -> list[str]:
    if object_type == ObjectType.DEAL:
        return deal_properties(connection)
    if object_type == ObjectType.TICKET:
        return ticket_properties(connection)
    return requested_properties(object_type, _mappings(connection, object_type))


def _mappings(connection: HubSpotConnection, object_type: str) -> list[PropertyMapping]:
    return list(
        PropertyMapping.objects.filter(connection=connection, object_type=object_type)
    )


def _plural(object_type: str) -> str:
    return PLURALS[object_type]
