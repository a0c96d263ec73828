"""Benchmarks: python -m bench (or make bench), against PostgreSQL.

Builds a synthetic customer record in a throw-away test database, times the
trigger evaluation query of each demo trigger and one stage evaluation, and
prints each p95 as a ratio against its limit. A ratio above 1.0 misses the
target. Results are recorded in docs/benchmarks.md.
"""

import os
import sys

import django


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
    django.setup()

    from django.test.utils import setup_databases, teardown_databases

    from bench.sweep import run

    databases = setup_databases(verbosity=0, interactive=False)
    try:
        return run()
    finally:
        teardown_databases(databases, verbosity=0)


if __name__ == "__main__":
    sys.exit(main())
