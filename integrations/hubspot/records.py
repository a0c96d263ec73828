"""Applying one HubSpot company or contact to the customer record.

Each record is written in its own transaction. It holds the link that
names the record's account or contact, a new row when there is none, and
the mapped attributes. Those go through customers.services, which sends
data_changed so that the triggers that read CRM data see the change. A
value that does not convert skips the whole record before anything is
written.
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from enum import StrEnum
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone

from customers.models import Account, Contact
from customers.services import (
    record_health_score,
    send_data_changed,
    update_account_attributes,
    update_contact_attributes,
)
from integrations.hubspot.conversion import ConversionError, convert
from integrations.hubspot.models import (
    NULLABLE_TARGETS,
    HubSpotConnection,
    HubSpotLink,
    ObjectType,
    PropertyMapping,
    Target,
)
from integrations.hubspot.moves import follow_company
from integrations.hubspot.owners import owner_user, set_account_owner
from integrations.hubspot.ownership import settle_fields

logger = logging.getLogger(__name__)

# Properties the sync reads besides the mapped ones. Companies and
# contacts name their last-modified property differently.
MODIFIED_PROPERTY = {
    ObjectType.COMPANY: "hs_lastmodifieddate",
    ObjectType.CONTACT: "lastmodifieddate",
    ObjectType.DEAL: "hs_lastmodifieddate",
    ObjectType.TICKET: "hs_lastmodifieddate",
}
BASE_PROPERTIES = {
    ObjectType.COMPANY: ["name", "createdate", "hs_merged_object_ids"],
    ObjectType.CONTACT: [
        "email",
        "firstname",
        "lastname",
        "createdate",
        "associatedcompanyid",
        "hs_merged_object_ids",
    ],
    ObjectType.DEAL: [
        "dealname",
        "pipeline",
        "dealstage",
        "amount",
        "closedate",
        "hs_is_closed",
        "hs_is_closed_won",
        "createdate",
    ],
}


class Outcome(StrEnum):
    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    SKIPPED = "skipped"


class RecordError(ValueError):
    """A record that cannot be applied; the message names it and what to do."""


@dataclass
class HubSpotRecord:
    """The parts of a CRM v3 object that the sync reads."""

    object_type: str
    hubspot_id: str
    properties: Mapping[str, Any]
    archived: bool = False
    merged_ids: Sequence[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return f"HubSpot {self.object_type} {self.hubspot_id}"

    @classmethod
    def from_api(cls, object_type: str, obj: Any) -> "HubSpotRecord":
        """Build a record from a SimplePublicObject of the official client."""
        properties = dict(obj.properties or {})
        merged = properties.get("hs_merged_object_ids") or ""
        return cls(
            object_type=object_type,
            hubspot_id=str(obj.id),
            properties=properties,
            archived=bool(obj.archived),
            merged_ids=[part for part in merged.split(";") if part.strip()],
        )


def requested_properties(
    object_type: str, mappings: Sequence[PropertyMapping]
) -> list[str]:
    """Return the property names to ask HubSpot for, without repeats."""
    names = [
        MODIFIED_PROPERTY[ObjectType(object_type)],
        *BASE_PROPERTIES[ObjectType(object_type)],
    ]
    names += [mapping.hubspot_property for mapping in mappings]
    return list(dict.fromkeys(names))


def apply_record(
    connection: HubSpotConnection,
    record: HubSpotRecord,
    mappings: Sequence[PropertyMapping],
    warnings: list[str] | None = None,
) -> Outcome:
    """Write one record; raise RecordError or ConversionError to skip it.

    Problems that leave the rest of the record valid, such as an owner that
    matches no user, are appended to warnings and the record is written.
    """
    if record.archived:
        mark_archived(connection, record.object_type, record.hubspot_id)
        return Outcome.SKIPPED
    if connection.renewal_date_from_deals:
        # The deal sync owns the renewal date, so a company property must not
        # overwrite it.
        mappings = [m for m in mappings if m.target != Target.RENEWAL_DATE]
    values = _converted(record, mappings)
    warnings = [] if warnings is None else warnings
    with transaction.atomic():
        if record.object_type == ObjectType.COMPANY:
            return _apply_company(connection, record, values, warnings)
        return _apply_contact(connection, record, values)


def mark_archived(
    connection: HubSpotConnection, object_type: str, hubspot_id: str
) -> None:
    """Remember that HubSpot archived a record; nothing local is deleted."""
    updated = HubSpotLink.objects.filter(
        connection=connection,
        object_type=object_type,
        hubspot_id=hubspot_id,
        archived_at__isnull=True,
    ).update(archived_at=timezone.now())
    if updated:
        logger.info("Marked HubSpot %s %s archived", object_type, hubspot_id)


def _converted(
    record: HubSpotRecord, mappings: Sequence[PropertyMapping]
) -> list[tuple[PropertyMapping, Any]]:
    # All values convert before any write, so a bad one skips the record whole.
    return [
        (
            mapping,
            convert(
                mapping, record.properties.get(mapping.hubspot_property), record.label
            ),
        )
        for mapping in mappings
        if mapping.hubspot_property in record.properties
    ]


def _apply_company(
    connection: HubSpotConnection,
    record: HubSpotRecord,
    values: list[tuple[PropertyMapping, Any]],
    warnings: list[str],
) -> Outcome:
    link = resolve_link(connection, record)
    created = link.account is None
    new_row = False
    if created:
        link.account, new_row = _find_or_create_account(record)
        link.save(update_fields=["account", "updated_at"])
    account = link.account
    assert account is not None
    values = settle_fields(connection, link, account, values, new_row=new_row)
    changes, health_score = _split_changes(values, record)
    owner_ids = [value for mapping, value in values if mapping.target == Target.OWNER]
    changed = _update(update_account_attributes, account, changes, record)
    if health_score is not None and account.health_score != health_score:
        record_health_score(account, _modified_date(record), health_score)
        changed = True
    # An empty owner id keeps the stored owner, as other empty values do.
    if owner_ids and owner_ids[-1] is not None:
        user, problem = owner_user(connection, str(owner_ids[-1]))
        if user is None:
            warnings.append(f"{record.label}: {problem}; the account keeps its owner")
        elif set_account_owner(account, user):
            changed = True
    return _outcome(created, changed)


def _apply_contact(
    connection: HubSpotConnection,
    record: HubSpotRecord,
    values: list[tuple[PropertyMapping, Any]],
) -> Outcome:
    account = _company_account(connection, record)
    link = resolve_link(connection, record)
    created = link.contact is None
    new_row = False
    if created:
        new_values, _ = _split_changes(values, record)
        link.contact, new_row = _find_or_create_contact(record, account, new_values)
        link.save(update_fields=["contact", "updated_at"])
    contact = link.contact
    assert contact is not None
    values = settle_fields(connection, link, contact, values, new_row=new_row)
    changes, _ = _split_changes(values, record)
    changed = _update(update_contact_attributes, contact, changes, record)
    company_id = str(record.properties.get("associatedcompanyid") or "")
    if account is not None and follow_company(
        connection, link, contact, account, company_id
    ):
        changed = True
    return _outcome(created, changed)


def resolve_link(connection: HubSpotConnection, record: HubSpotRecord) -> HubSpotLink:
    """Return the record's link, locked, carrying over a merged-away record's row.

    HubSpot keeps the surviving record's id after a merge and lists the
    others in hs_merged_object_ids. The surviving id takes over the account
    or contact of a merged-away id's link, so a merge creates no second
    row. The old links stay, because webhooks may still name old ids.
    """
    link, _ = HubSpotLink.objects.select_for_update().get_or_create(
        connection=connection,
        object_type=record.object_type,
        hubspot_id=record.hubspot_id,
    )
    if link.archived_at is not None:
        # A restored record is synced again.
        link.archived_at = None
        link.save(update_fields=["archived_at", "updated_at"])
    if not record.merged_ids:
        return link
    merged = HubSpotLink.objects.select_for_update().filter(
        connection=connection,
        object_type=record.object_type,
        hubspot_id__in=record.merged_ids,
    )
    for old in merged:
        if link.account_id is None and link.contact_id is None:
            link.account_id, link.contact_id = old.account_id, old.contact_id
            link.save(update_fields=["account", "contact", "updated_at"])
        if old.merged_into != record.hubspot_id:
            old.merged_into = record.hubspot_id
            old.save(update_fields=["merged_into", "updated_at"])
    return link


def _split_changes(
    values: list[tuple[PropertyMapping, Any]], record: HubSpotRecord
) -> tuple[dict[str, Any], int | None]:
    changes: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    health_score = None
    for mapping, value in values:
        if mapping.target == Target.PROPERTY:
            properties[mapping.field_name] = _json_value(value)
        elif mapping.target == Target.HEALTH_SCORE:
            health_score = _health_score(mapping, value, record)
        elif mapping.target == Target.OWNER:
            continue
        elif value is not None or mapping.target in NULLABLE_TARGETS:
            changes[mapping.target] = value
    if properties:
        changes["properties"] = properties
    return changes, health_score


def _health_score(mapping: PropertyMapping, value: Any, record: HubSpotRecord) -> Any:
    # record_health_score would raise later, without the property's name.
    if value is not None and (not isinstance(value, int) or not 0 <= value <= 100):
        raise RecordError(
            f"{record.label}: property {mapping.hubspot_property} value {value!r} "
            "is invalid for health_score; expected a whole number from 0 to 100"
        )
    return value


def _json_value(value: Any) -> Any:
    """Return value as custom properties store it: JSON, dates as ISO text."""
    if isinstance(value, date | datetime):
        return value.isoformat()
    if value is not None and not isinstance(value, bool | int | float | str):
        # Decimal: JSON has no decimal type, so the exact text is kept.
        return str(value)
    return value


def _update(
    update: Any, row: Account | Contact, changes: dict[str, Any], record: HubSpotRecord
) -> bool:
    if not changes:
        return False
    try:
        return bool(update(row, changes))
    except ValidationError as error:
        raise RecordError(f"{record.label}: {_messages(error)}") from None
    except ValueError as error:
        raise RecordError(f"{record.label}: {error}") from None


def _find_or_create_account(record: HubSpotRecord) -> tuple[Account, bool]:
    """Return the record's account and whether it is new."""
    existing = Account.objects.filter(external_id=record.hubspot_id).first()
    if existing is not None:
        return existing, False
    name = (record.properties.get("name") or "").strip() or record.label
    account = Account(
        external_id=record.hubspot_id,
        name=name[:200],
        signup_date=_created_date(record),
    )
    account.save()
    send_data_changed(Account, account.pk, "crm")
    logger.info("Created account %s for %s", account.pk, record.label)
    return account, True


