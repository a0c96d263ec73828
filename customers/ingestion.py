"""Recording single changes to the customer record as they happen.

Each function validates its input, writes in one transaction and sends
customers.signals.data_changed for the account, so that the triggers that
read that kind of data are evaluated for it once the write commits. A
change that is already recorded (the same external id, or attributes that
already have the given values) writes nothing and sends nothing.
"""

import logging
import math
import re
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from django.db import models, transaction
from django.utils import timezone

from customers.models import (
    Account,
    Contact,
    SupportTicket,
    SurveyKind,
    SurveyResponse,
    TicketPriority,
    UsageEvent,
)
from customers.signals import send_data_changed

logger = logging.getLogger(__name__)

# Score range of each survey kind, both ends included.
SURVEY_SCORES = {SurveyKind.NPS: (0, 10), SurveyKind.CSAT: (1, 5)}

# Attributes a CRM sync may set. Custom properties go under "properties"
# and are merged into the stored ones.
ACCOUNT_ATTRIBUTES = frozenset(
    {
        "name",
        "industry",
        "country",
        "plan",
        "seats",
        "mrr",
        "arr",
        "is_trial",
        "kickoff_date",
        "renewal_date",
        "churned_on",
        "time_zone",
        "properties",
    }
)
CONTACT_ATTRIBUTES = frozenset(
    {
        "email",
        "first_name",
        "last_name",
        "role",
        "is_champion",
        "time_zone",
        "unsubscribed_at",
        "bounced_at",
        "properties",
    }
)


def record_usage_event(
    contact: Contact,
    name: str,
    occurred_at: datetime,
    *,
    feature: str = "",
    properties: Mapping[str, Any] | None = None,
    external_id: str | None = None,
) -> UsageEvent:
    """Store one usage event of a contact; return it.

    With an external_id (a Segment messageId, say) an event already stored
    under that id is returned unchanged, so a redelivered event counts once.
    """
    _require_aware(occurred_at, "occurred_at")
    _require_text(UsageEvent, "name", name, "usage event name")
    if not name.strip():
        raise ValueError("usage event name is blank; pass the event's name")
    _require_text(UsageEvent, "feature", feature, "usage event feature")
    if external_id is not None:
        _require_text(UsageEvent, "external_id", external_id, "usage event external_id")
    _require_json(dict(properties or {}), "usage event properties")
    fields = {
        "account_id": contact.account_id,
        "contact": contact,
        "name": name,
        "feature": feature,
        "occurred_at": occurred_at,
        "properties": dict(properties or {}),
    }
    with transaction.atomic():
        if external_id is None:
            event, created = UsageEvent.objects.create(**fields), True
        else:
            event, created = UsageEvent.objects.get_or_create(
                external_id=external_id, defaults=fields
            )
        if created:
            send_data_changed(UsageEvent, contact.account_id, "usage")
    return event


def record_survey_response(
    contact: Contact,
    kind: str,
    score: int,
    submitted_at: datetime,
    *,
    comment: str = "",
    external_id: str | None = None,
) -> SurveyResponse:
    """Store one NPS (0-10) or CSAT (1-5) answer of a contact; return it.

    With an external_id, an answer already stored under that id is returned
    unchanged.
    """
    _require_aware(submitted_at, "submitted_at")
    if kind not in SURVEY_SCORES:
        raise ValueError(
            f"survey kind {kind!r} is invalid; use one of {', '.join(SURVEY_SCORES)}"
        )
    low, high = SURVEY_SCORES[SurveyKind(kind)]
    if (
        isinstance(score, bool)
        or not isinstance(score, int)
        or not low <= score <= high
    ):
        raise ValueError(
            f"{kind} score {score!r} is invalid; use a whole number from {low} "
            f"to {high}"
        )
    _require_text(SurveyResponse, "comment", comment, "survey comment")
    if external_id is not None:
        _require_text(SurveyResponse, "external_id", external_id, "survey external_id")
    fields = {
        "account_id": contact.account_id,
        "contact": contact,
        "kind": kind,
        "score": score,
        "comment": comment,
        "submitted_at": submitted_at,
    }
    with transaction.atomic():
        if external_id is None:
            response, created = SurveyResponse.objects.create(**fields), True
        else:
            response, created = SurveyResponse.objects.get_or_create(
                external_id=external_id, defaults=fields
            )
        if created:
            send_data_changed(SurveyResponse, contact.account_id, "surveys")
    return response


