"""Portal search and the champion's team page at scale (python -m bench search).

Builds 200 published courses of 50 lessons each (10,000 lessons of about
120 words), one learner enrolled in 100 of them with the other 100 in
the catalogue, and one account of 300 contacts with 5 enrollments each.
Then times search_portal for a few queries and team_overview for the
account's champion, each 15 times after one untimed call, and reports
the 95th percentile against its limit. Every timed call must also run
its fixed number of queries.
"""

import random
import statistics
import time
from collections.abc import Callable
from functools import partial

from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from courses.models import Course, Enrollment, Lesson, Module
from courses.search import search_portal
from courses.team import team_overview
from customers.models import Account, Contact

COURSES = 200
LESSONS_PER_COURSE = 50
WORDS_PER_LESSON = 120
TEAM_SIZE = 300
COURSES_PER_MEMBER = 5
RUNS = 15

SEARCH_LIMIT_SECONDS = 0.3
TEAM_LIMIT_SECONDS = 0.5
SEARCH_MAX_QUERIES = 6
TEAM_MAX_QUERIES = 6

VOCABULARY = [
    "report",
    "dashboard",
    "invite",
    "team",
    "export",
    "billing",
    "workspace",
    "settings",
    "admin",
    "permission",
    "chart",
    "filter",
    "schedule",
    "alert",
    "integration",
    "import",
    "audit",
    "role",
    "template",
    "share",
    "comment",
    "notification",
    "calendar",
    "sync",
    "project",
    "goal",
    "metric",
]
QUERIES = ("dashboard", "export reports", "audit role permissions", "zebra")


def run() -> int:
    rng = random.Random(7)
    learner, champion = build(rng)

    worst = 0.0
    for query in QUERIES:
        seconds = measure(partial(search_portal, learner, query), SEARCH_MAX_QUERIES)
        worst = max(worst, report(f"search {query!r}", seconds, SEARCH_LIMIT_SECONDS))
    seconds = measure(lambda: team_overview(champion), TEAM_MAX_QUERIES)
    worst = max(worst, report("team page data", seconds, TEAM_LIMIT_SECONDS))
    return 1 if worst > 1 else 0


def build(rng: random.Random) -> tuple[Contact, Contact]:
    now = timezone.now()
    courses = Course.objects.bulk_create(
        Course(
            slug=f"bench-course-{number}",
            title=f"{rng.choice(VOCABULARY).title()} course {number}",
            summary=" ".join(rng.choices(VOCABULARY, k=20)),
            in_catalogue=number % 2 == 1,
        )
        for number in range(COURSES)
    )
    modules = Module.objects.bulk_create(
        Module(course=course, title="Module", order=1) for course in courses
    )
    Lesson.objects.bulk_create(
        (
            Lesson(
                module=module,
                title=" ".join(rng.choices(VOCABULARY, k=4)),
                body=" ".join(rng.choices(VOCABULARY, k=WORDS_PER_LESSON)),
                order=order,
            )
            for module in modules
            for order in range(LESSONS_PER_COURSE)
        ),
        batch_size=2000,
    )

    account = Account.objects.create(
        external_id="A-bench", name="Bench", signup_date=now.date()
    )
    contacts = Contact.objects.bulk_create(
        Contact(
            account=account,
            external_id=f"C-bench-{number}",
            email=f"bench{number}@example.com",
            first_name=f"Member{number}",
            is_champion=number == 0,
            added_at=now,
        )
        for number in range(TEAM_SIZE)
    )
    learner, champion = contacts[1], contacts[0]
    pairs = {(learner.pk, course.pk) for course in courses[::2]}
    for contact in contacts:
        for course in rng.sample(courses, COURSES_PER_MEMBER):
            pairs.add((contact.pk, course.pk))
    Enrollment.objects.bulk_create(
        (
            Enrollment(
                contact_id=contact_id,
                course_id=course_id,
                source="manual",
                enrolled_at=now,
            )
            for contact_id, course_id in pairs
        ),
        batch_size=2000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")
    return learner, champion


def measure(call: Callable[[], object], max_queries: int) -> list[float]:
    # One untimed call first: the first reverse() in a process imports the
    # URLconf, about 0.36 s, which a server does before its first request.
    call()
    seconds = []
    for _ in range(RUNS):
        with CaptureQueriesContext(connection) as queries:
            started = time.perf_counter()
            call()
            seconds.append(time.perf_counter() - started)
        if len(queries) > max_queries:
            raise AssertionError(f"{len(queries)} queries, more than {max_queries}")
    return seconds


def report(label: str, seconds: list[float], limit: float) -> float:
    p95 = statistics.quantiles(seconds, n=20)[-1]
    ratio = p95 / limit
    print(f"{label}: p95 {p95:.3f} s, limit {limit} s, ratio {ratio:.2f}")
    return ratio
