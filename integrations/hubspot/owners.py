"""HubSpot owners and the CSMs they map to.

A company's hubspot_owner_id names a HubSpot owner. The owners API lists
them with their email, and the sync matches each to the active staff user
with that email. It never guesses: an owner without exactly one match
keeps no user, the account keeps its owner, and the run lists the owner
among its warnings.
"""

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction

from customers.models import Account
from customers.services import send_data_changed
from integrations.hubspot.api import build_client, call
from integrations.hubspot.crm_models import HubSpotOwner
from integrations.hubspot.models import HubSpotConnection

logger = logging.getLogger(__name__)

# The owners API returns at most 500 owners a page.
OWNERS_PAGE_SIZE = 500


@dataclass
class OwnerRead:
    """The counts of a read of the owners, and the owners that match no user."""

    created: int = 0
    updated: int = 0
    unmatched: list[str] = field(default_factory=list)


def refresh_owners(connection: HubSpotConnection) -> OwnerRead:
    """Read every owner, active and archived, and store it with its matched user.

    Writing an owner that did not change writes nothing, so reading the
    same owners again changes no row.
    """
    result = OwnerRead()
    for archived in (False, True):
        for owner in _owner_pages(connection, archived):
            _store(connection, owner, archived, result)
    if result.unmatched:
        logger.warning(
            "HubSpot connection %s: owners %s match no staff user by email",
            connection.pk,
            ", ".join(result.unmatched),
        )
    return result


def _owner_pages(connection: HubSpotConnection, archived: bool) -> Iterator[Any]:
    api = build_client(connection).crm.owners.owners_api
    after: str | None = None
    while True:
        page = call(
            connection,
            partial(
                api.get_page, limit=OWNERS_PAGE_SIZE, after=after, archived=archived
            ),
            description="list owners",
        )
        yield from page.results or []
        after = page.paging.next.after if page.paging and page.paging.next else None
        if after is None:
            return


def _store(
    connection: HubSpotConnection, owner: Any, archived: bool, result: OwnerRead
) -> None:
    email = (owner.email or "").strip()
    values = {
        "email": email,
        "first_name": (owner.first_name or "")[:100],
        "last_name": (owner.last_name or "")[:100],
        "archived": archived,
    }
    user = matching_user(email)
    changed: list[str] = []
    with transaction.atomic():
        row, created = HubSpotOwner.objects.select_for_update().get_or_create(
            connection=connection,
            owner_id=str(owner.id),
            defaults={**values, "user": user},
        )
        if not created:
            changed = [
                name for name, value in values.items() if getattr(row, name) != value
            ]
            for name in changed:
                setattr(row, name, values[name])
            # A user picked by hand in the admin stays when the email matches none.
            if user is not None and row.user_id != user.pk:
                row.user = user
                changed.append("user")
            if changed:
                row.save(update_fields=[*changed, "updated_at"])
    if created:
        result.created += 1
    elif changed:
        result.updated += 1
    if row.user_id is None:
        result.unmatched.append(f"{row.owner_id} <{email or 'no email'}>")


def matching_user(email: str) -> Any:
    """Return the one active staff user with this email, or None."""
    if not email:
        return None
    users = list(
        get_user_model().objects.filter(
            email__iexact=email, is_active=True, is_staff=True
        )[:2]
    )
    return users[0] if len(users) == 1 else None


def owner_user(connection: HubSpotConnection, owner_id: str) -> tuple[Any, str]:
    """Return the CSM of a HubSpot owner id, or None with the reason to report."""
    owner = HubSpotOwner.objects.filter(
        connection=connection, owner_id=owner_id
    ).first()
    if owner is None:
        return None, (
            f"HubSpot owner {owner_id} is not among the owners read from HubSpot; "
            "check that the private app has the crm.objects.owners.read scope, "
            "then sync again"
        )
    if owner.user_id is None:
        return None, (
            f"HubSpot owner {owner_id} <{owner.email or 'no email'}> matches no "
            "active staff user by email; give the CSM's user that email, or pick "
            "the user on the owner's page under HubSpot owners"
        )
    return owner.user, ""


def set_account_owner(account: Account, user: Any) -> bool:
    """Make user the account's CSM; return whether the owner changed.

    customers.services offers no update of the owner, so the account row
    is locked and saved here, and data_changed is sent as for any other
    CRM change.
    """
    with transaction.atomic():
        locked = Account.objects.select_for_update().get(pk=account.pk)
        if locked.owner_id == user.pk:
            return False
        locked.owner = user
        locked.save(update_fields=["owner", "updated_at"])
        send_data_changed(Account, locked.pk, "crm")
    account.owner = user
    logger.info("Account %s is now owned by user %s", account.pk, user.pk)
    return True