def record_ticket(
    account: Account,
    external_id: str,
    opened_at: datetime,
    priority: str,
    *,
    contact: Contact | None = None,
    closed_at: datetime | None = None,
    topic: str = "",
) -> SupportTicket:
    """Store a support ticket, or update the one with this external_id; return it.

    A helpdesk sends a ticket again when it changes, for example when it is
    closed, so the external id identifies the ticket.
    """
    _require_text(SupportTicket, "external_id", external_id, "ticket external_id")
    _require_text(SupportTicket, "topic", topic, "ticket topic")
    _require_aware(opened_at, "opened_at")
    if closed_at is not None:
        _require_aware(closed_at, "closed_at")
        if closed_at < opened_at:
            raise ValueError(
                f"ticket {external_id} closed_at {closed_at.isoformat()} is before "
                f"opened_at {opened_at.isoformat()}"
            )
    if priority not in TicketPriority.values:
        raise ValueError(
            f"ticket priority {priority!r} is invalid; use one of "
            f"{', '.join(TicketPriority.values)}"
        )
    if contact is not None and contact.account_id != account.pk:
        raise ValueError(
            f"contact {contact.pk} belongs to account {contact.account_id}, "
            f"not to account {account.pk}"
        )
    fields = {
        "account": account,
        "contact": contact,
        "opened_at": opened_at,
        "closed_at": closed_at,
        "priority": priority,
        "topic": topic,
    }
    with transaction.atomic():
        ticket, created = SupportTicket.objects.select_for_update().get_or_create(
            external_id=external_id, defaults=fields
        )
        changed = created or _assign(ticket, fields)
        if changed and not created:
            ticket.save(update_fields=list(fields))
        if changed:
            send_data_changed(SupportTicket, account.pk, "tickets")
    return ticket


def update_account_attributes(account: Account, changes: Mapping[str, Any]) -> bool:
    """Apply CRM attribute changes to an account; return whether any value changed.

    "properties" is merged into the stored custom properties.
    """
    _require_known(changes, ACCOUNT_ATTRIBUTES, "account")
    _require_storable(Account, changes, "account")
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        changed = _apply_changes(locked, changes)
        if changed:
            locked.save(update_fields=[*changed, "updated_at"])
            send_data_changed(Account, locked.pk, "crm")
    _copy_fields(locked, account, changed)
    return bool(changed)


def update_contact_attributes(contact: Contact, changes: Mapping[str, Any]) -> bool:
    """Apply CRM attribute changes to a contact; return whether any value changed.

    "properties" is merged into the stored custom properties.
    """
    _require_known(changes, CONTACT_ATTRIBUTES, "contact")
    _require_storable(Contact, changes, "contact")
    for name in ("unsubscribed_at", "bounced_at"):
        if changes.get(name) is not None:
            _require_aware(changes[name], name)
    with transaction.atomic():
        locked = Contact.objects.select_for_update().get(pk=contact.pk)
        changed = _apply_changes(locked, changes)
        if changed:
            locked.save(update_fields=[*changed, "updated_at"])
            send_data_changed(Contact, locked.account_id, "crm")
    _copy_fields(locked, contact, changed)
    return bool(changed)


def _apply_changes(row: Account | Contact, changes: Mapping[str, Any]) -> list[str]:
    """Set the changed attributes on row, validated; return the names changed."""
    values = dict(changes)
    if "properties" in values:
        if not isinstance(values["properties"], Mapping):
            raise ValueError(
                f"properties={values['properties']!r} must be a mapping of names "
                "to values"
            )
        values["properties"] = {**row.properties, **values["properties"]}
    changed = [name for name, value in values.items() if getattr(row, name) != value]
    for name in changed:
        setattr(row, name, values[name])
    if changed:
        # Bad values (an unknown plan, a malformed email) fail here, before
        # anything is written.
        row.full_clean(
            exclude=[f.name for f in row._meta.fields if f.name not in changed]
        )
    return changed


def _assign(row: SupportTicket, fields: Mapping[str, Any]) -> bool:
    changed = False
    for name, value in fields.items():
        if getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    return changed


def _copy_fields(source: Any, target: Any, names: list[str]) -> None:
    # The caller's instance shows the stored values afterwards.
    for name in names:
        setattr(target, name, getattr(source, name))


def _require_known(
    changes: Mapping[str, Any], allowed: frozenset[str], what: str
) -> None:
    unknown = set(changes) - allowed
    if unknown:
        raise ValueError(
            f"{what} attribute {', '.join(sorted(unknown))} cannot be set by a CRM "
            f"update; use one of {', '.join(sorted(allowed))}"
        )


