"""Exactly once with real workers: a killed worker, and two sweeps at once.

These tests start `celery worker` processes against Redis and the test
database, and hold PostgreSQL locks from a separate connection to stop a
worker at a known point inside a task.
"""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest
import redis
from django.conf import settings
from django.db import connection

from config.celery import app as celery_app
from courses.models import Enrollment
from tests.factories import NOW, make_contact
from tests.triggers.factories import make_course, make_template, make_trigger
from tests.triggers.test_worker import worker_database_url
from triggers import tasks
from triggers.models import Firing, OutboxEmail, Sweep
from triggers.services import run_sweep

CELERY = Path(sys.executable).with_name("celery")
WAIT_SECONDS = 60
# Loading Django in a new process takes seconds, and far longer when the
# suite shares the machine with other jobs; readiness is not under test.
READY_SECONDS = 180
# For the tests that kill a worker: Redis hands the killed worker's message
# to the other worker 3 seconds after delivery instead of an hour later, and
# workers look for such messages every second instead of every 100.
QUICK_REDELIVERY = {
    "NUDGEPATH_BROKER_VISIBILITY_SECONDS": "3",
    "NUDGEPATH_BROKER_RESTORE_SECONDS": "1",
}


class Worker:
    """A `celery worker` subprocess with its own log file."""

    def __init__(self, tmp_path: Path, name: str, **environment: str) -> None:
        self.name = name
        self.log_path = tmp_path / f"worker-{name}.log"
        self.killed = False
        env = {
            **os.environ,
            "DATABASE_URL": worker_database_url(),
            "CELERY_BROKER_URL": celery_app.conf.broker_url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
            "EMAIL_FILE_PATH": str(tmp_path / "mail"),
            "NUDGEPATH_EVENT_COALESCE_SECONDS": "1",
            # The tests read the log while the worker runs.
            "PYTHONUNBUFFERED": "1",
            **environment,
        }
        command = [
            str(CELERY),
            "-A",
            "config",
            "worker",
            "--pool=solo",
            "--hostname",
            f"{name}-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
            "--loglevel",
            "INFO",
        ]
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def received(self, task_id: str) -> bool:
        return task_id in self.log()

    def wait_ready(self) -> None:
        wait_for(
            lambda: " ready." in self.log(),
            f"worker {self.name} ready",
            [self],
            timeout=READY_SECONDS,
        )

    def kill(self) -> None:
        """SIGKILL: no warm shutdown, no acknowledgement, no cleanup."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait()
        self.killed = True

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def wait_for(condition, description, workers, timeout=WAIT_SECONDS):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        for worker in workers:
            if not worker.killed:
                assert worker.process.poll() is None, worker.log()
        time.sleep(0.1)
    logs = "\n".join(worker.log() for worker in workers)
    pytest.fail(f"timed out after {timeout} s waiting for {description}\n{logs}")


class Locker:
    """A second database connection that holds locks to stop workers mid-task."""

    def __init__(self) -> None:
        db = connection.settings_dict
        self.connection = psycopg.connect(
            host=db["HOST"],
            port=db["PORT"],
            user=db["USER"],
            password=db["PASSWORD"] or None,
            dbname=db["NAME"],
        )

    def lock_firing_inserts(self) -> None:
        # SHARE conflicts with the ROW EXCLUSIVE lock that INSERT takes.
        self.connection.execute("LOCK TABLE triggers_firing IN SHARE MODE")

    def lock_contact(self, contact_id: int) -> None:
        self.connection.execute(
            "SELECT id FROM customers_contact WHERE id = %s FOR UPDATE", [contact_id]
        )

    def release(self) -> None:
        self.connection.rollback()

    def close(self) -> None:
        self.connection.close()


def waiting_backends(table: str) -> list[int]:
    """Return the pids of sessions waiting for a lock on a table or its rows."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT DISTINCT waiting.pid FROM pg_locks waiting "
            "JOIN pg_stat_activity activity ON activity.pid = waiting.pid "
            "WHERE NOT waiting.granted AND activity.query ILIKE %s",
            [f"%{table}%"],
        )
        return [row[0] for row in cursor.fetchall()]


def backend_gone(pid: int) -> bool:
    with connection.cursor() as cursor:
        cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [pid])
        return cursor.fetchone()[0] == 0


def mail_files(tmp_path: Path) -> list[str]:
    """Return the messages the file email backend wrote, one string each.

    The backend writes every message sent over one connection to the same
    file, each followed by a line of 79 dashes, so one file may hold several.
    """
    separator = "\n" + "-" * 79 + "\n"
    messages: list[str] = []
    for path in sorted((tmp_path / "mail").glob("*.log")):
        parts = path.read_text().split(separator)
        messages.extend(part for part in parts if part.strip())
    return messages


def clear_broker() -> None:
    """Drop queued, unacknowledged and coalescing state of earlier runs.

    Messages left by an interrupted run refer to rows of a database that no
    longer exists, and Redis would hand them to these workers.
    """
    celery_app.control.purge()
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    client.delete("unacked", "unacked_index", "unacked_mutex")
    for key in client.scan_iter("nudgepath:changes:*"):
        client.delete(key)


def start_workers(tmp_path, started, names, **environment):
    """Start workers side by side, since each takes seconds to load Django."""
    new = [Worker(tmp_path, name, **environment) for name in names]
    started.extend(new)
    for worker in new:
        worker.wait_ready()
    return new


