"""Time the event path: from a usage event's commit to its enrollment's commit.

One `celery worker` (solo pool, one task at a time) runs against Redis and
the benchmark database. Events are recorded one after another, each for a
contact of its own account, and each matches a trigger that enrolls the
contact in a course. The clock starts when the event's transaction commits
and stops when this process first reads the committed enrollment, polling
every few milliseconds.
"""

import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import redis
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from courses.models import Course, Enrollment
from customers.models import Account, Contact, UsageEvent
from customers.services import record_usage_event
from triggers.models import Trigger
from triggers.services import seed_demo_program

ACCOUNTS = 200
CONTACTS_PER_ACCOUNT = 10
BACKGROUND_EVENTS = 20_000
MEASURED_EVENTS = 50
WARM_UP_EVENTS = 3
POLL_SECONDS = 0.005
WORKER_START_SECONDS = 60
ENROLLMENT_WAIT_SECONDS = 30

# Target: an event's enrollment is committed within 2 seconds (p95).
LIMIT_SECONDS = 2.0

EVENT_NAME = "Report Exported"
WORKER_NAME = f"bench-events-{os.getpid()}@{socket.gethostname()}"


def build_population(seed: int = 11) -> list[Contact]:
    """Create accounts, contacts, background usage and the demo triggers.

    Returns one contact per account, in the order their events are recorded.
    """
    generator = random.Random(seed)
    accounts = Account.objects.bulk_create(
        Account(
            external_id=f"EV-{number}",
            name=f"Event bench account {number}",
            signup_date=date(2024, 1, 1),
            seats=CONTACTS_PER_ACCOUNT,
        )
        for number in range(ACCOUNTS)
    )
    joined = datetime(2024, 1, 1, tzinfo=UTC)
    contacts = Contact.objects.bulk_create(
        Contact(
            account=account,
            external_id=f"{account.external_id}-{number}",
            email=f"u{number}@{account.external_id.lower()}.example",
            first_name="Bench",
            added_at=joined,
        )
        for account in accounts
        for number in range(CONTACTS_PER_ACCOUNT)
    )
    now = timezone.now()
    UsageEvent.objects.bulk_create(
        (
            UsageEvent(
                account_id=contact.account_id,
                contact=contact,
                name="Feature Used",
                feature=f"feature_{generator.randrange(40)}",
                occurred_at=now - timedelta(minutes=generator.randrange(60 * 24 * 90)),
            )
            for contact in (
                contacts[generator.randrange(len(contacts))]
                for _ in range(BACKGROUND_EVENTS)
            )
        ),
        batch_size=5_000,
    )

    # The demo triggers are active too, so the event path has to pick the
    # ones that read usage among them.
    seed_demo_program()
    course = Course.objects.create(slug="report-exports", title="Report exports")
    trigger = Trigger(
        slug="first-export-course",
        name="Course after the first report export",
        subject_type="contact",
        condition={
            "kind": "event_count",
            "event": EVENT_NAME,
            "days": 1,
            "op": ">=",
            "value": 1,
        },
        occurrence="once",
        enroll_course=course,
    )
    trigger.full_clean()
    trigger.save()
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return [contacts[number * CONTACTS_PER_ACCOUNT] for number in range(ACCOUNTS)]


