"""Celery tasks of the HubSpot sync; each takes ids and re-reads its rows."""

import logging

from celery import shared_task
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerError

from integrations.hubspot.models import HubSpotConnection
from integrations.hubspot.sync import claim_run, execute_run
from integrations.hubspot.webhooks import process_events

logger = logging.getLogger(__name__)


@shared_task
def run_sync(run_ids: list[int]) -> None:
    """Run the given sync runs in order; companies come before contacts.

    A run already claimed by another worker is left to it. After a failed
    run the later ones still run, and contacts whose company is missing
    are skipped with that reason.
    """
    for run_id in run_ids:
        run = claim_run(run_id)
        if run is None:
            logger.info("HubSpot sync run %s is not queued; left alone", run_id)
            continue
        execute_run(run)


@shared_task
def sync_all_connections() -> None:
    """Queue an incremental sync of every active connection not syncing; for beat."""
    from integrations.hubspot.services import start_scheduled_syncs

    runs = start_scheduled_syncs()
    logger.info("Queued %s scheduled HubSpot sync runs", len(runs))


@shared_task
def release_stuck_runs() -> None:
    """Resume runs whose worker stopped and queue lost queued runs again; for beat."""
    from integrations.hubspot.services import release_lost_runs
    from integrations.hubspot.services import release_stuck_runs as release

    resumed = release()
    if resumed:
        logger.info("Resumed %s stuck HubSpot sync runs", len(resumed))
    requeued = release_lost_runs()
    if requeued:
        logger.info("Queued %s lost HubSpot sync runs again", len(requeued))


@shared_task
def retry_webhook_events() -> None:
    """Queue processing of stored webhook events that are due; for beat."""
    from integrations.hubspot.services import queue_due_webhook_events

    queued = queue_due_webhook_events()
    if queued:
        logger.info("Queued HubSpot webhook events of connections %s", queued)


@shared_task
def process_webhook_events(connection_id: int) -> None:
    """Apply the stored webhook events of a connection."""
    connection = HubSpotConnection.objects.filter(pk=connection_id).first()
    if connection is None:
        logger.warning("HubSpot connection %s no longer exists", connection_id)
        return
    processed = process_events(connection)
    logger.info(
        "Applied %s HubSpot webhook events of connection %s", processed, connection_id
    )


@shared_task
def push_crm_write_backs() -> None:
    """Push the pending CRM write-backs to the active connection; for beat.

    A write-back names no connection, so with several active connections
    they all go to the first by name.
    """
    from integrations.hubspot.writeback import push_write_backs

    connection = HubSpotConnection.objects.filter(is_active=True).first()
    if connection is None:
        return
    counts = push_write_backs(connection)
    logger.info(
        "HubSpot connection %s: %s write-backs pushed, %s failed",
        connection.pk,
        counts.pushed,
        counts.failed,
    )


@shared_task
def push_learning_properties(account_ids: list[int] | None = None) -> None:
    """Push learning values and completion events to each active connection.

    account_ids limits the push to those accounts and their contacts; beat
    calls it without, which pushes every linked record that changed.
    """
    from integrations.hubspot.learning_push import push_learning

    connections = HubSpotConnection.objects.filter(is_active=True)
    for connection in connections:
        if not (
            connection.learning_properties or connection.completion_event_template_id
        ):
            continue
        push_learning(connection, account_ids)


def queue_learning_push(
    sender: object, account_id: int, source: str, **kwargs: object
) -> None:
    """Queue a learning push of the account after commit; a data_changed receiver."""
    if source == "learning":
        transaction.on_commit(lambda: _queue_push(account_id))


def _queue_push(account_id: int) -> None:
    # Checked after the commit, so the transaction that changed the
    # learning records runs no extra query.
    if not (
        HubSpotConnection.objects.filter(is_active=True)
        .exclude(learning_properties={}, completion_event_template_id="")
        .exists()
    ):
        return
    try:
        push_learning_properties.delay([account_id])
    except BrokerError as error:
        # The change is committed; the periodic push sends it later.
        logger.warning(
            "Could not queue the HubSpot learning push of account %s: %s",
            account_id,
            error,
        )
