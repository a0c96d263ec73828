"""What other apps, tasks, commands and the admin may use from triggers.

Sweeps evaluate triggers and write firings with their actions, in
triggers.evaluation. The outbox sends the emails those actions wrote, in
triggers.outbox. The demo program seeds a ready set of triggers, in
triggers.demo. Before a trigger is switched on, a CSM previews it
(triggers.preview), backtests it over past weeks (triggers.backtest, stored
as runs by triggers.backtest_runs) and activates it with or without
backfill (triggers.activation). Journeys run their pending steps
(triggers.journeys), send webhook calls from their outbox
(triggers.webhooks) and create CSM tasks (triggers.csm_tasks).
"""

from triggers.activation import activate_trigger, activation_choice, deactivate_trigger
from triggers.backtest import backtest_csv, backtest_trigger, check_period
from triggers.backtest_runs import compute_run, create_run, run_result
from triggers.csm_tasks import complete_tasks
from triggers.demo import seed_demo_program
from triggers.evaluation import SweepReport, replay, run_sweep
from triggers.journeys import StepReport, run_due_steps
from triggers.outbox import (
    due_outbox_ids,
    release_stuck_email,
    retry_failed_email,
    send_due_email,
    send_outbox_email,
)
from triggers.preview import preview_trigger
from triggers.webhooks import retry_failed_webhooks, send_delivery

__all__ = [
    "StepReport",
    "SweepReport",
    "activate_trigger",
    "activation_choice",
    "backtest_csv",
    "backtest_trigger",
    "check_period",
    "complete_tasks",
    "compute_run",
    "create_run",
    "deactivate_trigger",
    "due_outbox_ids",
    "preview_trigger",
    "release_stuck_email",
    "replay",
    "retry_failed_email",
    "retry_failed_webhooks",
    "run_due_steps",
    "run_result",
    "run_sweep",
    "seed_demo_program",
    "send_delivery",
    "send_due_email",
    "send_outbox_email",
]
