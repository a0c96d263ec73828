"""Set-property steps: write a CRM property locally and record it for the CRM.

The value goes into Account.properties or Contact.properties at once, so
conditions and the admin see it, and a CrmWriteBack row in status pending
records that the CRM does not have it yet.
"""

import logging
from collections.abc import Sequence
from typing import Any, TypeVar

from django.db.models import Model, QuerySet

from customers.models import Account, Contact
from triggers.models import (
    CrmWriteBack,
    Firing,
    JourneyStep,
    PropertyObject,
)

logger = logging.getLogger(__name__)

ModelT = TypeVar("ModelT", bound=Model)


def set_properties(
    step: JourneyStep,
    firings: Sequence[Firing],
    recipients: Sequence[tuple[Firing, Contact]],
) -> int:
    """Apply the step's property to each firing's account or recipients; return rows.

    Account properties go on each firing's account. Contact properties go
    on each recipient: the contact itself for a contact trigger, the
    champions or all contacts of the account for an account trigger. The
    objects are locked while their properties are rewritten, so a CRM sync
    writing another property at the same time is not lost.
    """
    # NOTE: nothing pushes the pending rows to the CRM yet; the CRM
    # integration is expected to read them oldest first and mark them pushed.
    targets: list[tuple[Firing, int, int | None]]
    if step.property_object == PropertyObject.ACCOUNT:
        targets = [(firing, firing.account_id, None) for firing in firings]
    else:
        targets = [
            (firing, contact.account_id, contact.pk) for firing, contact in recipients
        ]
    if not targets:
        return 0

    _apply(step, targets)
    CrmWriteBack.objects.bulk_create(
        [
            CrmWriteBack(
                object_type=step.property_object,
                account_id=account_id,
                contact_id=contact_id,
                property_name=step.property_name,
                value=step.property_value,
                firing=firing,
                step=step,
            )
            for firing, account_id, contact_id in targets
        ],
        ignore_conflicts=True,
    )
    logger.info(
        "Set %s property %s on %s objects for step %s of trigger %s",
        step.property_object,
        step.property_name,
        len(targets),
        step.pk,
        step.trigger.slug,
    )
    return len(targets)


def _apply(step: JourneyStep, targets: list[tuple[Firing, int, int | None]]) -> None:
    """Write the property into the objects' properties: one locking read, one update."""
    if step.property_object == PropertyObject.ACCOUNT:
        account_ids = {account_id for _, account_id, _ in targets}
        accounts = list(_locked(Account.objects.filter(pk__in=account_ids)))
        for account in accounts:
            account.properties = _with_property(account.properties, step)
        Account.objects.bulk_update(accounts, ["properties"])
        return
    contact_ids = {contact_id for _, _, contact_id in targets if contact_id}
    contacts = list(_locked(Contact.objects.filter(pk__in=contact_ids)))
    for contact in contacts:
        contact.properties = _with_property(contact.properties, step)
    Contact.objects.bulk_update(contacts, ["properties"])


def _locked(objects: QuerySet[ModelT]) -> QuerySet[ModelT]:
    # Rows locked in id order, so two writers never wait on each other in a cycle.
    return objects.select_for_update(of=("self",)).order_by("pk")


def _with_property(properties: Any, step: JourneyStep) -> dict[str, Any]:
    updated = dict(properties or {})
    updated[step.property_name] = step.property_value
    return updated
