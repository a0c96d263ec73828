"""Two real beat processes send every sweep twice, and nothing fires twice.

django-celery-beat's DatabaseScheduler takes no lock. Each beat process
keeps its own copy of the schedule in memory and sends each due task
itself. This test starts two `celery beat` processes on one database
schedule, with the trigger sweep due every second, and two workers, all
against Redis and the test database.
"""

import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest
import redis
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from config.celery import app as celery_app
from courses.models import Enrollment
from tests.factories import make_contact
from tests.triggers.factories import make_course, make_template, make_trigger
from tests.triggers.test_exactly_once import (
    CELERY,
    READY_SECONDS,
    live_broker,  # noqa: F401  (a fixture used by this module)
    mail_files,
    start_workers,
    stop_workers,
    wait_for,
    workers,  # noqa: F401  (a fixture used by this module)
)
from tests.triggers.test_worker import worker_database_url
from triggers.models import Firing, OutboxEmail, Sweep

SWEEP_TASK = "trigger-sweep"
# What celery beat logs each time it sends a due task (celery 5).
SENT_LINE = f"Sending due task {SWEEP_TASK} "
# Each beat must send at least this many sweeps. Three, so that at least two
# of each reach the broker even when a beat is stopped between logging a
# send and sending it.
SENDS_PER_BEAT = 3


