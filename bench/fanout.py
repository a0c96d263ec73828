"""Time a scheduled sweep the way production runs it: fanned out to a worker.

The periodic run_sweep task queues one evaluate_triggers task per active
trigger, and a celery worker with one process per core evaluates them in
parallel. The clock runs from queuing run_sweep until every trigger's
sweep row is finished.
"""

import os
import socket
import tempfile
import time
from pathlib import Path

from django.utils import timezone

from bench.events import start_worker, wait_until_ready
from triggers.models import Sweep, Trigger

WORKER_NAME = f"bench-sweep-{os.getpid()}@{socket.gethostname()}"
# One process per core of the 2-core machines the limit is meant for.
CONCURRENCY = 2
FINISH_WAIT_SECONDS = 300
POLL_SECONDS = 0.02


def time_fanned_out_sweeps(
    triggers: list[Trigger], as_of_text: str, runs: int
) -> list[float]:
    """Run the scheduled sweep `runs` times through a worker; return each duration.

    Only the given triggers are active meanwhile; the first run is part of
    the result, so the caller can leave it out as a warm-up.
    """
    from triggers.tasks import run_sweep

    Trigger.objects.exclude(pk__in=[trigger.pk for trigger in triggers]).update(
        is_active=False
    )
    Trigger.objects.filter(pk__in=[trigger.pk for trigger in triggers]).update(
        is_active=True
    )
    folder = Path(tempfile.mkdtemp(prefix="nudgepath-fanout-"))
    log_path = folder / "worker.log"
    pool = ("--pool=prefork", f"--concurrency={CONCURRENCY}")
    worker = start_worker(log_path, folder / "mail", pool=pool, name=WORKER_NAME)
    try:
        wait_until_ready(worker, log_path, name=WORKER_NAME)
        durations = []
        for _ in range(runs):
            queued_at = timezone.now()
            started = time.perf_counter()
            run_sweep.delay(as_of_text)
            _wait_for_sweeps(len(triggers), queued_at, log_path)
            durations.append(time.perf_counter() - started)
        return durations
    finally:
        worker.terminate()
        worker.wait(timeout=30)


def _wait_for_sweeps(count: int, queued_at: object, log_path: Path) -> None:
    finished = Sweep.objects.filter(
        started_at__gte=queued_at, finished_at__isnull=False
    )
    deadline = time.monotonic() + FINISH_WAIT_SECONDS
    while time.monotonic() < deadline:
        if finished.count() >= count:
            return
        time.sleep(POLL_SECONDS)
    raise RuntimeError(
        f"only {finished.count()} of {count} trigger sweeps finished within "
        f"{FINISH_WAIT_SECONDS} s; see {log_path}"
    )
