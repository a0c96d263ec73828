"""Celery task that computes a backtest run requested in the admin.

The task takes the run's id, re-reads the row and calls
triggers.backtest_runs.compute_run, which skips a run that is done, failed
or still being computed, so a task delivered twice computes the run once.
"""

import logging

from celery import shared_task
from django.db import transaction

from triggers.backtest_runs import compute_run
from triggers.models import BacktestRun

logger = logging.getLogger(__name__)


@shared_task(name="triggers.backtest_tasks.run_backtest")
def run_backtest(run_id: int) -> str:
    """Compute one backtest run and return its final status."""
    return compute_run(run_id).status


def queue_backtest(run: BacktestRun) -> None:
    """Queue the run's task once the transaction that stored the run commits.

    With CELERY_TASK_ALWAYS_EAGER (the embedded demo) the task runs at that
    moment, inside the request.
    """
    run_id = run.pk
    transaction.on_commit(lambda: run_backtest.delay(run_id))
    logger.info("Backtest run %s queued on commit", run_id)
