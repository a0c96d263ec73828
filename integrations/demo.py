"""The demo set-up: import data, seed the program, replay history, create an admin.

The replay walks the data's history one step at a time and, at each step,
computes health scores, evaluates lifecycle stages and runs a trigger sweep,
in that order, because stages and triggers read the health history.
"""

import logging
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as time_of_day
from pathlib import Path

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max, Min
from tqdm import tqdm

from courses.models import Enrollment
from courses.services import create_sign_in_url
from customers.models import Account, UsageEvent
from integrations.services import ImportReport, generate_sample, import_all
from lifecycle.services import compute_health, evaluate_stages
from triggers.services import SweepReport, run_sweep, seed_demo_program

logger = logging.getLogger(__name__)

ADMIN_USERNAME = "admin"


@dataclass
class ReplayReport:
    steps: int = 0
    health_scores: int = 0
    stage_changes: int = 0
    stage_evaluations: int = 0
    sweeps: SweepReport = field(default_factory=SweepReport)
    # Wall-clock seconds spent in each phase, summed over the steps.
    health_seconds: float = 0.0
    stages_seconds: float = 0.0
    sweep_seconds: float = 0.0


def history_bounds() -> tuple[date, date] | None:
    """Return the first signup and the last usage day, or None when there is no data."""
    signups = Account.objects.aggregate(first=Min("signup_date"))
    usage = UsageEvent.objects.aggregate(last=Max("occurred_at"))
    if signups["first"] is None or usage["last"] is None:
        return None
    return signups["first"], usage["last"].astimezone(UTC).date()


def step_instant(day: date) -> datetime:
    """Return the instant a replay step evaluates a day at: its end, in UTC."""
    return datetime.combine(day + timedelta(days=1), time_of_day.min, tzinfo=UTC)


def replay_history(
    start: date,
    end: date,
    step_days: int = 1,
    progress: bool = False,
    deliver_after: datetime | None = None,
    stage_step_days: int = 1,
) -> ReplayReport:
    """Replay health scores, stage evaluation and sweeps from start to end.

    Health scores and sweeps run at every step. Stages are evaluated at the
    first step, then once stage_step_days have passed since the last
    evaluation, and at the last step. Each step commits as one transaction.
    Sweeps write their emails without queuing them: those of sweeps before
    deliver_after as skipped, the others as pending for send_due_email() to
    send once the replay is done.
    """
    if step_days < 1:
        raise ValueError(f"step_days={step_days} must be at least 1")
    if stage_step_days < 1:
        raise ValueError(f"stage_step_days={stage_step_days} must be at least 1")
    days = list(_days(start, end, step_days))
    report = ReplayReport()
    staged_on: date | None = None
    for day in tqdm(days, desc="Replaying history", unit="day", disable=not progress):
        evaluate = (
            staged_on is None
            or (day - staged_on).days >= stage_step_days
            or day == days[-1]
        )
        with transaction.atomic():
            _replay_step(day, report, deliver_after, evaluate)
        if evaluate:
            staged_on = day
    logger.info(
        "Replayed %s steps in %.1f s: health scores %.1f s, stages %.1f s, "
        "sweeps %.1f s",
        report.steps,
        report.health_seconds + report.stages_seconds + report.sweep_seconds,
        report.health_seconds,
        report.stages_seconds,
        report.sweep_seconds,
    )
    return report


def _replay_step(
    day: date,
    report: ReplayReport,
    deliver_after: datetime | None,
    evaluate_stages_now: bool,
) -> None:
    # The end of the day, so events of that day count at this step.
    as_of = step_instant(day)

    started = time.monotonic()
    # The weight sets configured in the admin apply to the replay too.
    report.health_scores += compute_health(day).scored
    scored = time.monotonic()
    if evaluate_stages_now:
        # The sweep below evaluates every trigger right after, so the
        # event path would only evaluate the moved accounts twice.
        report.stage_changes += evaluate_stages(as_of, announce=False).stage_changes
        report.stage_evaluations += 1
    staged = time.monotonic()
    report.sweeps += run_sweep(as_of, deliver_after=deliver_after, queue_email=False)
    swept = time.monotonic()

    report.health_seconds += scored - started
    report.stages_seconds += staged - scored
    report.sweep_seconds += swept - staged
    report.steps += 1


def _days(start: date, end: date, step_days: int) -> Iterator[date]:
    day = start
    while day <= end:
        yield day
        day += timedelta(days=step_days)


def import_demo_data(data: Path | None, var_dir: Path) -> list[ImportReport]:
    """Import the given dataset folder, or a generated sample when none is given."""
    if data is None:
        data = generate_sample(var_dir / "sample-data")
        logger.info("Generated a sample dataset in %s", data)
    return import_all(data, progress=True)


def reset_admin_password() -> str:
    """Create the demo superuser, or give it a new password; return the password."""
    password = secrets.token_urlsafe(12)
    user_model = get_user_model()
    admin, _ = user_model.objects.get_or_create(
        username=ADMIN_USERNAME,
        defaults={"email": "admin@nudgepath.localhost"},
    )
    admin.is_staff = True
    admin.is_superuser = True
    admin.set_password(password)
    admin.save()
    return password


def sample_learner_link() -> str | None:
    """Create a sign-in link for a contact with an active enrollment."""
    enrollment = (
        Enrollment.objects.filter(status="active", course__is_published=True)
        .select_related("contact")
        .order_by("pk")
        .first()
    )
    if enrollment is None:
        return None
    return create_sign_in_url(enrollment.contact)


def seed_program() -> int:
    return len(seed_demo_program())
