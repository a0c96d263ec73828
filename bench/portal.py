"""Time the learner portal under gunicorn: the lesson page and the heartbeat.

gunicorn serves the benchmark database in a child process, as in
production, with DEBUG off. wrk, an HTTP load generator written in C,
keeps CLIENTS connections busy for DURATION_SECONDS against each of:

- a bare Django view, which returns "ok" through the same middleware
  (sessions, authentication, CSRF), so the ratios show what the portal
  adds to what any Django page costs here;
- the lesson page of signed-in learners, rotating over learners and
  lessons, with the 95th percentile latency against LESSON_P95_LIMIT_MS;
- the progress heartbeat, posted with a growing sequence number per page
  view as the page sends it, with the rate against HEARTBEAT_RATE_LIMIT.

The load generator runs on the same two cores as the server and the
database, so the figures include its share of the machine. A run with
any error response fails.
"""

import itertools
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import requests as http
from django.conf import settings
from django.db import connection, transaction
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django.utils.crypto import get_random_string

from bench.cpu import cpu_ticks, milliseconds_per_request
from bench.servers import free_port, start_server, stop_server, wait_until_ready
from courses.models import (
    Course,
    Enrollment,
    Lesson,
    LessonProgress,
    Module,
)
from courses.portal_session import CONTACT_ID_SESSION_KEY
from courses.services import enroll, portal_user_for, record_lesson_view
from customers.models import Account, Contact

LESSON_P95_LIMIT_MS = 50.0
HEARTBEAT_RATE_LIMIT = 1000.0
CLIENTS = 32
DURATION_SECONDS = 15
WARM_UP_SECONDS = 3
# Sync workers, one request each at a time: one per core and one more.
# gunicorn's documentation suggests starting from two per core and one
# more, so that one worker per core computes while another waits on its
# socket. These workers rarely wait, and they share the cores with
# PostgreSQL, Redis and wrk: five workers on two cores served about 13%
# fewer lesson pages than three or four, and used more CPU time per page.
# NUDGEPATH_BENCH_WORKERS sets another number, to compare.
WORKERS = int(os.environ.get("NUDGEPATH_BENCH_WORKERS", str((os.cpu_count() or 1) + 1)))

COURSES = 20
MODULES_PER_COURSE = 3
LESSONS_PER_MODULE = 5
ACCOUNTS = 500
CONTACTS_PER_ACCOUNT = 10
COURSES_PER_CONTACT = 4
LEARNERS = 64

LESSON_BODY = (
    "## What this lesson covers\n\n"
    "Reports show how each team uses the product. This lesson walks "
    "through **saved views**, *filters* and exports.\n\n"
    "1. Open the report.\n2. Pick a filter.\n3. Save the view.\n\n"
) * 8


@dataclass(frozen=True)
class Load:
    """The request count, errors and latencies wrk measured in one run."""

    requests: int
    errors: int
    seconds: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    # CPU milliseconds per request of each group of processes (bench.cpu).
    cpu_ms: dict[str, float]

    @property
    def rate(self) -> float:
        return self.requests / self.seconds


def run() -> int:
    if subprocess.run(["which", "wrk"], capture_output=True).returncode != 0:
        print("wrk is not installed; install it with: apt-get install wrk")
        return 1

    # The server checks each session against a hash made with the secret key,
    # so the sessions are made with the key the server gets.
    secret_key = get_random_string(64)
    courses = build_catalogue()
    with override_settings(SECRET_KEY=secret_key):
        learners = build_learners(courses[0])
    build_background(courses)
    # A production database has planner statistics, which autovacuum keeps;
    # without them PostgreSQL guesses one row per table and picks poor plans
    # for the heartbeat's and the lesson page's joins.
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    print(
        f"{Course.objects.count()} courses, {Lesson.objects.count():,} lessons, "
        f"{Contact.objects.count():,} contacts, "
        f"{Enrollment.objects.count():,} enrollments, "
        f"{LessonProgress.objects.count():,} lesson progress rows; "
        f"{LEARNERS} signed-in learners; gunicorn with {WORKERS} sync workers; "
        f"wrk with {CLIENTS} connections for {DURATION_SECONDS} s each"
    )

    with tempfile.TemporaryDirectory(prefix="bench-portal-") as folder:
        return measure(Path(folder), courses[0], learners, secret_key)


