"""Benchmarks: python -m bench [NAME ...] (or make bench), against PostgreSQL.

Each benchmark builds its synthetic data in a throw-away test database,
times what it measures and prints each result as a ratio against its
limit; a ratio above 1.0 misses the target and makes the run exit 1.
Without names every benchmark runs. Results are recorded in
docs/benchmarks.md.
"""

import importlib
import os
import sys

import django

# Name -> module with a run() -> int function. Each gets a fresh database.
BENCHMARKS = {
    "sweep": "bench.sweep",
    "scale": "bench.scale",
    "events": "bench.events",
    "health": "bench.health",
    "ingest": "bench.ingest",
    "csv_import": "bench.csv_import",
    "dashboard": "bench.dashboard",
    "portal": "bench.portal",
    "search": "bench.portal_search",
}


def main(argv: list[str]) -> int:
    names = argv or list(BENCHMARKS)
    unknown = [name for name in names if name not in BENCHMARKS]
    if unknown:
        print(
            f"Unknown benchmark {', '.join(unknown)}; choose from "
            f"{', '.join(BENCHMARKS)}.",
            file=sys.stderr,
        )
        return 2

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()

    worst = 0
    for name in names:
        print(f"== {name}")
        worst = max(worst, _run_in_fresh_database(BENCHMARKS[name]))
    return worst


def _run_in_fresh_database(module_name: str) -> int:
    from django.test.utils import setup_databases, teardown_databases

    module = importlib.import_module(module_name)
    databases = setup_databases(verbosity=0, interactive=False)
    try:
        return int(module.run())
    finally:
        teardown_databases(databases, verbosity=0)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
