"""Service functions of the HubSpot sync for the admin, tasks and tests."""

import logging

from django.db import transaction

from integrations.hubspot.models import (
    HubSpotConnection,
    ObjectType,
    SyncKind,
    SyncRun,
    SyncStatus,
)
from integrations.hubspot.sync import (
    create_resumed_run,
    create_run,
    release_run,
    stuck_runs,
)

logger = logging.getLogger(__name__)


def start_sync(
    connection: HubSpotConnection, kind: str = SyncKind.INCREMENTAL
) -> list[SyncRun]:
    """Create a run for companies, contacts and, if enabled, deals and tickets.

    The runs are queued after the commit, in that order, because contacts,
    deals and tickets find their accounts through the companies.
    """
    from integrations.hubspot.tasks import run_sync

    object_types = [ObjectType.COMPANY, ObjectType.CONTACT]
    if connection.sync_deals:
        object_types.append(ObjectType.DEAL)
    if connection.sync_tickets:
        object_types.append(ObjectType.TICKET)
    with transaction.atomic():
        runs = [
            create_run(connection, object_type, kind) for object_type in object_types
        ]
        run_ids = [run.pk for run in runs]
        transaction.on_commit(lambda: run_sync.delay(run_ids))
    return runs


def resume_sync(failed: SyncRun) -> SyncRun:
    """Create a run that continues a failed one from its cursor; queue it."""
    from integrations.hubspot.tasks import run_sync

    with transaction.atomic():
        run = create_resumed_run(failed)
        transaction.on_commit(lambda: run_sync.delay([run.pk]))
    return run


def start_scheduled_syncs() -> list[SyncRun]:
    """Start an incremental sync of each active connection that has none pending.

    A connection with a queued or running run is left alone, so a slow
    sync never piles up runs behind it.
    """
    busy = SyncRun.objects.filter(
        status__in=[SyncStatus.QUEUED, SyncStatus.RUNNING]
    ).values("connection")
    runs: list[SyncRun] = []
    for connection in HubSpotConnection.objects.filter(is_active=True).exclude(
        pk__in=busy
    ):
        runs += start_sync(connection)
    return runs


def release_stuck_runs() -> list[SyncRun]:
    """Fail the running runs whose worker stopped, and resume each from its cursor.

    Applying a record twice changes nothing, so records that the stopped
    worker wrote after its last saved cursor are safe to read again.
    """
    resumed = []
    for run in stuck_runs():
        with transaction.atomic():
            if not release_run(run):
                continue
            resumed.append(resume_sync(run))
        logger.warning(
            "Released stuck HubSpot sync run %s (last progress %s); resumed as run %s",
            run.pk,
            run.heartbeat_at,
            resumed[-1].pk,
        )
    return resumed
