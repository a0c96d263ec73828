"""Celery tasks of the metrics app: scheduled email reports and the dashboard facts.

Tasks take ids and call metrics.reports, and are safe to run twice: the
broker delivers a task again when its worker dies (CELERY_TASK_ACKS_LATE).
"""

import logging

from celery import shared_task
from django.db import InterfaceError, OperationalError

from metrics import facts, reports

logger = logging.getLogger(__name__)

# The database was briefly unreachable; the row itself is fine.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@shared_task(
    name="metrics.tasks.send_report",
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def send_report(delivery_id: int) -> bool:
    """Send one report delivery unless another task already claimed it."""
    return reports.send_delivery(delivery_id)


@shared_task(name="metrics.tasks.send_scheduled_reports")
def send_scheduled_reports() -> int:
    """Create due deliveries, then queue the pending ones that are not new.

    New deliveries are queued by create_due_deliveries when it commits.
    Returns how many sends this run queued in all.
    """
    reports.release_stuck_deliveries()
    created = reports.create_due_deliveries()
    retried = reports.pending_delivery_ids(exclude=created)
    for delivery_id in retried:
        send_report.delay(delivery_id)
    if retried:
        logger.info("Queued %s pending report deliveries again", len(retried))
    return len(created) + len(retried)


@shared_task(
    name="metrics.tasks.refresh_dashboard_facts",
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=10,
    retry_backoff_max=600,
    retry_jitter=True,
    max_retries=5,
)
def refresh_dashboard_facts() -> int:
    """Recompute the dashboard's per-account facts; return how many accounts.

    Beat runs it every ten minutes (metrics migration 0007). A second run,
    or two at once, leaves the same rows.
    """
    return facts.refresh_facts().accounts