def measure(
    folder: Path, course: Course, learners: list["Learner"], secret_key: str
) -> int:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = folder / "gunicorn.log"
    server = start_server(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            str(WORKERS),
            "--worker-class",
            "sync",
            "--log-level",
            "warning",
            # Every gunicorn shares one control socket path by default.
            "--no-control-socket",
            "config.wsgi:application",
        ],
        log,
        DJANGO_SETTINGS_MODULE="bench.portal_settings",
        DJANGO_SECRET_KEY=secret_key,
    )
    try:
        wait_until_ready(server, url, log)
        lessons = list(Lesson.objects.filter(module__course=course).order_by("pk"))
        bare_get = [Request("GET", "/bench/bare/", learner) for learner in learners]
        # Lesson-major order, so the requests in flight at once come from
        # different learners, as 32 clients would: one learner's requests
        # for 15 lessons at once would wait on each other's enrollment lock.
        pages = [
            Request("GET", lesson_path(course, lesson), learner)
            for lesson, learner in itertools.product(lessons, learners)
        ]
        bare_post = [Request("POST", "/bench/bare/", learner) for learner in learners]
        beats = [
            Request("POST", heartbeat_path(course, lesson), learner, beat=lesson.pk)
            for lesson, learner in itertools.product(lessons, learners)
        ]

        # Every learner has opened every lesson once, so the timed views are
        # repeat views. A first view takes the locked path and costs more;
        # it happens once per learner and lesson.
        open_page_views(learners, course, lessons)
        run_wrk(url, folder, "warm-up", pages, server.pid, WARM_UP_SECONDS)
        bare = run_wrk(url, folder, "bare-get", bare_get, server.pid)
        page = run_wrk(url, folder, "lesson", pages, server.pid)
        open_page_views(learners, course, lessons)
        bare_posts = run_wrk(url, folder, "bare-post", bare_post, server.pid)
        heartbeat = run_wrk(url, folder, "heartbeat", beats, server.pid)
    finally:
        stop_server(server)

    return report(bare, page, bare_posts, heartbeat)


def report(bare: Load, page: Load, bare_posts: Load, heartbeat: Load) -> int:
    print(f"{'':<28} {'requests':>9} {'per s':>8} {'p50 ms':>7} {'p95 ms':>7}")
    runs = (
        ("bare view, GET", bare),
        ("lesson page", page),
        ("bare view, POST", bare_posts),
        ("heartbeat", heartbeat),
    )
    for name, load in runs:
        print(
            f"{name:<28} {load.requests:>9,} {load.rate:>8.0f} "
            f"{load.p50_ms:>7.1f} {load.p95_ms:>7.1f}"
        )
    print("CPU ms per request (gunicorn's processes as server):")
    for name, load in runs:
        spent = ", ".join(f"{group} {ms:.2f}" for group, ms in load.cpu_ms.items())
        print(f"  {name:<26} {spent}; {sum(load.cpu_ms.values()):.2f} in all")

    page_ratio = page.p95_ms / LESSON_P95_LIMIT_MS
    beat_ratio = HEARTBEAT_RATE_LIMIT / heartbeat.rate
    print(
        f"lesson page p95 {page.p95_ms:.1f} ms against {LESSON_P95_LIMIT_MS:.0f} ms: "
        f"ratio {page_ratio:.2f}; {page.p95_ms / bare.p95_ms:.2f} times the bare "
        f"view's p95 ({bare.p95_ms:.1f} ms)"
    )
    print(
        f"heartbeat {heartbeat.rate:.0f} requests/s against at least "
        f"{HEARTBEAT_RATE_LIMIT:.0f}: ratio {beat_ratio:.2f}; "
        f"{heartbeat.rate / bare_posts.rate:.2f} of the bare view's POST rate "
        f"({bare_posts.rate:.0f}/s)"
    )

    errors = sum(load.errors for load in (bare, page, bare_posts, heartbeat))
    if errors:
        print(f"{errors} requests failed; see the gunicorn log")
        return 1
    return 0 if max(page_ratio, beat_ratio) <= 1.0 else 1


# --- Data ---------------------------------------------------------------------


def build_catalogue() -> list[Course]:
    """Create published courses of modules of Markdown lessons."""
    courses = Course.objects.bulk_create(
        Course(
            slug=f"portal-bench-{number}",
            title=f"Portal bench course {number}",
            is_published=True,
        )
        for number in range(1, COURSES + 1)
    )
    modules = Module.objects.bulk_create(
        Module(course=course, title=f"Module {order}", order=order)
        for course in courses
        for order in range(1, MODULES_PER_COURSE + 1)
    )
    Lesson.objects.bulk_create(
        Lesson(
            module=module,
            title=f"Lesson {module.order}.{order}",
            body=LESSON_BODY,
            order=order,
        )
        for module in modules
        for order in range(1, LESSONS_PER_MODULE + 1)
    )
    return courses


@dataclass(frozen=True)
class Learner:
    contact_id: int
    session: str
    csrf: str


