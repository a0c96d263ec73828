"""Batch reads of HubSpot associations through the v4 associations API."""

from typing import Any

from hubspot.crm.associations.v4 import (
    BatchInputPublicFetchAssociationsBatchRequest as AssociationsRead,
)

from integrations.hubspot.api import build_client, call
from integrations.hubspot.models import HubSpotConnection

# HubSpot's association type ids (HUBSPOT_DEFINED) that mark the primary
# company of a deal (5) and of a ticket (26).
PRIMARY_TYPE_IDS = frozenset({5, 26})


def read_associations(
    connection: HubSpotConnection, from_kind: str, to_kind: str, ids: list[str]
) -> dict[str, list[str]]:
    """Return the associated ids of each record, primary first, by one batch read.

    from_kind and to_kind are HubSpot's object names, for example "deals"
    and "companies". After the primary association the ids come in
    ascending order. HubSpot returns 207 for records without associations,
    and those are left out.
    """
    if not ids:
        return {}
    api = build_client(connection).crm.associations.v4.batch_api
    request = AssociationsRead(inputs=[{"id": record_id} for record_id in ids])
    response = call(
        connection,
        lambda: api.get_page(
            from_kind,
            to_kind,
            batch_input_public_fetch_associations_batch_request=request,
        ),
        description=f"read the {to_kind} of {len(ids)} {from_kind}",
    )
    associated: dict[str, list[str]] = {}
    for result in response.results or []:
        targets = sorted(result.to or [], key=_primary_first)
        associated[str(result._from.id)] = [str(t.to_object_id) for t in targets]
    return associated


def _primary_first(target: Any) -> tuple[int, int]:
    types = target.association_types or []
    primary = any(kind.type_id in PRIMARY_TYPE_IDS for kind in types)
    return (0 if primary else 1, int(target.to_object_id))
