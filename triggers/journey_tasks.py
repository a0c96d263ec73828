"""Celery tasks for journeys and webhook calls; each calls one service function.

config.celery discovers this module beside each app's tasks module.
"""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from triggers import journeys, webhooks

logger = logging.getLogger(__name__)

# The database was briefly unreachable; the row itself is fine. Failed HTTP
# calls are recorded on the row instead and retried by send_pending_webhooks.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(name="triggers.journey_tasks.run_due_steps")
def run_due_steps() -> dict[str, int]:
    """Run the journey steps that are due now and check waiting goals."""
    report = journeys.run_due_steps()
    return {"ran": report.ran, "stopped": report.stopped, "failed": report.failed}


@shared_task(
    name="triggers.journey_tasks.send_webhook",
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def send_webhook(delivery_id: int) -> bool:
    """Send one webhook call unless another worker already claimed it."""
    return webhooks.send_delivery(delivery_id)


@shared_task(name="triggers.journey_tasks.send_pending_webhooks")
def send_pending_webhooks() -> int:
    """Release stuck calls, then queue a send task per due pending call.

    Returns how many sends were queued. A call queued twice is sent once,
    because sending starts with a claim.
    """
    webhooks.release_stuck_webhooks()
    delivery_ids = webhooks.due_delivery_ids()
    for delivery_id in delivery_ids:
        send_webhook.delay(delivery_id)
    if delivery_ids:
        logger.info("Queued %s pending webhook calls", len(delivery_ids))
    return len(delivery_ids)