def build_learners(course: Course) -> list[Learner]:
    """Sign in LEARNERS contacts enrolled in course; return their cookies."""
    account = Account.objects.create(
        external_id="PORTAL-LEARNERS",
        name="Portal bench learners",
        signup_date=date(2024, 1, 1),
    )
    learners = []
    for number in range(LEARNERS):
        contact = Contact.objects.create(
            account=account,
            external_id=f"PORTAL-L{number}",
            email=f"learner{number}@portal-bench.example",
            added_at=timezone.now() - timedelta(days=30),
        )
        enroll(contact, course)
        with transaction.atomic():
            user = portal_user_for(contact)
        client = Client()
        client.force_login(user)
        # As the sign-in link does, so heartbeats find the contact id.
        session = client.session
        session[CONTACT_ID_SESSION_KEY] = contact.pk
        session.save()
        learners.append(
            Learner(
                contact_id=contact.pk,
                session=client.cookies[settings.SESSION_COOKIE_NAME].value,
                # Any 32 letters and digits pass as a CSRF cookie and token.
                csrf=get_random_string(32),
            )
        )
    return learners


def build_background(courses: list[Course], seed: int = 3) -> None:
    """Create other learners' enrollments and progress, which no page reads."""
    generator = random.Random(seed)
    accounts = Account.objects.bulk_create(
        Account(
            external_id=f"PORTAL-{number}",
            name=f"Portal bench account {number}",
            signup_date=date(2024, 1, 1),
        )
        for number in range(ACCOUNTS)
    )
    contacts = Contact.objects.bulk_create(
        Contact(
            account=account,
            external_id=f"PORTAL-{account.pk}-{number}",
            email=f"c{account.pk}-{number}@portal-bench.example",
            added_at=timezone.now() - timedelta(days=200),
        )
        for account in accounts
        for number in range(CONTACTS_PER_ACCOUNT)
    )
    enrollments = Enrollment.objects.bulk_create(
        Enrollment(contact=contact, course=course, enrolled_at=timezone.now())
        for contact in contacts
        for course in generator.sample(courses, COURSES_PER_CONTACT)
    )
    lessons: dict[int, list[int]] = {}
    for lesson_id, course_id in Lesson.objects.values_list("pk", "module__course"):
        lessons.setdefault(course_id, []).append(lesson_id)
    LessonProgress.objects.bulk_create(
        (
            LessonProgress(
                enrollment=enrollment,
                lesson_id=lesson_id,
                started_at=enrollment.enrolled_at,
            )
            for enrollment in enrollments
            for lesson_id in lessons[enrollment.course_id][: generator.randint(1, 15)]
        ),
        batch_size=5000,
    )


def open_page_views(
    learners: list[Learner], course: Course, lessons: list[Lesson]
) -> None:
    """Open every lesson once more for every learner, as the page would.

    A heartbeat counts only for the latest page view, and the lesson page
    run may not have reached every pair of learner and lesson.
    """
    enrollments = Enrollment.objects.filter(
        course=course, contact_id__in=[learner.contact_id for learner in learners]
    )
    for enrollment in enrollments:
        for lesson in lessons:
            record_lesson_view(enrollment, lesson)
    # Each page view and heartbeat rewrites a progress row. In production
    # autovacuum clears the old versions. Where it is off, as on some test
    # servers, the versions left by one run would slow the next.
    with connection.cursor() as cursor:
        cursor.execute(f"VACUUM ANALYZE {LessonProgress._meta.db_table}")


# --- Load ---------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    learner: Learner
    # For a heartbeat, the lesson's id; its page view number is read from
    # the learner's progress just before the run.
    beat: int | None = None


def lesson_path(course: Course, lesson: Lesson) -> str:
    return reverse("portal:lesson", args=[course.slug, lesson.pk])


def heartbeat_path(course: Course, lesson: Lesson) -> str:
    return reverse("portal:heartbeat", args=[course.slug, lesson.pk])


