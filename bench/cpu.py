"""CPU time of the processes that serve a load test, read from /proc (Linux).

A load test on one machine shares its cores between the load generator,
the web server, PostgreSQL and Redis. The CPU time each group used during
a run, divided by the requests served, shows which of them a request's
cost is spent in. Processes that exit during a run, such as PostgreSQL's
parallel workers, are missed, so the figures are lower bounds.
"""

import os
from collections import Counter
from pathlib import Path

PROC = Path("/proc")
TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")

# Process names, as the kernel reports them, of the services the portal uses.
SERVICES = {"postgres": "PostgreSQL", "redis-server": "Redis"}


def _stat(pid: int) -> tuple[str, int, int] | None:
    """Return (name, parent pid, user + system ticks) of a process, or None."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    name = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return name, int(fields[1]), int(fields[11]) + int(fields[12])


def cpu_ticks(server_pid: int) -> dict[int, tuple[str, int]]:
    """Return each process's group and the CPU ticks it has used so far.

    The groups are "server", for ``server_pid`` and its children (gunicorn's
    workers), and the services' names. Other processes are left out.
    """
    ticks = {}
    for entry in PROC.iterdir():
        if not entry.name.isdigit():
            continue
        pid = int(entry.name)
        found = _stat(pid)
        if found is None:
            continue
        name, parent, used = found
        if pid == server_pid or parent == server_pid:
            ticks[pid] = ("server", used)
        elif name in SERVICES:
            ticks[pid] = (SERVICES[name], used)
    return ticks


def milliseconds_per_request(
    before: dict[int, tuple[str, int]],
    after: dict[int, tuple[str, int]],
    requests: int,
) -> dict[str, float]:
    """Return each group's CPU milliseconds per request between two readings.

    A process is counted from the first reading, or from its start when it
    started in between. One that exited in between is missed.
    """
    if requests == 0:
        return {}
    spent: Counter[str] = Counter()
    for pid, (group, used) in after.items():
        earlier = before.get(pid)
        spent[group] += used - (earlier[1] if earlier is not None else 0)
    return {
        group: spent[group] * 1000 / TICKS_PER_SECOND / requests
        for group in sorted(spent)
    }