def _require_aware(instant: Any, name: str) -> None:
    if not isinstance(instant, datetime) or timezone.is_naive(instant):
        raise ValueError(
            f"{name}={instant!r} must be an aware datetime, for example "
            "datetime(2024, 6, 15, 12, 0, tzinfo=UTC)"
        )


# PostgreSQL rejects the values below with a DataError whose message shows
# the SQL, after the transaction has started. These checks raise ValueError
# before any write instead.

# Characters of a rejected value shown in an error message.
SHOWN_CHARACTERS = 40

# Unpaired UTF-16 surrogates (a decoded "\ud800" with no partner) have no
# UTF-8 form, so PostgreSQL rejects them in text and jsonb.
SURROGATE = re.compile("[\ud800-\udfff]")


def _require_storable(
    model: type[models.Model], changes: Mapping[str, Any], what: str
) -> None:
    """Check the text and JSON attributes of a CRM update against their columns."""
    for name, value in changes.items():
        if name == "properties":
            # A value that is not a mapping gets its own error in _apply_changes.
            if isinstance(value, Mapping):
                _require_json(value, f"{what} properties")
        elif isinstance(value, str):
            _require_text(model, name, value, f"{what} {name}")


def _require_text(
    model: type[models.Model], field_name: str, value: Any, label: str
) -> None:
    """Raise ValueError unless value fits the model's text column field_name.

    PostgreSQL text cannot contain NUL, and varchar(n) takes at most n
    characters.
    """
    if not isinstance(value, str):
        raise ValueError(f"{label}={value!r} must be a string")
    _require_no_nul(value, label)
    _require_no_surrogate(value, label)
    max_length = getattr(model._meta.get_field(field_name), "max_length", None)
    if max_length is not None and len(value) > max_length:
        raise ValueError(
            f"{label} {_shorten(value)} is {len(value)} characters long, more than "
            f"the maximum of {max_length}; shorten it"
        )


def _require_json(value: Any, label: str) -> None:
    """Raise ValueError naming the first part of value that jsonb cannot store.

    jsonb has no NaN or infinity, and its strings cannot contain NUL or an
    unpaired UTF-16 surrogate. Other Python types (a datetime, a set) have
    no JSON form at all.
    """
    if value is None or isinstance(value, bool | int):
        return
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(
                f"{label} is {value!r}, which JSON cannot store; use a finite "
                "number or None"
            )
        return
    if isinstance(value, str):
        _require_no_nul(value, label)
        _require_no_surrogate(value, label)
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if isinstance(key, str):
                _require_no_nul(key, f"{label} key")
                _require_no_surrogate(key, f"{label} key")
            elif not (key is None or isinstance(key, bool | int | float)):
                raise ValueError(
                    f"{label} key {key!r} is a {type(key).__name__}, which JSON "
                    "cannot store as a key; use a string key"
                )
            _require_json(item, f"{label}[{key!r}]")
        return
    if isinstance(value, list | tuple):
        for index, item in enumerate(value):
            _require_json(item, f"{label}[{index}]")
        return
    value_text = repr(value)[:SHOWN_CHARACTERS]
    raise ValueError(
        f"{label} is a {type(value).__name__} ({value_text}), which JSON cannot store; "
        "use a string, number, boolean, None, list or mapping"
    )


def _require_no_nul(value: str, label: str) -> None:
    if "\x00" in value:
        raise ValueError(
            f"{label} {_shorten(value)} contains a NUL character (\\x00), which "
            "PostgreSQL cannot store in text; remove it"
        )


def _require_no_surrogate(value: Any, label: str) -> None:
    """Raise ValueError for an unpaired surrogate in a key or string of value."""
    if isinstance(value, str):
        # isascii() is a flag check, so ASCII text skips the search.
        if not value.isascii() and SURROGATE.search(value):
            raise ValueError(
                f"{label} {_shorten(value)} contains an unpaired UTF-16 surrogate, "
                "which PostgreSQL cannot store; send the text as UTF-8"
            )
    elif isinstance(value, Mapping):
        for key, item in value.items():
            _require_no_surrogate(key, f"{label} key")
            _require_no_surrogate(item, f"{label}[{key!r}]")
    elif isinstance(value, list | tuple):
        for position, item in enumerate(value):
            _require_no_surrogate(item, f"{label}[{position}]")


def _shorten(value: str) -> str:
    """Return the repr of value, cut to SHOWN_CHARACTERS characters."""
    if len(value) <= SHOWN_CHARACTERS:
        return repr(value)
    return f"{value[:SHOWN_CHARACTERS]!r}..."
