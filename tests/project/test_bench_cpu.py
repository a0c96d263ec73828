"""The load tests' CPU accounting by process group."""

import os
import signal
import subprocess
import sys
import time

from bench.cpu import TICKS_PER_SECOND, cpu_ticks, milliseconds_per_request

# A worker that spends half a second of CPU time and then sleeps.
BUSY = (
    "import time\n"
    "end = time.process_time() + 0.5\n"
    "while time.process_time() < end: pass\n"
    "time.sleep(30)\n"
)


def _server_ticks(ticks: dict[int, tuple[str, int]]) -> int:
    return sum(used for group, used in ticks.values() if group == "server")


def test_worker_of_server_counts_as_server():
    # The shell stands for gunicorn's master and the Python child for a
    # worker; "; true" keeps the shell from replacing itself with the child.
    server = subprocess.Popen(
        ["sh", "-c", f'"{sys.executable}" -c "$0"; true', BUSY],
        start_new_session=True,
    )
    before = cpu_ticks(server.pid)
    try:
        deadline = time.monotonic() + 20
        spent = 0
        while spent < TICKS_PER_SECOND * 0.4 and time.monotonic() < deadline:
            time.sleep(0.05)
            spent = _server_ticks(cpu_ticks(server.pid)) - _server_ticks(before)
    finally:
        # The shell and its child form a process group of their own.
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()

    assert spent >= TICKS_PER_SECOND * 0.4


def test_milliseconds_per_request_divides_each_group():
    before = {10: ("server", 100), 11: ("PostgreSQL", 40), 12: ("PostgreSQL", 7)}
    # Process 12 exited and 13 started between the readings.
    after = {
        10: ("server", 100 + TICKS_PER_SECOND),
        11: ("PostgreSQL", 40),
        13: ("PostgreSQL", TICKS_PER_SECOND // 2),
    }

    spent = milliseconds_per_request(before, after, requests=500)

    assert spent == {"PostgreSQL": 500 / 500, "server": 1000 / 500}
    assert milliseconds_per_request(before, after, requests=0) == {}
