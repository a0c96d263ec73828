"""Field ownership: the side whose value wins, and the log of conflicts.

The link of each record keeps the values HubSpot sent at the last sync
(HubSpotLink.synced_values). At the next sync a field has changed in
HubSpot when HubSpot's value differs from that stored value, and in
Nudgepath when the local value differs from it. A change on one side
only is applied, or kept. When both sides changed the field to different
values, the mapping's owner wins and a FieldConflict row keeps both
values, so a person can see what was overwritten or not taken.
"""

import logging
from collections.abc import Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from customers.models import Account, Contact
from integrations.hubspot.crm_models import FieldConflict, HubSpotOwner
from integrations.hubspot.models import (
    NULLABLE_TARGETS,
    FieldOwner,
    HubSpotConnection,
    HubSpotLink,
    PropertyMapping,
    Target,
)

logger = logging.getLogger(__name__)

# Marks a field that no earlier sync of this record has seen.
NEVER_SYNCED = object()


def settle_fields(
    connection: HubSpotConnection,
    link: HubSpotLink,
    row: Account | Contact,
    values: Sequence[tuple[PropertyMapping, Any]],
    *,
    new_row: bool,
) -> list[tuple[PropertyMapping, Any]]:
    """Return the values to apply to row; record conflicts and the synced values.

    new_row is true when the sync has just created row, so nothing local
    can have changed. The caller holds the link's row lock.
    """
    synced = dict(link.synced_values)
    to_apply = []
    for mapping, value in values:
        key = mapping.field_name
        remote = comparable(value)
        if value is None or new_row:
            # An empty value follows the value type's rules, and a new row
            # has no local changes to protect.
            to_apply.append((mapping, value))
            synced[key] = remote
            if value is None and not _cleared_by_empty(mapping):
                # The stored value stays, so it is what both sides last agreed.
                synced[key] = comparable(_local_value(connection, mapping, row, remote))
            continue
        local = comparable(_local_value(connection, mapping, row, remote))
        base = synced.get(key, NEVER_SYNCED)
        if local == remote:
            synced[key] = remote
            continue
        if mapping.target == Target.OWNER and local is None:
            # An account without a CSM takes HubSpot's owner whenever it can:
            # the owner may have matched no user at the sync before.
            to_apply.append((mapping, value))
            synced[key] = remote
            continue
        remote_changed = base is NEVER_SYNCED or remote != base
        local_changed = base is NEVER_SYNCED or local != base
        if not remote_changed:
            # Only Nudgepath changed the field since the last sync: keep it.
            continue
        if local_changed:
            _record_conflict(connection, link, row, mapping, remote, local, base)
            if mapping.owner == FieldOwner.NUDGEPATH:
                synced[key] = remote
                continue
        to_apply.append((mapping, value))
        synced[key] = remote
    if synced != link.synced_values:
        link.synced_values = synced
        link.save(update_fields=["synced_values", "updated_at"])
    return to_apply


def _cleared_by_empty(mapping: PropertyMapping) -> bool:
    return mapping.target == Target.PROPERTY or mapping.target in NULLABLE_TARGETS


def comparable(value: Any) -> Any:
    """Return value in the JSON form that synced values and conflicts store."""
    if isinstance(value, Decimal):
        # 19.5 and 19.50 are one amount; normalize() alone would write 1E+2.
        return format(value.normalize(), "f")
    if isinstance(value, date | datetime):
        return value.isoformat()
    return value


def _local_value(
    connection: HubSpotConnection,
    mapping: PropertyMapping,
    row: Account | Contact,
    remote: Any,
) -> Any:
    if mapping.target == Target.PROPERTY:
        return row.properties.get(mapping.field_name)
    if mapping.target == Target.OWNER:
        return _local_owner_id(connection, row, remote)
    return getattr(row, mapping.target)


def _local_owner_id(connection: HubSpotConnection, row: Any, remote: Any) -> Any:
    """Return the HubSpot owner id of the account's CSM, to compare with HubSpot's."""
    if row.owner_id is None:
        return None
    owner_ids = list(
        HubSpotOwner.objects.filter(
            connection=connection, user_id=row.owner_id
        ).values_list("owner_id", flat=True)
    )
    if remote in owner_ids:
        return remote
    # A CSM whom no HubSpot owner maps to still differs from every owner id.
    return owner_ids[0] if owner_ids else f"user {row.owner_id}"


def _record_conflict(
    connection: HubSpotConnection,
    link: HubSpotLink,
    row: Account | Contact,
    mapping: PropertyMapping,
    remote: Any,
    local: Any,
    base: Any,
) -> None:
    FieldConflict.objects.create(
        connection=connection,
        object_type=link.object_type,
        hubspot_id=link.hubspot_id,
        account=row if isinstance(row, Account) else None,
        contact=row if isinstance(row, Contact) else None,
        field_name=mapping.field_name,
        hubspot_property=mapping.hubspot_property,
        owner=mapping.owner,
        hubspot_value=remote,
        nudgepath_value=local,
        synced_value=None if base is NEVER_SYNCED else base,
    )
    logger.info(
        "HubSpot %s %s: both sides changed %s; its owner %s wins with %r over %r",
        link.object_type,
        link.hubspot_id,
        mapping.field_name,
        mapping.owner,
        remote if mapping.owner == FieldOwner.HUBSPOT else local,
        local if mapping.owner == FieldOwner.HUBSPOT else remote,
    )
