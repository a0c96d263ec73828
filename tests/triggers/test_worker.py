"""A real Celery worker sends an outbox email queued through Redis."""

import os
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from tests.factories import NOW, make_contact
from tests.triggers.factories import make_template, make_trigger
from triggers.models import OutboxEmail
from triggers.services import run_sweep

WAIT_SECONDS = 60
CELERY = Path(sys.executable).with_name("celery")


def worker_database_url():
    """Return a DATABASE_URL for the test database that pytest-django created."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "postgres")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"])
    return f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{quote(db['NAME'])}"


def start_worker(tmp_path, queue):
    env = {
        **os.environ,
        "DATABASE_URL": worker_database_url(),
        "CELERY_BROKER_URL": celery_app.conf.broker_url,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
        "EMAIL_FILE_PATH": str(tmp_path / "mail"),
    }
    command = [
        str(CELERY),
        "-A",
        "config",
        "worker",
        "--pool=solo",
        "--queues",
        queue,
        "--hostname",
        f"triggers-test-{os.getpid()}@%h",
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "INFO",
    ]
    # The child keeps its own copy of the log file's descriptor.
    with open(tmp_path / "worker.log", "wb") as log:
        return subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )


def stop_worker(worker):
    worker.terminate()
    try:
        worker.wait(timeout=15)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.wait()


@pytest.mark.worker
# The worker reads committed rows, so this test commits.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_worker_sends_queued_email(tmp_path):
    if not celery_app.conf.broker_url.startswith("redis://"):
        pytest.skip("set CELERY_BROKER_URL to a Redis URL to run the worker test")
    if connection.vendor != "postgresql":
        pytest.skip("the worker test needs DATABASE_URL to point at PostgreSQL")
    # The autouse eager_celery fixture restores the setting afterwards.
    celery_app.conf.task_always_eager = False
    # Messages left by an earlier, interrupted run would refer to rows of a
    # database that no longer exists.
    celery_app.control.purge()
    make_contact(first_name="Grace")
    trigger = make_trigger(
        {"kind": "inactivity", "days": 10}, email_template=make_template()
    )

    worker = start_worker(tmp_path, celery_app.conf.task_default_queue)
    try:
        # Each trigger's transaction commits inside run_sweep, and its
        # on_commit callback then publishes one send task to Redis.
        report = run_sweep(NOW, triggers=[trigger])
        email = OutboxEmail.objects.get()
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            email.refresh_from_db()
            mail_files = list((tmp_path / "mail").glob("*.log"))
            if email.status == "sent" and mail_files:
                break
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
    finally:
        stop_worker(worker)

    assert report.emails_queued == 1
    assert email.status == "sent", (tmp_path / "worker.log").read_text()
    assert email.attempts == 1
    assert len(mail_files) == 1
    message = mail_files[0].read_text()
    assert "Subject: Hello Grace" in message
    assert f"Message-ID: {email.message_id}" in message
