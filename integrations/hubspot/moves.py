"""Moving a contact to another account when its HubSpot company changes.

The contact row stays, so its enrollments, progress, certificates, survey
answers and usage events stay its own. Usage events and tickets keep the
account they were recorded for, because they happened there. Each move
is logged as a ContactMove row.
"""

import logging

from django.db import transaction

from customers.models import Account, Contact
from customers.services import send_data_changed
from integrations.hubspot.crm_models import ContactMove
from integrations.hubspot.models import HubSpotConnection, HubSpotLink

logger = logging.getLogger(__name__)


def follow_company(
    connection: HubSpotConnection,
    link: HubSpotLink,
    contact: Contact,
    account: Account,
    company_id: str,
) -> bool:
    """Put the contact in its HubSpot company's account; return whether it changed.

    A contact whose primary company changed in HubSpot since the last sync
    moves to the new company's account. Otherwise a contact of another
    account, for example one matched by email at its first sync, keeps its
    account and gains the company's account as an associated account.
    The caller holds the link's row lock.
    """
    previous = link.primary_company_id
    if previous and previous != company_id:
        changed = move_contact(connection, contact, account, previous, company_id)
    else:
        changed = associate(contact, account)
    if previous != company_id:
        link.primary_company_id = company_id
        link.save(update_fields=["primary_company_id", "updated_at"])
    return changed


def move_contact(
    connection: HubSpotConnection,
    contact: Contact,
    account: Account,
    from_company_id: str,
    to_company_id: str,
) -> bool:
    """Make account the contact's account and log the move; return whether moved."""
    with transaction.atomic():
        locked = Contact.objects.select_for_update().get(pk=contact.pk)
        if locked.account_id == account.pk:
            return False
        from_account_id = locked.account_id
        locked.account = account
        locked.save(update_fields=["account", "updated_at"])
        # The new account is the contact's own now, not an associated one.
        locked.associated_accounts.remove(account)
        ContactMove.objects.create(
            connection=connection,
            contact=locked,
            from_account_id=from_account_id,
            to_account=account,
            from_company_id=from_company_id,
            to_company_id=to_company_id,
        )
        send_data_changed(Contact, from_account_id, "contacts")
        send_data_changed(Contact, account.pk, "contacts")
    contact.account = account
    logger.info(
        "Moved contact %s from account %s to %s (HubSpot company %s to %s)",
        contact.pk,
        from_account_id,
        account.pk,
        from_company_id,
        to_company_id,
    )
    return True


def associate(contact: Contact, account: Account) -> bool:
    """Make the contact a contact of account too; return whether it is new."""
    if contact.account_id == account.pk:
        return False
    if contact.associated_accounts.filter(pk=account.pk).exists():
        return False
    contact.associated_accounts.add(account)
    send_data_changed(Contact, account.pk, "contacts")
    return True
