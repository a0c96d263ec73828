"""Checking and applying one inbound webhook item.

Each check raises Rejection (from the Segment API, which uses the same
codes) with a code and a reason that names the field and the value.
"""

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.core.exceptions import ValidationError

from customers.models import Account, Contact
from customers.services import (
    record_usage_event,
    update_account_attributes,
    update_contact_attributes,
)
from integrations.json_values import storage_problem
from integrations.segment.messages import MAX_FUTURE, Rejection, parse_instant

ITEM_TYPES = ("usage_event", "contact_properties", "account_properties")
MAX_KEY_LENGTH = 200
MAX_ID_LENGTH = 64
MAX_PROPERTY_DEPTH = 20
# The earliest timestamp accepted. Inbound items come from tools running
# now, and no usage event here predates 2000, so an earlier one is a
# default value such as 0001-01-01 (the zero time of Go and .NET).
MIN_TIMESTAMP = datetime(2000, 1, 1, tzinfo=UTC)


@dataclass
class Item:
    """One checked item: its type, key and the values it applies."""

    index: int
    type: str
    key: str
    contact_id: str | None
    email: str | None
    account_id: str | None
    event: str
    feature: str
    occurred_at: datetime
    properties: dict[str, Any]


def parse_item(index: int, raw: Any, received_at: datetime) -> Item:
    """Return the checked item; raise Rejection naming the first problem."""
    if not isinstance(raw, dict):
        raise Rejection("invalid_item", f"item is a JSON {_type(raw)}, not an object")
    item_type = raw.get("type")
    if item_type not in ITEM_TYPES:
        raise Rejection(
            "invalid_type",
            f"type {_shown(item_type)} is not one of {', '.join(ITEM_TYPES)}",
        )
    properties = raw.get("properties", {})
    if not isinstance(properties, dict):
        raise Rejection(
            "invalid_item", f"properties is a JSON {_type(properties)}, not an object"
        )
    problem = storage_problem(properties, MAX_PROPERTY_DEPTH)
    if problem:
        raise Rejection("invalid_properties", f"properties {problem}")
    item = Item(
        index=index,
        type=item_type,
        key=_key(raw.get("key")),
        contact_id=_identifier(raw, "contact"),
        email=_text(raw, "email", 254),
        account_id=_identifier(raw, "account"),
        event=_text(raw, "event", 100) or "",
        feature=_text(raw, "feature", 100) or "",
        occurred_at=_occurred_at(raw.get("timestamp"), received_at),
        properties=properties,
    )
    _require_subject(item)
    return item


def apply_item(item: Item, source_id: int) -> None:
    """Write one item; raise Rejection when its contact, account or values are bad."""
    try:
        if item.type == "usage_event":
            _record_event(item, source_id)
        elif item.type == "contact_properties":
            update_contact_attributes(_contact(item), {"properties": item.properties})
        else:
            update_account_attributes(_account(item), {"properties": item.properties})
    except ValidationError as error:
        raise Rejection("invalid_properties", "; ".join(error.messages)) from None
    except ValueError as error:
        raise Rejection("invalid_properties", str(error)) from None


def _record_event(item: Item, source_id: int) -> None:
    contact = _contact(item)
    if item.account_id is not None and item.account_id != contact.account.external_id:
        account = _account(item)
        if not contact.associated_accounts.filter(pk=account.pk).exists():
            raise Rejection(
                "not_in_account",
                f"contact {_who(item)} is not a contact of account "
                f"{item.account_id!r}; leave account out or link them first",
            )
        contact.account_id = account.pk
    # The key alone decides a duplicate; this id only guards the table.
    digest = hashlib.sha256(f"{source_id}:{item.key}".encode()).hexdigest()
    record_usage_event(
        contact,
        item.event,
        item.occurred_at,
        feature=item.feature,
        properties=item.properties,
        external_id=f"inbound-{digest[:40]}",
    )


