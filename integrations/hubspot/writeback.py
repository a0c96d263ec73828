"""Pushing the properties that journeys set (CrmWriteBack rows) to HubSpot.

Pending rows are claimed oldest first with SKIP LOCKED, so two workers
never push one row twice. The rows of each object type go in one batch
update, one input per HubSpot record. HubSpot returns 200 when every
input was applied and 207 with an error per failed group of ids
otherwise, so each row is marked pushed or failed by its record's id.
A request that fails as a whole with a 4xx status fails its rows. A
rate limit or server error that outlasts the retries leaves them
pending for the next push.
"""

import logging
from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from hubspot.crm.companies import BatchInputSimplePublicObjectBatchInput as CompanyBatch
from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInput as ContactBatch

from integrations.hubspot.api import HubSpotError, build_client, call
from integrations.hubspot.models import HubSpotConnection, HubSpotLink, ObjectType
from triggers.models import CrmWriteBack, CrmWriteBackStatus, PropertyObject

logger = logging.getLogger(__name__)


@dataclass
class PushCounts:
    pushed: int = 0
    failed: int = 0


def push_write_backs(connection: HubSpotConnection) -> PushCounts:
    """Push pending write-backs in batches until none is left; return the counts."""
    counts = PushCounts()
    while True:
        with transaction.atomic():
            rows = list(
                CrmWriteBack.objects.select_for_update(skip_locked=True)
                .filter(status=CrmWriteBackStatus.PENDING)
                .order_by("created_at", "id")[: settings.NUDGEPATH_HUBSPOT_PAGE_SIZE]
            )
            if not rows:
                return counts
            for object_type in (PropertyObject.ACCOUNT, PropertyObject.CONTACT):
                group = [row for row in rows if row.object_type == object_type]
                if group:
                    _push_group(connection, object_type, group, counts)
        logger.info(
            "Pushed %s CRM write-backs to HubSpot, %s failed",
            counts.pushed,
            counts.failed,
        )


def _push_group(
    connection: HubSpotConnection,
    object_type: str,
    rows: list[CrmWriteBack],
    counts: PushCounts,
) -> None:
    by_record: dict[str, list[CrmWriteBack]] = defaultdict(list)
    for row, hubspot_id in zip(
        rows, _hubspot_ids(connection, object_type, rows), strict=True
    ):
        if hubspot_id is None:
            subject = (
                f"contact {row.contact_id}"
                if row.contact_id
                else f"account {row.account_id}"
            )
            _fail(
                [row],
                f"{subject} is not linked to a HubSpot record; sync it first",
                counts,
            )
        else:
            by_record[hubspot_id].append(row)
    if not by_record:
        return
    try:
        response = _batch_update(connection, object_type, by_record)
    except HubSpotError as error:
        if (
            error.status is not None
            and 400 <= error.status < 500
            and error.status != 429
        ):
            _fail(
                [row for group in by_record.values() for row in group],
                str(error),
                counts,
            )
            return
        raise
    failed = failed_ids(response)
    for hubspot_id, group in by_record.items():
        if hubspot_id in failed:
            _fail(group, failed[hubspot_id], counts)
        else:
            _mark_pushed(group, counts)


def _hubspot_ids(
    connection: HubSpotConnection, object_type: str, rows: list[CrmWriteBack]
) -> list[str | None]:
    """Return the surviving HubSpot id of each row's account or contact."""
    live = HubSpotLink.objects.filter(
        connection=connection, merged_into="", archived_at__isnull=True
    )
    if object_type == PropertyObject.ACCOUNT:
        ids = dict(
            live.filter(
                object_type=ObjectType.COMPANY,
                account_id__in=[r.account_id for r in rows],
            )
            .order_by("created_at")
            .values_list("account_id", "hubspot_id")
        )
        return [ids.get(row.account_id) for row in rows]
    # Contact rows always name a contact; a check constraint enforces it.
    contact_ids = [row.contact_id for row in rows if row.contact_id is not None]
    by_contact = dict(
        live.filter(object_type=ObjectType.CONTACT, contact_id__in=contact_ids)
        .order_by("created_at")
        .values_list("contact_id", "hubspot_id")
    )
    return [
        by_contact.get(row.contact_id) if row.contact_id is not None else None
        for row in rows
    ]


def _batch_update(
    connection: HubSpotConnection,
    object_type: str,
    by_record: dict[str, list[CrmWriteBack]],
) -> Any:
    # Rows are oldest first, so a later value of one property wins.
    inputs = [
        {
            "id": hubspot_id,
            "properties": {
                row.property_name: hubspot_value(row.value) for row in group
            },
        }
        for hubspot_id, group in by_record.items()
    ]
    client = build_client(connection)
    if object_type == PropertyObject.ACCOUNT:
        batch: Any = CompanyBatch(inputs=inputs)
        api = client.crm.companies.batch_api
    else:
        batch = ContactBatch(inputs=inputs)
        api = client.crm.contacts.batch_api
    return call(
        connection,
        lambda: api.update(batch_input_simple_public_object_batch_input=batch),
        description=f"update {len(inputs)} {object_type} records",
    )


def hubspot_value(value: Any) -> str:
    """Return value as HubSpot's API takes property values: a string."""
    if value is None:
        # An empty string clears a property in HubSpot.
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date | datetime):
        return value.isoformat()
    if isinstance(value, list):
        # Multiple checkboxes are one string of options joined by ";".
        return ";".join(str(item) for item in value)
    return str(value)


def failed_ids(response: Any) -> dict[str, str]:
    """Return the error message of each id that a 207 response lists."""
    failed: dict[str, str] = {}
    for error in getattr(response, "errors", None) or []:
        message = f"HubSpot rejected the value ({error.category}): {error.message}"
        for hubspot_id in (error.context or {}).get("ids", []):
            failed[str(hubspot_id)] = message
    return failed


def _mark_pushed(rows: list[CrmWriteBack], counts: PushCounts) -> None:
    now = timezone.now()
    for row in rows:
        row.status = CrmWriteBackStatus.PUSHED
        row.pushed_at = now
        row.last_error = ""
    CrmWriteBack.objects.bulk_update(rows, ["status", "pushed_at", "last_error"])
    counts.pushed += len(rows)


def _fail(rows: list[CrmWriteBack], message: str, counts: PushCounts) -> None:
    for row in rows:
        row.status = CrmWriteBackStatus.FAILED
        row.last_error = message[:2000]
    CrmWriteBack.objects.bulk_update(rows, ["status", "last_error"])
    counts.failed += len(rows)
    logger.warning("CRM write-backs %s failed: %s", [row.pk for row in rows], message)
