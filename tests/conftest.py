"""Fixtures shared by the whole suite."""

import importlib
import os
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from django.apps import apps
from django.conf import settings
from django.db import connection
from pytest_django.plugin import blocking_manager_key

from config.celery import app as celery_app

# The public datasets live beside the project checkout; NUDGEPATH_DATA_DIR
# points elsewhere. Tests that need them skip with the folder's name.
DATA_DIR = Path(
    os.environ.get(
        "NUDGEPATH_DATA_DIR", Path(__file__).resolve().parents[2] / "shared" / "data"
    )
)


def _worker_broker_url(url: str, worker: str) -> str:
    """Give each parallel test process a Redis database of its own.

    Worker tests start Celery workers that take any task on the broker. Two
    test processes sharing one Redis database would run each other's tasks
    against the wrong test database. Process gwN uses the configured
    database number minus N, so a run with -n 2 on db 15 uses 15 and 14.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        return url
    index = int(worker.removeprefix("gw"))
    number = int(parts.path.strip("/") or 0) - index
    if number < 0:
        raise pytest.UsageError(
            f"test process {worker} would use Redis database {number} of {url}; "
            f"set TEST_BROKER_URL to database {index} or higher, or run fewer "
            "processes with PYTEST_WORKERS"
        )
    return urlunsplit(parts._replace(path=f"/{number}"))


if worker := os.environ.get("PYTEST_XDIST_WORKER"):
    # Django's settings are loaded before this file, so the broker URL is
    # changed where it is read: the settings, Celery's configuration, and the
    # environment that subprocesses such as Celery workers inherit.
    broker_url = _worker_broker_url(settings.CELERY_BROKER_URL, worker)
    if (
        settings.CACHES.get("sessions", {}).get("LOCATION")
        == settings.CELERY_BROKER_URL
    ):
        settings.CACHES["sessions"]["LOCATION"] = broker_url
    settings.CELERY_BROKER_URL = broker_url
    settings.NUDGEPATH_HUBSPOT_REDIS_URL = _worker_broker_url(
        settings.NUDGEPATH_HUBSPOT_REDIS_URL, worker
    )
    celery_app.conf.update(broker_url=broker_url)
    os.environ["CELERY_BROKER_URL"] = broker_url


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


def _commits(item: pytest.Item) -> bool:
    """Whether the test commits, by the rules pytest-django applies."""
    marker = item.get_closest_marker("django_db")
    if marker is not None:
        positional = marker.args[0] if marker.args else False
        if marker.kwargs.get("transaction", positional):
            return True
        if marker.kwargs.get("reset_sequences"):
            return True
    names = set(getattr(item, "fixturenames", ()))
    committing = {"transactional_db", "live_server", "django_db_reset_sequences"}
    return bool(names & committing)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None):
    """Put back the rows that data migrations seed, after a committing test.

    A committing test ends with a flush of every table, seeded stages and
    periodic tasks too. serialized_rollback restores them only when the next
    such test starts, so a test that runs in a rolled-back transaction after
    it, or the next run with --reuse-db, would find none. Which test comes
    next depends on how the run is split between processes, so every
    committing test restores them. The rows come from the snapshot Django
    took when it created the database: a snapshot taken later could hold
    content types with other ids, which would clash with the ones
    serialized_rollback restores.
    """
    result = yield
    snapshot = getattr(connection, "_test_serialized_contents", None)
    if snapshot and _commits(item):
        with item.config.stash[blocking_manager_key].unblock():
            connection.creation.deserialize_db_from_string(snapshot)
    return result
