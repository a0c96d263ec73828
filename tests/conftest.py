"""Fixtures shared by the whole suite."""

import importlib
import os
from pathlib import Path

import pytest
from django.apps import apps
from django.db import connection

from config.celery import app as celery_app

# The public datasets live beside the project checkout; NUDGEPATH_DATA_DIR
# points elsewhere. Tests that need them skip with the folder's name.
DATA_DIR = Path(
    os.environ.get(
        "NUDGEPATH_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"
    )
)


@pytest.fixture
def data_dir() -> Path:
    for name in ("ravenstack", "oulad_2013"):
        if not (DATA_DIR / name).is_dir():
            pytest.skip(
                f"dataset folder {DATA_DIR / name} is missing; "
                "set NUDGEPATH_DATA_DIR to the folder that holds "
                "ravenstack/ and oulad_2013/"
            )
    return DATA_DIR


@pytest.fixture(autouse=True)
def eager_celery():
    """Run tasks in-process; the worker tests turn this off for themselves."""
    previous = celery_app.conf.task_always_eager
    celery_app.conf.task_always_eager = True
    yield
    celery_app.conf.task_always_eager = previous


@pytest.fixture(scope="session")
def django_db_setup(django_db_setup, django_db_blocker):
    """Put back rows seeded by data migrations when a reused database lost them.

    A transactional test ends by flushing every table, seeded stages and
    periodic tasks too, so with --reuse-db the next run would start without
    them. The schedule functions create only the entries that are missing.
    """
    seed = importlib.import_module("lifecycle.migrations.0002_seed_stages")
    schedules = [
        importlib.import_module(f"triggers.migrations.{name}")
        for name in ("0004_periodic_schedule", "0005_journeys_and_actions")
    ]
    with django_db_blocker.unblock():
        if not apps.get_model("lifecycle", "Stage").objects.exists():
            seed.seed_stages(apps, schema_editor=None)
        for schedule in schedules:
            schedule.create_schedule(apps, schema_editor=None)


@pytest.fixture(scope="module")
def keep_seeded_rows(django_db_setup, django_db_blocker):
    """Put back the rows that data migrations seed, after a module's committing tests.

    A committing test ends with a flush of every table, and serialized_rollback
    restores the rows only when the next such test starts, so a run that ends
    with the module would leave a reused database without them. The rows come
    from the snapshot Django took when it created the database: a snapshot
    taken later could hold content types with other ids, which would clash
    with the ones serialized_rollback restores.
    """
    yield
    snapshot = getattr(connection, "_test_serialized_contents", None)
    if snapshot:
        with django_db_blocker.unblock():
            connection.creation.deserialize_db_from_string(snapshot)
