"""Outbox rows sent with attempts: releasing stuck rows, listing due ones, retrying.

OutboxEmail and WebhookDelivery go through the same states: pending, then
sending while a worker has claimed the row, then sent (or delivered) or back
to pending with a later next_attempt_at, and failed once the attempts run
out. Both keep attempts, claimed_at, next_attempt_at and last_error, so
these functions serve both; `noun` names the rows in log lines.
"""

import logging
from collections.abc import Callable, Iterable
from datetime import timedelta

from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

logger = logging.getLogger(__name__)

# The status values both outbox models use for these states.
PENDING = "pending"
SENDING = "sending"
FAILED = "failed"


def release_stuck(
    model: type[models.Model], older_than: timedelta, max_attempts: int, noun: str
) -> int:
    """Release rows claimed longer ago than older_than; return how many.

    Such rows belong to a worker that crashed or lost its connection, and
    the send may or may not have happened. Rows with attempts left go back
    to pending to be sent again with the same Message-ID or idempotency
    key; rows out of attempts are marked failed. Both count as released.
    """
    stuck = model._default_manager.filter(
        status=SENDING, claimed_at__lt=timezone.now() - older_than
    )
    error = (
        f"Released after more than {older_than} in 'sending'; the worker likely died."
    )
    failed = stuck.filter(attempts__gte=max_attempts).update(
        status=FAILED, last_error=error, next_attempt_at=None
    )
    retried = stuck.filter(attempts__lt=max_attempts).update(
        status=PENDING, last_error=error, next_attempt_at=None
    )
    if failed or retried:
        logger.warning(
            "Released %s %s stuck in sending: %s back to pending, %s failed",
            failed + retried,
            noun,
            retried,
            failed,
        )
    return failed + retried


def due_ids(model: type[models.Model], limit: int) -> list[int]:
    """Return up to `limit` ids of pending rows that are due, oldest first."""
    now = timezone.now()
    due = model._default_manager.filter(
        Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now),
        status=PENDING,
    )
    return list(due.order_by("created_at", "pk").values_list("pk", flat=True)[:limit])


def retry_failed(
    model: type[models.Model],
    ids: Iterable[int],
    queue_after_commit: Callable[[list[int]], None],
    noun: str,
) -> int:
    """Return failed rows to pending with a fresh set of attempts; queue them.

    Returns how many rows were failed and are now pending; rows in any other
    status are left alone.
    """
    with transaction.atomic():
        retried = list(
            model._default_manager.filter(pk__in=list(ids), status=FAILED)
            .select_for_update()
            .values_list("pk", flat=True)
        )
        model._default_manager.filter(pk__in=retried).update(
            status=PENDING, attempts=0, next_attempt_at=None
        )
        queue_after_commit(retried)
    if retried:
        logger.info("Retrying %s failed %s: %s", len(retried), noun, retried)
    return len(retried)
