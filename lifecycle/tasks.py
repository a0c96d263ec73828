"""Daily lifecycle work: today's health scores, then stage evaluation."""

import logging
from typing import Any

from celery import shared_task
from django.utils import timezone

from customers.services import compute_health_scores
from lifecycle.services import evaluate_stages

logger = logging.getLogger(__name__)


@shared_task
def refresh_lifecycle() -> dict[str, Any]:
    """Score every account for today, then move accounts whose criteria are met.

    Health first, because criteria and triggers read the health history.
    Both steps are idempotent for the same day, so a retry or a second beat
    tick rewrites the same rows.
    """
    now = timezone.now()
    scored = compute_health_scores(timezone.localdate(now))
    report = evaluate_stages(now)
    logger.info(
        "Lifecycle refresh: %s health scores, %s stage changes",
        scored,
        report.stage_changes,
    )
    return {"health_scores": scored, "stage_changes": report.stage_changes}
