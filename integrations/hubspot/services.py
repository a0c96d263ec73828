"""Service functions of the HubSpot sync for the admin, tasks and tests."""

from django.db import transaction

from integrations.hubspot.models import HubSpotConnection, ObjectType, SyncKind, SyncRun
from integrations.hubspot.sync import create_resumed_run, create_run


def start_sync(
    connection: HubSpotConnection, kind: str = SyncKind.INCREMENTAL
) -> list[SyncRun]:
    """Create a run for companies, contacts and, if enabled, deals; queue them.

    The runs are queued after the commit, in that order, because contacts
    and deals find their accounts through the companies.
    """
    from integrations.hubspot.tasks import run_sync

    object_types = [ObjectType.COMPANY, ObjectType.CONTACT]
    if connection.sync_deals:
        object_types.append(ObjectType.DEAL)
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
