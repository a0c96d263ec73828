"""Service functions of the HubSpot sync for the admin, tasks and tests."""

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerError

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
    release_queued_run,
    release_run,
    stuck_runs,
)
from integrations.hubspot.webhooks import due_events

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


def release_lost_runs(now: datetime | None = None) -> list[SyncRun]:
    """Fail queued runs whose task message was lost, and queue them again.

    A run is taken as lost when it has been queued longer than
    NUDGEPATH_HUBSPOT_QUEUED_RUN_MINUTES and no run of its connection is
    running. While a sibling runs, the task that runs them in order has
    not reached it yet, and the running run's own heartbeat guards it.
    The lost runs of a connection are resumed in one task, in the order
    they were created, so companies still come before contacts.
    """
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.NUDGEPATH_HUBSPOT_QUEUED_RUN_MINUTES)
    running = SyncRun.objects.filter(status=SyncStatus.RUNNING).values("connection")
    lost = (
        SyncRun.objects.filter(status=SyncStatus.QUEUED, created_at__lt=cutoff)
        .exclude(connection__in=running)
        .select_related("connection")
        .order_by("connection", "created_at", "pk")
    )
    by_connection: dict[int, list[SyncRun]] = {}
    for run in lost:
        by_connection.setdefault(run.connection_id, []).append(run)
    resumed: list[SyncRun] = []
    for runs in by_connection.values():
        resumed += _requeue(runs)
    return resumed


def _requeue(runs: list[SyncRun]) -> list[SyncRun]:
    from integrations.hubspot.tasks import run_sync

    with transaction.atomic():
        # The conditional update skips a run that a worker claimed meanwhile.
        released = [run for run in runs if release_queued_run(run)]
        new_runs = [create_resumed_run(run) for run in released]
        run_ids = [run.pk for run in new_runs]
        if run_ids:
            transaction.on_commit(lambda: run_sync.delay(run_ids))
    for old, new in zip(released, new_runs, strict=True):
        logger.warning(
            "Released HubSpot sync run %s, queued since %s with no worker; "
            "queued again as run %s",
            old.pk,
            old.created_at.isoformat(),
            new.pk,
        )
    return new_runs


def queue_processing(connection_id: int) -> bool:
    """Queue the task that applies a connection's stored webhook events.

    Returns False, after logging, when the broker cannot take the task.
    The events are committed already, and the periodic retry task queues
    them once the broker is back, so the caller need not fail.
    """
    from integrations.hubspot.tasks import process_webhook_events

    try:
        process_webhook_events.delay(connection_id)
    except BrokerError as error:
        logger.warning(
            "Could not queue HubSpot webhook processing for connection %s; the "
            "stored events wait for the retry task: %s",
            connection_id,
            error,
        )
        return False
    return True


def queue_due_webhook_events() -> list[int]:
    """Queue processing for each active connection with due events; return ids."""
    connection_ids = list(
        due_events()
        .filter(connection__is_active=True)
        .values_list("connection", flat=True)
        .distinct()
        .order_by("connection")
    )
    return [pk for pk in connection_ids if queue_processing(pk)]