class Beat:
    """A `celery beat` subprocess with its own log, pid file and schedule file.

    It has the attributes wait_for() reads from a worker: process, killed
    and log().
    """

    def __init__(self, tmp_path: Path, name: str) -> None:
        self.name = name
        self.log_path = tmp_path / f"beat-{name}.log"
        self.killed = False
        env = {
            **os.environ,
            "DATABASE_URL": worker_database_url(),
            "CELERY_BROKER_URL": celery_app.conf.broker_url,
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "PYTHONUNBUFFERED": "1",
        }
        # Separate pid and schedule files, so nothing on this host stops the
        # second beat. DatabaseScheduler keeps the schedule in the database.
        command = [
            str(CELERY),
            "-A",
            "config",
            "beat",
            "--scheduler",
            "django_celery_beat.schedulers:DatabaseScheduler",
            "--pidfile",
            str(tmp_path / f"beat-{name}.pid"),
            "--schedule",
            str(tmp_path / f"beat-{name}-schedule"),
            "--max-interval",
            "1",
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

    def sweeps_sent(self) -> int:
        return self.log().count(SENT_LINE)

    def stop(self) -> None:
        if self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def sweep_every_second() -> None:
    """Make the trigger sweep due every second and switch the other entries off.

    Beat reads this when it starts. The other periodic tasks would only add
    work that this test does not check.
    """
    every_second, _ = IntervalSchedule.objects.get_or_create(
        every=1, period=IntervalSchedule.SECONDS
    )
    PeriodicTask.objects.exclude(name=SWEEP_TASK).update(enabled=False)
    # The migration creates the entry, but a reused test database may have
    # lost it to an earlier test's flush.
    PeriodicTask.objects.update_or_create(
        name=SWEEP_TASK,
        defaults={
            "task": settings.NUDGEPATH_PERIODIC_TASKS[SWEEP_TASK]["task"],
            "interval": every_second,
            "enabled": True,
            "last_run_at": None,
        },
    )


def sweeps_run(processes) -> int:
    """Count the run_sweep tasks that the workers finished."""
    pattern = re.compile(r"Task triggers\.tasks\.run_sweep\[[^\]]+\] succeeded")
    return sum(len(pattern.findall(process.log())) for process in processes)


def broker_idle() -> bool:
    """Return whether no message is queued or being worked on."""
    client = redis.Redis.from_url(celery_app.conf.broker_url)
    queued = sum(
        client.llen(key)
        for key in client.scan_iter("celery*")
        if client.type(key) == b"list"
    )
    return queued == 0 and client.hlen("unacked") == 0


def settled(processes, triggers: int, pause: float = 0.5) -> bool:
    """Return whether all queued work is done, checked twice pause seconds apart.

    Each finished run_sweep queued one evaluation, and so one Sweep row, per
    active trigger.
    """
    for check in range(2):
        if check:
            time.sleep(pause)
        finished = Sweep.objects.filter(finished_at__isnull=False).count()
        done = (
            broker_idle()
            and finished == Sweep.objects.count() == triggers * sweeps_run(processes)
            and not OutboxEmail.objects.filter(status__in=["pending", "sending"])
        )
        if not done:
            return False
    return True


def first_names_in_subjects(messages: list[str], prefix: str) -> Counter[str]:
    """Count the email files by the first name that follows prefix in the subject."""
    pattern = re.compile(rf"^Subject: {re.escape(prefix)} (\S+)$", re.MULTILINE)
    names: Counter[str] = Counter()
    for message in messages:
        names.update(pattern.findall(message))
    return names


pytestmark = [
    pytest.mark.worker,
    pytest.mark.usefixtures("live_broker"),
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]


def test_two_beats_fire_once(tmp_path, workers):  # noqa: F811
    contacts = [make_contact() for _ in range(3)]
    course = make_course()
    welcome = make_trigger(
        {"kind": "inactivity", "days": 10},
        enroll_course=course,
        email_template=make_template(subject="Welcome {{ contact.first_name }}"),
    )
    daily = make_trigger(
        {"kind": "inactivity", "days": 10},
        occurrence="daily",
        email_template=make_template(subject="Daily {{ contact.first_name }}"),
    )
    sweep_every_second()

    beats: list[Beat] = []
    try:
        # Beats and workers load Django side by side; the beats' first
        # sweeps wait in Redis until a worker is ready.
        beats.extend(Beat(tmp_path, name) for name in ("one", "two"))
        start_workers(tmp_path, workers, ["left", "right"])
        wait_for(
            lambda: all(beat.sweeps_sent() >= SENDS_PER_BEAT for beat in beats),
            f"{SENDS_PER_BEAT} sweeps sent by each beat",
            [*beats, *workers],
            timeout=READY_SECONDS,
        )
        for beat in beats:
            beat.stop()
        # Nothing new is sent once the beats are gone, so the work is done
        # when the broker is idle and the evaluations of every sweep have
        # finished.
        wait_for(lambda: settled(workers, triggers=2), "all work", workers)
    finally:
        for beat in beats:
            beat.stop()
        stop_workers(workers)

    sends = [beat.sweeps_sent() for beat in beats]
    assert min(sends) >= SENDS_PER_BEAT, sends
    assert sweeps_run(workers) >= 2 * (SENDS_PER_BEAT - 1)

    # The once trigger: one firing, enrollment, sent email and file per contact.
    for contact in contacts:
        assert Firing.objects.filter(trigger=welcome, contact=contact).count() == 1
        assert Enrollment.objects.filter(contact=contact, course=course).count() == 1
        emails = OutboxEmail.objects.filter(firing__trigger=welcome, contact=contact)
        assert list(emails.values_list("status", "attempts")) == [("sent", 1)]

    # The daily trigger fires once per contact for each day the sweeps
    # covered, which is one day unless the test ran across midnight.
    instants = Sweep.objects.values_list("as_of", flat=True)
    days = {timezone.localdate(as_of) for as_of in instants}
    for contact in contacts:
        firings = Firing.objects.filter(trigger=daily, contact=contact)
        assert firings.count() == len(days)
        emails = OutboxEmail.objects.filter(firing__trigger=daily, contact=contact)
        assert set(emails.values_list("status", flat=True)) == {"sent"}
        assert emails.count() == len(days)

    # Each firing was inserted by one sweep, and the others found it taken.
    fired = sum(Sweep.objects.values_list("fired", flat=True))
    assert fired == Firing.objects.count()

    # Exactly one mail file per email sent.
    messages = mail_files(tmp_path)
    names = [contact.first_name for contact in contacts]
    assert first_names_in_subjects(messages, "Welcome") == Counter(names)
    assert first_names_in_subjects(messages, "Daily") == Counter(
        {name: len(days) for name in names}
    )
    assert len(messages) == len(contacts) * (1 + len(days))
