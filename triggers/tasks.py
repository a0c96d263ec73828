"""Celery tasks for sweeps and the email outbox; each calls one service function."""

import logging
from dataclasses import asdict
from typing import Any

from celery import shared_task
from django.db import InterfaceError, OperationalError

from triggers import services
from triggers.outbox import STUCK_AFTER

logger = logging.getLogger(__name__)

# Errors that show the database was briefly unreachable, not that the row is
# bad. Mail server errors are not here: send_outbox_email records them on
# the row and the periodic job retries the row when its backoff is over.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(name="triggers.tasks.run_sweep")
def run_sweep() -> dict[str, Any]:
    """Evaluate every active trigger as of now."""
    return asdict(services.run_sweep())


@shared_task(
    name="triggers.tasks.send_email",
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def send_email(outbox_id: int) -> bool:
    """Send one outbox email unless another worker already claimed it."""
    return services.send_outbox_email(outbox_id)


@shared_task(name="triggers.tasks.send_pending_email")
def send_pending_email() -> int:
    """Release stuck rows, then queue a send task per due pending row, in one batch.

    Returns how many sends were queued. A row queued twice (by a sweep and by
    this job) is sent once, because sending starts with a claim.
    """
    services.release_stuck_email(older_than=STUCK_AFTER)
    outbox_ids = services.due_outbox_ids()
    for outbox_id in outbox_ids:
        send_email.delay(outbox_id)
    if outbox_ids:
        logger.info("Queued %s pending outbox emails", len(outbox_ids))
    return len(outbox_ids)
