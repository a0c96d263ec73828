"""Daily lifecycle work: today's health scores, stage evaluation and checklist ticks."""

import logging
from datetime import date
from typing import Any

from celery import shared_task
from django.utils import timezone

from lifecycle.checklists import tick_checklists
from lifecycle.health import compute_health
from lifecycle.services import evaluate_stages

logger = logging.getLogger(__name__)


@shared_task
def refresh_lifecycle() -> dict[str, Any]:
    """Score every account for today, move accounts on and tick checklist items.

    Health first, because criteria and triggers read the health history.
    Health rewrites the same day's rows, and evaluation and ticking insert
    or ignore, so a retry or a second beat tick writes nothing twice.
    """
    now = timezone.now()
    health = compute_health(timezone.localdate(now))
    report = evaluate_stages(now)
    checklists = tick_checklists(now)
    logger.info(
        "Lifecycle refresh: %s health scores, %s stage changes, %s checklist ticks",
        health.scored,
        report.stage_changes,
        checklists.ticked,
    )
    return {
        "health_scores": health.scored,
        "stage_changes": report.stage_changes,
        "checklist_ticks": checklists.ticked,
    }


@shared_task
def recompute_health(on: str) -> dict[str, Any]:
    """Score every account for the ISO date on, for the admin's recompute action.

    It takes a date, not "today", so a task that runs late still scores the
    day the CSM saw.
    """
    run = compute_health(date.fromisoformat(on))
    return {"on": on, "scored": run.scored, "unscored": run.unscored}
