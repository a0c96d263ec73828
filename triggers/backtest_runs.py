"""Backtest runs: a backtest requested in the admin and computed by a worker.

A daily backtest runs one query per evaluated day, so two years take 731
queries, too long for a web request. The admin stores a BacktestRun and
queues triggers.backtest_tasks.run_backtest once the row is committed. The
task claims the run, computes it with backtest_trigger and stores the
weekly rows, which the admin shows as a table, a chart and CSV. Short
periods, up to SYNC_MAX_EVALUATIONS evaluations, are computed in the
request instead, because queuing would only add a page refresh.
"""

import logging
import time
from datetime import date, timedelta
from typing import Any, cast

from django.contrib.auth.models import AnonymousUser, User
from django.db.models import Q
from django.utils import timezone

from conditions import ConditionError, Subject, validate
from triggers.backtest import (
    STEPS,
    Backtest,
    BacktestPeriodError,
    BacktestWeek,
    backtest_trigger,
    check_period,
)
from triggers.models import BacktestRun, BacktestStatus, Trigger

logger = logging.getLogger(__name__)

# The default period of 12 weeks evaluated daily is 84 evaluations, about as
# many queries, which the request computes at once. Longer runs are queued.
SYNC_MAX_EVALUATIONS = 84
# A run still "running" after this long is taken to belong to a worker that
# died, so a redelivered task may claim it again. It must exceed the longest
# run: a 2-year daily backtest is 731 queries, estimated at minutes.
STUCK_AFTER = timedelta(hours=1)


def evaluations(start: date, end: date, step: str) -> int:
    """Return how many instants a backtest of the period evaluates."""
    return (end - start).days // STEPS[step] + 1


def create_run(
    trigger: Trigger,
    requested_by: User | AnonymousUser | None,
    start: date,
    end: date,
    step: str,
) -> BacktestRun:
    """Check the request and store a queued run; the caller queues its task.

    Raises BacktestPeriodError for a bad period or step and ConditionError
    for an invalid stored condition, before anything is written.
    """
    check_period(start, end)
    if step not in STEPS:
        raise BacktestPeriodError(
            f"The step {step!r} is invalid; use one of {', '.join(STEPS)}."
        )
    validate(trigger.condition, cast(Subject, trigger.subject_type))
    user = requested_by if isinstance(requested_by, User) else None
    run = BacktestRun.objects.create(
        trigger=trigger, requested_by=user, start=start, end=end, step=step
    )
    logger.info(
        "Backtest run %s of trigger %s requested by user %s: %s to %s by %s",
        run.pk,
        trigger.slug,
        user.pk if user else None,
        start.isoformat(),
        end.isoformat(),
        step,
    )
    return run


def compute_run(run_id: int) -> BacktestRun:
    """Claim a queued run, compute its backtest and store the rows or the error.

    A run that is done, failed or being computed by another worker is
    returned as it is, so a task delivered twice computes it once. A
    ConditionError, a bad period or any other exception marks the run
    failed with the error and is logged, not raised.
    """
    if not _claim(run_id):
        run = BacktestRun.objects.get(pk=run_id)
        logger.info("Backtest run %s is %s; not computing it again", run_id, run.status)
        return run

    run = BacktestRun.objects.select_related("trigger").get(pk=run_id)
    started = time.monotonic()
    try:
        result = backtest_trigger(run.trigger, run.start, run.end, run.step)
    except (ConditionError, BacktestPeriodError) as exc:
        logger.warning("Backtest run %s failed: %s", run_id, exc)
        return _finish(run, BacktestStatus.FAILED, error=str(exc))
    except Exception as exc:
        logger.exception("Backtest run %s failed unexpectedly", run_id)
        # The page puts "The backtest failed:" before the stored error, and
        # the exception's class name is in the log, not on the page.
        detail = str(exc) or "no message"
        return _finish(
            run,
            BacktestStatus.FAILED,
            error=(
                f"unexpected error ({detail}); the server log of "
                "triggers.backtest_runs has the details."
            ),
        )

    run = _finish(run, BacktestStatus.DONE, rows=backtest_rows(result))
    logger.info(
        "Backtest run %s done in %.0f ms", run_id, (time.monotonic() - started) * 1000
    )
    return run


def backtest_rows(result: Backtest) -> list[dict[str, Any]]:
    """Convert a backtest's weeks to the JSON rows a run stores."""
    return [
        {
            "week_start": week.week_start.isoformat(),
            "days_evaluated": week.days_evaluated,
            "matched": week.matched,
            "would_fire": week.would_fire,
            "new_subjects": week.new_subjects,
        }
        for week in result.weeks
    ]


def run_result(run: BacktestRun) -> Backtest:
    """Rebuild the Backtest a done run stored, for its table, chart and CSV."""
    weeks = tuple(
        BacktestWeek(
            week_start=date.fromisoformat(row["week_start"]),
            days_evaluated=row["days_evaluated"],
            matched=row["matched"],
            would_fire=row["would_fire"],
            new_subjects=row["new_subjects"],
        )
        for row in run.rows
    )
    return Backtest(start=run.start, end=run.end, step=run.step, weeks=weeks)


def _claim(run_id: int) -> bool:
    """Mark a queued run, or one stuck running, as running; False when none is."""
    now = timezone.now()
    claimable = Q(status=BacktestStatus.QUEUED) | Q(
        status=BacktestStatus.RUNNING, started_at__lt=now - STUCK_AFTER
    )
    claimed = BacktestRun.objects.filter(claimable, pk=run_id).update(
        status=BacktestStatus.RUNNING, started_at=now
    )
    return claimed == 1


def _finish(
    run: BacktestRun,
    status: str,
    rows: list[dict[str, Any]] | None = None,
    error: str = "",
) -> BacktestRun:
    run.status = status
    run.rows = rows or []
    run.error = error
    run.finished_at = timezone.now()
    run.save(update_fields=["status", "rows", "error", "finished_at"])
    return run