def run_wrk(
    url: str,
    folder: Path,
    name: str,
    requests: list[Request],
    server_pid: int,
    seconds: int = DURATION_SECONDS,
) -> Load:
    check_first(url, requests[0])
    script = folder / f"{name}.lua"
    script.write_text(lua_script(requests))
    cpu_before = cpu_ticks(server_pid)
    # wrk is waited for, so its CPU time joins this process's children's.
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    finished = subprocess.run(
        [
            "wrk",
            "--threads",
            "2",
            "--connections",
            str(CLIENTS),
            "--duration",
            f"{seconds}s",
            "--timeout",
            "10s",
            "--script",
            str(script),
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    line = next(
        line for line in finished.stdout.splitlines() if line.startswith("RESULT ")
    )
    requests_done, errors, micros, p50, p95, p99 = line.split()[1:]
    cpu_ms = milliseconds_per_request(
        cpu_before, cpu_ticks(server_pid), int(requests_done)
    )
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_seconds = (children.ru_utime + children.ru_stime) - (
        children_before.ru_utime + children_before.ru_stime
    )
    cpu_ms["wrk"] = wrk_seconds * 1000 / max(1, int(requests_done))
    if int(errors):
        show_failure(url, requests[-1])
    return Load(
        requests=int(requests_done),
        errors=int(errors),
        seconds=int(micros) / 1e6,
        p50_ms=float(p50) / 1000,
        p95_ms=float(p95) / 1000,
        p99_ms=float(p99) / 1000,
        cpu_ms=cpu_ms,
    )


def check_first(url: str, request: Request) -> None:
    """Raise unless the first request of a run returns 200.

    wrk counts only 4xx and 5xx responses as errors, so a lost session, which
    redirects to the sign-in page, would otherwise be timed as a page.
    """
    learner = request.learner
    response = http.request(
        request.method,
        url + request.path,
        cookies={
            settings.SESSION_COOKIE_NAME: learner.session,
            settings.CSRF_COOKIE_NAME: learner.csrf,
        },
        headers={"X-CSRFToken": learner.csrf},
        data={"view": "1", "sequence": "1", "active_seconds": "1"},
        allow_redirects=False,
        timeout=30,
    )
    if response.status_code != 200:
        raise RuntimeError(
            f"{request.method} {request.path} returned HTTP "
            f"{response.status_code}, not 200: {response.text[:300]!r}"
        )


def show_failure(url: str, request: Request) -> None:
    """Send one of the failing requests again and print the server's response."""
    learner = request.learner
    response = http.request(
        request.method,
        url + request.path,
        cookies={
            settings.SESSION_COOKIE_NAME: learner.session,
            settings.CSRF_COOKIE_NAME: learner.csrf,
        },
        headers={"X-CSRFToken": learner.csrf},
        data={"view": "1", "sequence": "1", "active_seconds": "15"},
        timeout=30,
    )
    print(
        f"{request.method} {request.path} failed, for example: HTTP "
        f"{response.status_code} {response.text[:300]!r}"
    )


def lua_script(requests: list[Request]) -> str:
    """Return a wrk script that sends the requests in turn, split by thread.

    Each wrk thread takes every other request, so a page view's heartbeats
    come from one thread, whose counter gives them growing sequence numbers.
    """
    views = page_views([request for request in requests if request.beat])
    entries = []
    for request in requests:
        headers = {
            "Cookie": (
                f"{settings.SESSION_COOKIE_NAME}={request.learner.session}; "
                f"{settings.CSRF_COOKIE_NAME}={request.learner.csrf}"
            ),
        }
        if request.method == "POST":
            headers["X-CSRFToken"] = request.learner.csrf
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        view = views.get((request.learner.contact_id, request.beat), 0)
        entries.append(
            "{"
            f"method={json.dumps(request.method)}, path={json.dumps(request.path)}, "
            f"headers={lua_table(headers)}, view={view}"
            "}"
        )
    return LUA_TEMPLATE.replace("ENTRIES", ",\n".join(entries))


def page_views(beats: list[Request]) -> dict[tuple[int, int | None], int]:
    """Return (contact id, lesson id) -> the latest page view's number."""
    if not beats:
        return {}
    rows = LessonProgress.objects.filter(
        enrollment__contact_id__in={beat.learner.contact_id for beat in beats},
        lesson_id__in={beat.beat for beat in beats},
    ).values_list("enrollment__contact_id", "lesson_id", "views")
    return {(contact, lesson): views for contact, lesson, views in rows}


def lua_table(values: dict[str, str]) -> str:
    # A JSON string is a valid Lua string for the ASCII text used here.
    pairs = (f"[{json.dumps(k)}]={json.dumps(v)}" for k, v in values.items())
    return "{" + ", ".join(pairs) + "}"


LUA_TEMPLATE = """
local all = {
ENTRIES
}
local mine = {}
local index = 0
local sequence = 0

function setup(thread)
  thread:set("offset", setup_count or 0)
  setup_count = (setup_count or 0) + 1
end

function init(args)
  for i = 1 + offset, #all, 2 do
    table.insert(mine, all[i])
  end
end

function request()
  index = index % #mine + 1
  local entry = mine[index]
  local body = nil
  if entry.view > 0 then
    if index == 1 then
      sequence = sequence + 1
    end
    body = "view=" .. entry.view .. "&sequence=" .. sequence .. "&active_seconds=15"
  end
  return wrk.format(entry.method, entry.path, entry.headers, body)
end

function done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format("RESULT %d %d %d %d %d %d\\n",
    summary.requests,
    errors.connect + errors.read + errors.write + errors.status + errors.timeout,
    summary.duration,
    latency:percentile(50), latency:percentile(95), latency:percentile(99)))
end
"""