def _company_account(
    connection: HubSpotConnection, record: HubSpotRecord
) -> Account | None:
    company_id = record.properties.get("associatedcompanyid")
    if not company_id:
        return None
    link = followed_link(connection, ObjectType.COMPANY, str(company_id))
    if link is None or link.account is None:
        raise RecordError(
            f"{record.label}: its company {company_id} is not synced yet; run the "
            "company sync first, then sync contacts again"
        )
    return link.account


def followed_link(
    connection: HubSpotConnection, object_type: str, hubspot_id: str
) -> HubSpotLink | None:
    """Return the link of hubspot_id, following merges to the surviving record."""
    seen = set()
    link = (
        HubSpotLink.objects.filter(
            connection=connection, object_type=object_type, hubspot_id=hubspot_id
        )
        .select_related("account", "contact")
        .first()
    )
    while link is not None and link.merged_into and link.hubspot_id not in seen:
        seen.add(link.hubspot_id)
        survivor = (
            HubSpotLink.objects.filter(
                connection=connection,
                object_type=object_type,
                hubspot_id=link.merged_into,
            )
            .select_related("account", "contact")
            .first()
        )
        if survivor is None:
            break
        link = survivor
    return link


def _find_or_create_contact(
    record: HubSpotRecord, account: Account | None, changes: dict[str, Any]
) -> tuple[Contact, bool]:
    """Return the record's contact and whether it is new."""
    email = changes.get("email") or (record.properties.get("email") or "").strip()
    existing = Contact.objects.filter(external_id=record.hubspot_id).first()
    if existing is None and email:
        existing = Contact.objects.filter(email__iexact=email).first()
    if existing is not None:
        return existing, False
    if account is None:
        raise RecordError(
            f"{record.label} has no company, and a new contact needs an account; "
            "associate it with a company in HubSpot"
        )
    if not email:
        raise RecordError(
            f"{record.label} has no email, which a new contact needs; add one "
            "in HubSpot"
        )
    first_name = (
        changes.get("first_name")
        or record.properties.get("firstname")
        or email.partition("@")[0]
    )
    contact = Contact(
        account=account,
        external_id=record.hubspot_id,
        email=email,
        first_name=first_name,
        last_name=changes.get("last_name") or record.properties.get("lastname") or "",
        added_at=_created_instant(record),
    )
    try:
        contact.full_clean(exclude=["user"])
    except ValidationError as error:
        raise RecordError(f"{record.label}: {_messages(error)}") from None
    contact.save()
    send_data_changed(Contact, account.pk, "contacts")
    logger.info("Created contact %s for %s", contact.pk, record.label)
    return contact, True


def _outcome(created: bool, changed: bool) -> Outcome:
    if created:
        return Outcome.CREATED
    return Outcome.UPDATED if changed else Outcome.UNCHANGED


def _created_instant(record: HubSpotRecord) -> datetime:
    raw = record.properties.get("createdate")
    instant = parse_instant(raw) if raw else None
    return instant or timezone.now()


def _created_date(record: HubSpotRecord) -> date:
    return _created_instant(record).astimezone(UTC).date()


def _modified_date(record: HubSpotRecord) -> date:
    raw = record.properties.get(MODIFIED_PROPERTY[ObjectType(record.object_type)])
    instant = parse_instant(raw) if raw else None
    return (instant or timezone.now()).astimezone(UTC).date()


def parse_instant(raw: Any) -> datetime | None:
    """Return HubSpot's ISO 8601 or millisecond timestamp as an aware datetime."""
    text = str(raw).strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def _messages(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(
            f"{name}: {' '.join(messages)}"
            for name, messages in error.message_dict.items()
        )
    return " ".join(error.messages)


__all__ = ["ConversionError", "HubSpotRecord", "Outcome", "RecordError", "apply_record"]
