"""HubSpot tickets as support tickets of the account of their company.

A ticket's account is its primary company's, or else the account of its
contact. Its priority comes from hs_ticket_priority through the
connection's priority map, its topic from the topic property, and it is
closed when HubSpot gives a closed_date or its stage is one of the
connection's closed stages. customers.services.record_ticket stores it
under the external id hubspot-CONNECTION-ticket-ID, so a ticket read
again updates the same row.
"""

import logging
from datetime import datetime
from typing import Any

from customers.models import Account, Contact, SupportTicket, TicketPriority
from customers.services import record_ticket
from integrations.hubspot.models import HubSpotConnection, ObjectType
from integrations.hubspot.records import (
    MODIFIED_PROPERTY,
    HubSpotRecord,
    Outcome,
    RecordError,
    followed_link,
    parse_instant,
)

logger = logging.getLogger(__name__)

# A ticket without a priority in HubSpot gets this one.
DEFAULT_PRIORITY = TicketPriority.MEDIUM


def ticket_properties(connection: HubSpotConnection) -> list[str]:
    """Return the ticket properties that the sync requests from HubSpot."""
    names = [
        MODIFIED_PROPERTY[ObjectType.TICKET],
        "subject",
        "createdate",
        "closed_date",
        "hs_pipeline",
        "hs_pipeline_stage",
        "hs_ticket_priority",
        connection.ticket_topic_property,
    ]
    return list(dict.fromkeys(name for name in names if name))


def apply_ticket(
    connection: HubSpotConnection,
    record: HubSpotRecord,
    company_ids: list[str],
    contact_ids: list[str],
) -> Outcome:
    """Store one ticket as a support ticket; raise RecordError to skip it."""
    if record.archived:
        # The search API returns no archived tickets; this guards other callers.
        return Outcome.SKIPPED
    contact = _ticket_contact(connection, contact_ids)
    account = _ticket_account(connection, record, company_ids, contact)
    if contact is not None and contact.account_id != account.pk:
        # record_ticket accepts only a contact of the ticket's account.
        contact = None
    fields = {
        "account": account,
        "contact": contact,
        "opened_at": _instant(record, "createdate", required=True),
        "closed_at": _closed_at(connection, record),
        "priority": _priority(connection, record),
        "topic": _topic(connection, record),
    }
    external_id = f"hubspot-{connection.pk}-ticket-{record.hubspot_id}"
    existing = SupportTicket.objects.filter(external_id=external_id).first()
    if existing is not None and all(
        getattr(existing, name) == value for name, value in fields.items()
    ):
        return Outcome.UNCHANGED
    try:
        record_ticket(external_id=external_id, **fields)
    except ValueError as error:
        raise RecordError(f"{record.label}: {error}") from None
    return Outcome.CREATED if existing is None else Outcome.UPDATED


def _ticket_contact(
    connection: HubSpotConnection, contact_ids: list[str]
) -> Contact | None:
    for contact_id in contact_ids:
        link = followed_link(connection, ObjectType.CONTACT, contact_id)
        if link is not None and link.contact is not None:
            return link.contact
    return None


def _ticket_account(
    connection: HubSpotConnection,
    record: HubSpotRecord,
    company_ids: list[str],
    contact: Contact | None,
) -> Account:
    if company_ids:
        link = followed_link(connection, ObjectType.COMPANY, company_ids[0])
        if link is None or link.account is None:
            raise RecordError(
                f"{record.label}: its company {company_ids[0]} is not synced yet; "
                "run the company sync, then sync tickets again"
            )
        return link.account
    if contact is not None:
        return contact.account
    raise RecordError(
        f"{record.label} has no company and no synced contact, so it belongs to "
        "no account; associate it with a company in HubSpot"
    )


def _instant(record: HubSpotRecord, name: str, *, required: bool) -> Any:
    raw = record.properties.get(name)
    if raw in (None, ""):
        if required:
            raise RecordError(
                f"{record.label}: property {name} is missing; HubSpot sets it on "
                "every ticket, so read the ticket again"
            )
        return None
    instant = parse_instant(raw)
    if instant is None:
        raise RecordError(
            f"{record.label}: property {name} value {str(raw)[:40]!r} is invalid; "
            "expected an ISO 8601 instant or milliseconds since 1970 (UTC)"
        )
    return instant


def _closed_at(connection: HubSpotConnection, record: HubSpotRecord) -> datetime | None:
    closed = _instant(record, "closed_date", required=False)
    if closed is not None:
        return closed
    stage = str(record.properties.get("hs_pipeline_stage") or "")
    if stage and stage in connection.ticket_closed_stages:
        # A closed stage without a closed_date: the last change closed it.
        return _instant(record, MODIFIED_PROPERTY[ObjectType.TICKET], required=True)
    return None


def _priority(connection: HubSpotConnection, record: HubSpotRecord) -> str:
    raw = str(record.properties.get("hs_ticket_priority") or "").strip()
    if not raw:
        return DEFAULT_PRIORITY
    priority = connection.ticket_priorities.get(raw)
    if priority not in TicketPriority.values:
        raise RecordError(
            f"{record.label}: hs_ticket_priority value {raw[:40]!r} is not in the "
            "connection's ticket priorities; map it to one of "
            f"{', '.join(TicketPriority.values)}"
        )
    return str(priority)


def _topic(connection: HubSpotConnection, record: HubSpotRecord) -> str:
    if not connection.ticket_topic_property:
        return ""
    topic = str(record.properties.get(connection.ticket_topic_property) or "")
    return topic.strip()[:100]