def _contact(item: Item) -> Contact:
    contacts = Contact.objects.select_related("account")
    if item.contact_id is not None:
        contact = contacts.filter(external_id=item.contact_id).first()
    else:
        contact = contacts.filter(email__iexact=item.email).first()
    if contact is None:
        raise Rejection(
            "unknown_contact",
            f"contact {_who(item)} matches no contact; contacts come from the "
            "CRM sync, an import or the Segment API",
        )
    return contact


def _account(item: Item) -> Account:
    account = Account.objects.filter(external_id=item.account_id).first()
    if account is None:
        raise Rejection(
            "unknown_account",
            f"account {item.account_id!r} matches no account's external id",
        )
    return account


def _require_subject(item: Item) -> None:
    if item.type == "account_properties":
        if item.account_id is None:
            raise Rejection("missing_account", "account_properties needs account")
        return
    if item.contact_id is None and item.email is None:
        raise Rejection(
            "missing_contact", f"{item.type} needs contact (an external id) or email"
        )
    if item.contact_id is not None and item.email is not None:
        # Either could name a different contact, and picking one silently
        # would apply the item to a contact the sender may not have meant.
        raise Rejection(
            "invalid_item",
            f"item has both contact {item.contact_id!r} and email {item.email!r}; "
            "send only one of them",
        )
    if item.type == "usage_event" and not item.event.strip():
        raise Rejection("missing_event", "usage_event needs event, the event's name")
    if item.type == "contact_properties" and not item.properties:
        raise Rejection("missing_properties", "contact_properties needs properties")


def _key(value: Any) -> str:
    if value is not None and not isinstance(value, str):
        raise Rejection(
            "invalid_key",
            f"key is {_shown(value)}, a JSON {_type(value)}; send it as a string",
        )
    if value is None or not value.strip():
        raise Rejection(
            "missing_key",
            f"key is {_shown(value)}; send a unique string per item, such as the "
            "id of the step or record that produced it, so a retry counts once",
        )
    if len(value) > MAX_KEY_LENGTH:
        raise Rejection(
            "invalid_key", f"key is {len(value)} characters, over {MAX_KEY_LENGTH}"
        )
    _require_storable("invalid_key", "key", value)
    return value


def _identifier(raw: dict[str, Any], name: str) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise Rejection(
            "invalid_id",
            f"{name} is {_shown(value)}; send the external id as a string or a "
            "whole number",
        )
    text = str(value)
    if not text or len(text) > MAX_ID_LENGTH:
        raise Rejection("invalid_id", f"{name} must be 1 to {MAX_ID_LENGTH} characters")
    _require_storable("invalid_id", name, text)
    return text


def _text(raw: dict[str, Any], name: str, max_length: int) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length or "\x00" in value:
        raise Rejection(
            "invalid_item",
            f"{name} must be a string of at most {max_length} characters "
            "without NUL characters",
        )
    _require_storable("invalid_item", name, value)
    return value


def _require_storable(code: str, name: str, text: str) -> None:
    # PostgreSQL cannot store NUL or an unpaired UTF-16 surrogate in text, so
    # these fields get the check that properties get, naming the field.
    problem = storage_problem(text, MAX_PROPERTY_DEPTH)
    if problem:
        raise Rejection(code, f"{name} {_shown(text)} {problem}")


def _occurred_at(value: Any, received_at: datetime) -> datetime:
    if value is None:
        return received_at
    instant = parse_instant(value, "timestamp")
    if instant < MIN_TIMESTAMP:
        raise Rejection(
            "invalid_timestamp",
            f"timestamp {value!r} is before {MIN_TIMESTAMP:%Y-%m-%d}; send the "
            "time the event happened, or leave timestamp out to use the time "
            "of receipt",
        )
    if instant > received_at + MAX_FUTURE:
        raise Rejection(
            "timestamp_in_future",
            f"timestamp {value!r} is more than {MAX_FUTURE} after receipt",
        )
    return instant


def _who(item: Item) -> str:
    return repr(item.contact_id) if item.contact_id is not None else repr(item.email)


def _type(value: Any) -> str:
    names = {dict: "object", list: "array", str: "string", bool: "boolean"}
    if value is None:
        return "null"
    return names.get(type(value), "number")


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
