"""identify and group calls: contact attributes, new contacts, account links.

A Segment userId is Contact.external_id and a groupId is
Account.external_id. Accounts come from the CRM sync or an import, so a
call that names an unknown groupId is rejected rather than creating one.
A contact is created when a call gives both its email and its account:

- identify with traits.email and context.groupId creates it at once;
- identify with traits.email alone keeps the traits in a PendingIdentity,
  and the group call that follows creates the contact in that account.

Each function runs inside the caller's transaction and raises Rejection
for a call that cannot be applied; the caller rolls back its savepoint.
"""

import logging
from datetime import datetime
from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from customers.models import Account, Contact
from customers.services import send_data_changed, update_contact_attributes
from integrations.models import EventSource, PendingIdentity
from integrations.segment.messages import Call, Rejection, parse_instant

logger = logging.getLogger(__name__)

# Traits that set a contact column; every other trait is kept in
# Contact.properties. Segment's reserved traits are camelCase; the
# snake_case forms are common in hand-written calls.
TRAIT_COLUMNS = {
    "email": "email",
    "firstName": "first_name",
    "first_name": "first_name",
    "lastName": "last_name",
    "last_name": "last_name",
    "title": "role",
    "role": "role",
}
# Read but not kept: name is split into the name columns, and createdAt is
# when the contact joined, which only a new contact takes.
TRAITS_READ = {*TRAIT_COLUMNS, "name", "createdAt", "created_at"}


def apply_identify(call: Call, source: EventSource) -> None:
    """Update the contact's attributes from traits, or create or keep it."""
    changes = contact_changes(call.traits)
    account = _account(call.context_group_id) if call.context_group_id else None
    contact = Contact.objects.filter(external_id=call.user_id).first()
    if contact is not None:
        _update(contact, changes)
        if account is not None:
            _link(contact, account)
        return
    if account is not None:
        _create_contact(call, account, call.traits)
        return
    _keep_pending(call, source)


def apply_group(call: Call, source: EventSource) -> None:
    """Link the contact to the account; create the contact from pending traits."""
    account = _account(call.group_id)
    contact = Contact.objects.filter(external_id=call.user_id).first()
    if contact is not None:
        _link(contact, account)
        return
    pending = (
        PendingIdentity.objects.select_for_update().filter(user_id=call.user_id).first()
    )
    if pending is None:
        raise Rejection(
            "unknown_user",
            f"userId {call.user_id!r} matches no contact and no identify call gave "
            "its email; send identify with traits.email before group",
        )
    _create_contact(call, account, pending.traits)
    pending.delete()


def contact_changes(traits: dict[str, Any]) -> dict[str, Any]:
    """Return the Contact attribute changes that traits ask for."""
    changes: dict[str, Any] = {}
    for trait, column in TRAIT_COLUMNS.items():
        value = traits.get(trait)
        if value is None:
            continue
        if not isinstance(value, str):
            raise Rejection(
                "invalid_traits",
                f"traits.{trait} is {value!r}; send a string",
            )
        changes[column] = value.strip()
    name = traits.get("name")
    if isinstance(name, str) and "first_name" not in changes:
        first, _, last = name.strip().partition(" ")
        changes["first_name"] = first
        if "last_name" not in changes:
            changes["last_name"] = last.strip()
    properties = {key: value for key, value in traits.items() if key not in TRAITS_READ}
    if properties:
        changes["properties"] = properties
    return changes


def _account(group_id: str) -> Account:
    account = Account.objects.filter(external_id=group_id).first()
    if account is None:
        raise Rejection(
            "unknown_group",
            f"groupId {group_id!r} matches no account; accounts come from the CRM "
            "sync or an import, where the groupId must be the account's external id",
        )
    return account


def _update(contact: Contact, changes: dict[str, Any]) -> None:
    if not changes:
        return
    try:
        update_contact_attributes(contact, changes)
    except ValidationError as error:
        raise Rejection("invalid_traits", _messages(error)) from None
    except ValueError as error:
        raise Rejection("invalid_traits", str(error)) from None


def _link(contact: Contact, account: Account) -> None:
    """Make the contact a contact of account too, unless it already is."""
    if contact.account_id == account.pk:
        return
    if contact.associated_accounts.filter(pk=account.pk).exists():
        return
    contact.associated_accounts.add(account)
    send_data_changed(Contact, account.pk, "contacts")
    logger.info("Linked contact %s to account %s", contact.pk, account.pk)


def _create_contact(call: Call, account: Account, traits: dict[str, Any]) -> Contact:
    changes = contact_changes(traits)
    email = changes.get("email")
    if not email:
        raise Rejection(
            "missing_email",
            f"userId {call.user_id!r} matches no contact and its traits have no "
            "email, which a new contact needs; send identify with traits.email",
        )
    contact = Contact(
        account=account,
        external_id=call.user_id,
        email=email,
        first_name=changes.get("first_name") or email.partition("@")[0],
        last_name=changes.get("last_name", ""),
        role=changes.get("role", ""),
        properties=changes.get("properties", {}),
        added_at=_joined_at(traits, call.occurred_at),
    )
    try:
        contact.full_clean(exclude=["user"])
    except ValidationError as error:
        raise Rejection("invalid_traits", _messages(error)) from None
    try:
        with transaction.atomic():
            contact.save()
    except IntegrityError:
        # Another request created the contact after full_clean() looked; its
        # row is committed, so this call updates it instead.
        existing = Contact.objects.filter(external_id=call.user_id).first()
        if existing is None:
            raise Rejection(
                "invalid_traits",
                f"email {email!r} belongs to another contact; send this user's "
                "own email",
            ) from None
        _update(existing, changes)
        _link(existing, account)
        return existing
    send_data_changed(Contact, account.pk, "contacts")
    logger.info("Created contact %s for userId %s", contact.pk, call.user_id)
    return contact


def _keep_pending(call: Call, source: EventSource) -> None:
    pending, created = PendingIdentity.objects.select_for_update().get_or_create(
        user_id=call.user_id, defaults={"traits": call.traits, "source": source}
    )
    if not created:
        pending.traits = {**pending.traits, **call.traits}
        pending.source = source
        pending.save(update_fields=["traits", "source", "updated_at"])


def _joined_at(traits: dict[str, Any], default: datetime) -> datetime:
    for key in ("createdAt", "created_at"):
        if traits.get(key) is not None:
            return parse_instant(traits[key], f"traits.{key}")
    return default


def _messages(error: ValidationError) -> str:
    if hasattr(error, "message_dict"):
        return "; ".join(
            f"{name}: {' '.join(messages)}"
            for name, messages in error.message_dict.items()
        )
    return " ".join(error.messages)