@pytest.fixture
def live_broker():
    if not celery_app.conf.broker_url.startswith("redis://"):
        pytest.skip("set CELERY_BROKER_URL to a Redis URL to run the worker tests")
    if connection.vendor != "postgresql":
        pytest.skip("the worker tests need DATABASE_URL to point at PostgreSQL")
    # The autouse eager_celery fixture restores the setting afterwards.
    celery_app.conf.task_always_eager = False
    clear_broker()
    yield
    clear_broker()


@pytest.fixture
def workers():
    started: list[Worker] = []
    yield started
    stop_workers(started)


def stop_workers(started):
    # Each warm shutdown waits for its worker; terminate all, then wait.
    for worker in started:
        if worker.process.poll() is None:
            worker.process.terminate()
    for worker in started:
        worker.stop()


@pytest.fixture
def locker():
    holder = Locker()
    yield holder
    holder.close()


pytestmark = [
    pytest.mark.worker,
    pytest.mark.usefixtures("live_broker"),
    # Workers read committed rows, so these tests commit.
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_worker_killed_while_evaluating(tmp_path, workers, locker):
    contact = make_contact(first_name="Ada")
    course = make_course()
    trigger = make_trigger(
        {"kind": "inactivity", "days": 10},
        enroll_course=course,
        email_template=make_template(),
    )
    pair = start_workers(tmp_path, workers, ["one", "two"], **QUICK_REDELIVERY)

    # The worker stops at its firing insert, inside the trigger's transaction.
    locker.lock_firing_inserts()
    task = tasks.evaluate_triggers.delay([trigger.pk], NOW.isoformat())
    wait_for(lambda: waiting_backends("triggers_firing"), "the insert", workers)
    [orphan] = waiting_backends("triggers_firing")
    [busy] = [worker for worker in pair if worker.received(task.id)]
    busy.kill()
    locker.release()
    wait_for(lambda: backend_gone(orphan), "the killed worker's session", [])

    # Its transaction rolled back: nothing half-written.
    assert not Firing.objects.exists()
    assert not Enrollment.objects.exists()
    assert not OutboxEmail.objects.exists()

    wait_for(
        lambda: OutboxEmail.objects.filter(status="sent").exists(),
        "the email",
        workers,
    )

    [other] = [worker for worker in pair if worker is not busy]
    assert other.received(task.id)
    assert Firing.objects.filter(trigger=trigger, contact=contact).count() == 1
    assert Enrollment.objects.filter(contact=contact, course=course).count() == 1
    email = OutboxEmail.objects.get()
    assert email.attempts == 1
    assert len(mail_files(tmp_path)) == 1
    # The killed attempt left a sweep that never finished; the second one did.
    sweeps = Sweep.objects.order_by("pk")
    assert [sweep.finished_at is None for sweep in sweeps] == [True, False]
    assert sweeps[1].fired == 1


def test_worker_killed_while_claiming(tmp_path, workers, locker):
    contact = make_contact(first_name="Grace")
    trigger = make_trigger(
        {"kind": "inactivity", "days": 10}, email_template=make_template()
    )
    run_sweep(NOW, triggers=[trigger], queue_email=False)
    email = OutboxEmail.objects.get()
    pair = start_workers(tmp_path, workers, ["one", "two"], **QUICK_REDELIVERY)

    # The claim locks the recipient's contact row before it marks the email
    # sending; holding that lock stops the worker inside the claim.
    locker.lock_contact(contact.pk)
    task = tasks.send_email.delay(email.pk)
    wait_for(lambda: waiting_backends("customers_contact"), "the claim", workers)
    [orphan] = waiting_backends("customers_contact")
    [busy] = [worker for worker in pair if worker.received(task.id)]
    busy.kill()
    locker.release()
    wait_for(lambda: backend_gone(orphan), "the killed worker's session", [])

    email.refresh_from_db()
    assert email.status == "pending"
    assert email.attempts == 0
    assert mail_files(tmp_path) == []

    wait_for(
        lambda: OutboxEmail.objects.filter(pk=email.pk, status="sent").exists(),
        "the email",
        workers,
    )

    email.refresh_from_db()
    assert email.attempts == 1
    [message] = mail_files(tmp_path)
    assert f"Message-ID: {email.message_id}" in message


def test_two_sweeps_at_once_fire_once(tmp_path, workers, locker):
    contacts = [make_contact() for _ in range(3)]
    course = make_course()
    trigger = make_trigger(
        {"kind": "inactivity", "days": 10},
        enroll_course=course,
        email_template=make_template(),
    )
    start_workers(tmp_path, workers, ["left", "right"])

    # Two beat ticks for the same instant; both evaluations reach the
    # insert, and the lock lets them go on together.
    locker.lock_firing_inserts()
    tasks.run_sweep.delay(NOW.isoformat())
    tasks.run_sweep.delay(NOW.isoformat())
    wait_for(
        lambda: len(waiting_backends("triggers_firing")) == 2,
        "both evaluations at the insert",
        workers,
    )
    locker.release()
    wait_for(
        lambda: (
            OutboxEmail.objects.filter(status="sent").count() == 3
            and len(mail_files(tmp_path)) == 3
        ),
        "three emails",
        workers,
    )
    # Give a duplicate, if any, the time to appear.
    time.sleep(1)

    firings = Firing.objects.filter(trigger=trigger)
    assert sorted(firings.values_list("contact_id", flat=True)) == [
        contact.pk for contact in contacts
    ]
    assert Enrollment.objects.filter(course=course).count() == 3
    assert OutboxEmail.objects.count() == 3
    assert set(OutboxEmail.objects.values_list("attempts", flat=True)) == {1}
    assert len(mail_files(tmp_path)) == 3
    # One sweep inserted all three firings; the other found them taken.
    assert sorted(Sweep.objects.values_list("fired", flat=True)) == [0, 3]
