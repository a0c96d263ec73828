"""Running a script on a fresh SQLite database, the demo's, in a child process.

The test suite runs on PostgreSQL, so a script that must see SQLite runs
in its own interpreter with DATABASE_URL pointing at a new file. The
script prints its result as JSON on its last line.
"""

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

PROJECT = Path(__file__).resolve().parents[1]


def run_on_sqlite(script: str, folder: Path) -> Any:
    """Run a Python script with a new SQLite database in folder; return its JSON."""
    environment = {
        **os.environ,
        "DATABASE_URL": f"sqlite:///{folder / 'child.sqlite3'}",
        "DJANGO_SETTINGS_MODULE": "config.settings",
    }
    finished = subprocess.run(
        [sys.executable, "-c", script],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert finished.returncode == 0, finished.stderr[-4000:]
    return json.loads(finished.stdout.strip().splitlines()[-1])
