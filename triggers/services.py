"""What other apps, tasks, commands and the admin may use from triggers.

Sweeps evaluate triggers and write firings with their actions, in
triggers.evaluation. The outbox sends the emails those actions wrote, in
triggers.outbox. The demo program seeds a ready set of triggers, in
triggers.demo.
"""

from triggers.demo import seed_demo_program
from triggers.evaluation import SweepReport, replay, run_sweep
from triggers.outbox import (
    due_outbox_ids,
    release_stuck_email,
    retry_failed_email,
    send_due_email,
    send_outbox_email,
)

__all__ = [
    "SweepReport",
    "due_outbox_ids",
    "release_stuck_email",
    "replay",
    "retry_failed_email",
    "run_sweep",
    "seed_demo_program",
    "send_due_email",
    "send_outbox_email",
]
