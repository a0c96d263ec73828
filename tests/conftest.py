"""Fixtures shared by the whole suite."""

import os
from pathlib import Path

import pytest

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
