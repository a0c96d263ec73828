"""What other apps, tasks, commands and the admin may use from triggers.

Sweeps evaluate triggers and write firings with their actions, in
triggers.evaluation. The outbox sends the emails those actions wrote, in
triggers.outbox. The demo program seeds a ready set of triggers, in
triggers.demo. Before a trigger is switched on, a CSM previews it
(triggers.preview), backtests it over past weeks (triggers.backtest) and
activates it with or without backfill (triggers.activation).
"""

from triggers.activation import activate_trigger, activation_choice, deactivate_trigger
from triggers.backtest import backtest_csv, backtest_trigger, check_period
from triggers.demo import seed_demo_program
from triggers.evaluation import SweepReport, replay, run_sweep
from triggers.outbox import (
    due_outbox_ids,
    release_stuck_email,
    retry_failed_email,
    send_due_email,
    send_outbox_email,
)
from triggers.preview import preview_trigger

__all__ = [
    "SweepReport",
    "activate_trigger",
    "activation_choice",
    "backtest_csv",
    "backtest_trigger",
    "check_period",
    "deactivate_trigger",
    "due_outbox_ids",
    "preview_trigger",
    "release_stuck_email",
    "replay",
    "retry_failed_email",
    "run_sweep",
    "seed_demo_program",
    "send_due_email",
    "send_outbox_email",
]