def start_worker(
    log_path: Path,
    mail_dir: Path,
    pool: tuple[str, ...] = ("--pool=solo",),
    name: str = WORKER_NAME,
) -> subprocess.Popen[bytes]:
    """Start a celery worker on the benchmark database; pool gives its pool options."""
    db = connection.settings_dict
    credentials = quote(db["USER"] or "postgres")
    if db["PASSWORD"]:
        credentials += ":" + quote(db["PASSWORD"])
    env = {
        **os.environ,
        "DATABASE_URL": (
            f"postgres://{credentials}@{db['HOST']}:{db['PORT']}/{quote(db['NAME'])}"
        ),
        "CELERY_BROKER_URL": settings.CELERY_BROKER_URL,
        "CELERY_TASK_ALWAYS_EAGER": "false",
        "EMAIL_FILE_PATH": str(mail_dir),
        "PYTHONUNBUFFERED": "1",
    }
    celery = Path(sys.executable).with_name("celery")
    command = [
        str(celery),
        "-A",
        "config",
        "worker",
        *pool,
        "--hostname",
        name,
        "--without-gossip",
        "--without-mingle",
        "--without-heartbeat",
        "--loglevel",
        "WARNING",
    ]
    with open(log_path, "wb") as log:
        worker = subprocess.Popen(
            command,
            cwd=settings.BASE_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return worker


def wait_until_ready(
    worker: subprocess.Popen[bytes], log_path: Path, name: str = WORKER_NAME
) -> None:
    from config.celery import app

    deadline = time.monotonic() + WORKER_START_SECONDS
    while time.monotonic() < deadline:
        if worker.poll() is not None:
            raise RuntimeError(
                f"worker exited before it was ready; its log:\n{log_path.read_text()}"
            )
        # Only this worker: another one on the same broker would respond too.
        if app.control.ping(destination=[name], timeout=0.5):
            return
    raise RuntimeError(
        f"worker did not respond to a ping within {WORKER_START_SECONDS} s; "
        f"see {log_path}"
    )


def event_to_enrollment(contact: Contact, course_id: int) -> float:
    """Record one matching event; return seconds from its commit to the enrollment's."""
    committed: list[float] = []
    with transaction.atomic():
        # Registered before the event path's own callback, so the clock
        # starts at the commit, before the change is handed on.
        transaction.on_commit(lambda: committed.append(time.perf_counter()))
        record_usage_event(contact, EVENT_NAME, timezone.now())

    enrolled = Enrollment.objects.filter(contact=contact, course_id=course_id)
    deadline = committed[0] + ENROLLMENT_WAIT_SECONDS
    while time.perf_counter() < deadline:
        if enrolled.exists():
            return time.perf_counter() - committed[0]
        time.sleep(POLL_SECONDS)
    raise RuntimeError(
        f"no enrollment for contact {contact.pk} after {ENROLLMENT_WAIT_SECONDS} s"
    )


def run() -> int:
    if not settings.CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
        print("The events benchmark needs CELERY_BROKER_URL to point at Redis.")
        return 1
    from config.celery import app

    # Queue over Redis, as in production, not in this process.
    app.conf.task_always_eager = False
    app.control.purge()
    # Coalescing state of an earlier run would hold back these accounts.
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    for key in client.scan_iter("nudgepath:changes:*"):
        client.delete(key)

    started = time.perf_counter()
    contacts = build_population()
    course_id = Course.objects.get(slug="report-exports").pk
    print(
        f"Population: {ACCOUNTS} accounts, {ACCOUNTS * CONTACTS_PER_ACCOUNT} "
        f"contacts, {BACKGROUND_EVENTS} usage events, "
        f"{Trigger.objects.filter(is_active=True).count()} active triggers "
        f"(built in {time.perf_counter() - started:.1f} s)"
    )

    with tempfile.TemporaryDirectory(prefix="bench-events-") as folder:
        log_path = Path(folder) / "worker.log"
        worker = start_worker(log_path, Path(folder) / "mail")
        try:
            wait_until_ready(worker, log_path)
            for contact in contacts[:WARM_UP_EVENTS]:
                event_to_enrollment(contact, course_id)
            measured = contacts[WARM_UP_EVENTS : WARM_UP_EVENTS + MEASURED_EVENTS]
            latencies = [
                event_to_enrollment(contact, course_id) for contact in measured
            ]
        finally:
            worker.terminate()
            worker.wait(timeout=30)
            app.control.purge()

    p95 = statistics.quantiles(latencies, n=20)[-1]
    print(
        f"{MEASURED_EVENTS} events, one worker: median "
        f"{statistics.median(latencies):.3f} s, max {max(latencies):.3f} s"
    )
    print(f"{'measure':<44} {'p95 s':>8} {'limit s':>8} {'ratio':>6}")
    ratio = p95 / LIMIT_SECONDS
    print(
        f"{'event commit to enrollment commit':<44} {p95:>8.3f} "
        f"{LIMIT_SECONDS:>8.1f} {ratio:>6.2f}"
    )
    return 0 if ratio <= 1.0 else 1
