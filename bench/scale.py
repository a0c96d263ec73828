"""Time every condition kind and a 20-trigger sweep over 100,000 contacts.

The population is built in SQL (generate_series with a fixed seed), because
10 million usage events through the ORM would take far longer than the
measurements. For each case of bench.scale_cases, a condition written in
the text language, the compiled query's count over all contacts is timed
beside a hand-written SQL query for the same predicate, in the same run,
and the two counts must agree, which checks that the hand-written query
really is the same predicate. Every registered condition kind must have a
case. Then 20 triggers are swept twice: the first sweep writes the
firings, the second is the steady state that a scheduled sweep sees, and
that one is held to the limit.

NUDGEPATH_BENCH_SCALE (default 1.0) multiplies the number of accounts, and
with it of contacts, and of events, tickets and survey responses, so that
a run at 0.02 checks the cases in a minute. The limits are meant for 1.0.
"""

import os
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.db import connection

from bench.fanout import CONCURRENCY, time_fanned_out_sweeps
from bench.scale_cases import (
    ADVANCED,
    FINAL_QUIZ,
    KIND_CASES,
    ONBOARDING,
    SWEEP_TRIGGERS,
)
from conditions import EvaluationContext, compile_condition, kinds, parse_condition
from courses.models import Course, LessonKind
from courses.services import LessonSpec, ModuleSpec, ensure_course
from customers.services import subjects_as_of
from customers.usage import drop_triggers, install_triggers, rebuild_usage_days
from triggers.models import SubjectType, Trigger
from triggers.services import run_sweep


def _scale_from_environment() -> float:
    raw = os.environ.get("NUDGEPATH_BENCH_SCALE", "1.0")
    try:
        scale = float(raw)
    except ValueError:
        scale = 0.0
    if not scale > 0:
        raise SystemExit(
            f"NUDGEPATH_BENCH_SCALE={raw!r} is invalid; set a positive number "
            "such as 0.02 for a quick check or 1.0 for the recorded size"
        )
    return scale


SCALE = _scale_from_environment()
# Accounts have 10 to 30 contacts (20 on average), so that the number of
# contacts differs between accounts.
ACCOUNTS = max(21, round(5_000 * SCALE))
EVENTS = round(10_000_000 * SCALE)
TICKETS = round(200_000 * SCALE)
SURVEYS = round(100_000 * SCALE)
HEALTH_DAYS = 60
AS_OF = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
# Each query of a kind's pair runs this many times; the ratio compares medians.
REPEATS = 9

# A compiled query may take at most this multiple of the hand-written one.
KIND_RATIO_LIMIT = 1.5
# A steady-state sweep of the 20 triggers on a 2-core machine.
SWEEP_LIMIT_SECONDS = 3.0
FANOUT_RUNS = 4
# The course that the sweep's triggers enroll in, apart from those the
# conditions read, so that the first sweep does not change what they match.
SWEEP_COURSE = "scale-sweep"

# Row numbers of the contacts, which the events and survey responses are
# drawn from.
NUMBERED_CONTACTS = """
    WITH numbered AS (
        SELECT id, account_id, row_number() OVER (ORDER BY id) AS position
        FROM customers_contact),
    total AS (SELECT count(*) AS contacts FROM customers_contact)
"""

POPULATION_SQL = [
    "SELECT setseed(0.42)",
    # Accounts: signed up over 2022-2023, renewing within the year after
    # AS_OF, a kick-off a few days after signup, custom CRM properties.
    f"""
    INSERT INTO customers_account (
        external_id, name, industry, country, plan, seats, mrr, arr, is_trial,
        signup_date, kickoff_date, renewal_date, health_score, time_zone,
        properties, created_at, updated_at)
    SELECT 'S-' || n, 'Scale account ' || n, industry, '',
        (ARRAY['Basic', 'Pro', 'Enterprise'])[1 + n % 3], 20, 0, 0, false,
        DATE '2022-01-01' + (n * 7) % 700, DATE '2022-01-01' + (n * 7) % 700 + n % 9,
        DATE '2024-06-15' + (n % 365), NULL, '',
        jsonb_build_object('industry', industry, 'employees', (n * 37) % 1000),
        now(), now()
    FROM generate_series(1, {ACCOUNTS}) AS n,
        LATERAL (SELECT (ARRAY['fintech', 'health', 'retail', 'software'])
                 [1 + n % 4] AS industry) AS chosen
    """,
    """
    INSERT INTO customers_contact (
        account_id, external_id, email, first_name, last_name, role,
        is_champion, time_zone, properties, added_at, created_at, updated_at)
    SELECT a.id, a.external_id || '-' || m, 'c' || m || '@' ||
        lower(a.external_id) || '.example', 'Scale', '',
        (ARRAY['admin', 'analyst', 'engineer', 'manager', 'finance',
               'support', 'sales', ''])[1 + (m * 7 + a.id) % 8],
        m = 1, '',
        jsonb_build_object('seniority',
            (ARRAY['junior', 'senior', 'lead'])[1 + (m + a.id) % 3]),
        TIMESTAMPTZ '2023-01-01 00:00+00' + random() * INTERVAL '530 days',
        now(), now()
    FROM customers_account a, generate_series(1, 10 + a.id % 21) AS m
    """,
    # Events: contacts drawn with a skew (random() squared), so some are
    # busy and many are quiet, as in real products. One event in a thousand
    # is the rare "Integration Connected", which many contacts never send.
    NUMBERED_CONTACTS
    + f"""
    INSERT INTO customers_usageevent (
        account_id, contact_id, name, feature, occurred_at, quantity,
        duration_seconds, error_count, properties, created_at)
    SELECT c.account_id, c.id,
        CASE WHEN k % 1000 = 0 THEN 'Integration Connected'
             ELSE (ARRAY['Signed In', 'Feature Used', 'Report Exported'])[1 + k % 3]
        END,
        'feature_' || (k % 40),
        TIMESTAMPTZ '2024-06-15 12:00+00' - random() * INTERVAL '540 days',
        1, 0, 0, '{{}}', now()
    FROM (
        SELECT k, 1 + floor(power(random(), 2) * total.contacts)::int AS position
        FROM generate_series(1, {EVENTS}) AS k, total
    ) AS drawn
    JOIN numbered AS c USING (position)
    """,
    f"""
    INSERT INTO customers_supportticket (
        account_id, external_id, opened_at, closed_at, priority, topic,
        escalated, created_at)
    SELECT (SELECT min(id) FROM customers_account) + (k % {ACCOUNTS}), 'T-' || k,
        opened, CASE WHEN k % 4 = 0 THEN NULL
                     ELSE opened + random() * INTERVAL '10 days' END,
        (ARRAY['low', 'medium', 'high', 'urgent'])[1 + k % 4],
        (ARRAY['billing', 'setup', 'bug'])[1 + k % 3], false, now()
    FROM (
        SELECT k, TIMESTAMPTZ '2024-06-15 12:00+00' - random() * INTERVAL '540 days'
            AS opened
        FROM generate_series(1, {TICKETS}) AS k
    ) AS opened_tickets
    """,
    # NPS responses from 0 to 10, and half as many CSAT responses from 1 to 5.
    NUMBERED_CONTACTS
    + f"""
    INSERT INTO customers_surveyresponse (
        account_id, contact_id, kind, score, comment, submitted_at, created_at)
    SELECT c.account_id, c.id, 'nps', (k * 7) % 11, '',
        TIMESTAMPTZ '2024-06-15 12:00+00' - random() * INTERVAL '540 days', now()
    FROM generate_series(1, {SURVEYS}) AS k, total
    JOIN numbered AS c ON true
    WHERE c.position = 1 + (k * 37) % total.contacts
    """,
    NUMBERED_CONTACTS
    + f"""
    INSERT INTO customers_surveyresponse (
        account_id, contact_id, kind, score, comment, submitted_at, created_at)
    SELECT c.account_id, c.id, 'csat', 1 + (k * 3) % 5, '',
        TIMESTAMPTZ '2024-06-15 12:00+00' - random() * INTERVAL '540 days', now()
    FROM generate_series(1, {SURVEYS // 2}) AS k, total
    JOIN numbered AS c ON true
    WHERE c.position = 1 + (k * 53) % total.contacts
    """,
    f"""
    INSERT INTO customers_healthscore (account_id, scored_on, score, measures,
        created_at)
    SELECT a.id, DATE '2024-06-15' - d, (a.id * 13 + d * 3) % 101, '{{}}', now()
    FROM customers_account a, generate_series(0, {HEALTH_DAYS - 1}) AS d
    """,
    """
    INSERT INTO customers_subscription (
        account_id, external_id, started_on, ended_on, plan, seats, mrr, arr,
        is_trial, is_upgrade, is_downgrade, churned, billing_frequency,
        auto_renew, created_at)
    SELECT a.id, 'SUB-' || a.id || '-' || s,
        a.signup_date + (s - 1) * 300,
        CASE WHEN s = 1 THEN a.signup_date + 300 ELSE NULL END,
        CASE WHEN s = 1 THEN 'Basic' ELSE a.plan END, 20, 0, 0,
        false, s = 2 AND a.plan <> 'Basic', false, false, 'monthly', true, now()
    FROM customers_account a, generate_series(1, 2) AS s
    """,
    # Three contacts in five enroll in the onboarding course within 90 days
    # of joining. Of those, 70% start within 10 days, 40% complete with a
    # score, 10% withdraw after starting and 5% end without starting.
    f"""
    INSERT INTO courses_enrollment (
        contact_id, course_id, source, origin, status, enrolled_at, started_at,
        completed_at, ended_at, furthest_lesson_id, score, created_at, updated_at)
    SELECT drawn.id, course.id, 'manual', '',
        CASE WHEN r < 0.4 THEN 'completed'
             WHEN r >= 0.6 AND r < 0.7 OR r >= 0.95 THEN 'withdrawn'
             ELSE 'active' END,
        enrolled,
        CASE WHEN r < 0.7 THEN enrolled + spread * INTERVAL '10 days' END,
        CASE WHEN r < 0.4
             THEN enrolled + spread * INTERVAL '10 days' + INTERVAL '20 days' END,
        CASE WHEN r >= 0.6 AND r < 0.7 OR r >= 0.95
             THEN enrolled + INTERVAL '25 days' END,
        NULL,
        CASE WHEN r < 0.4 THEN round((50 + spread * 50)::numeric, 2) END,
        now(), now()
    FROM (
        SELECT id, added_at + random() * INTERVAL '90 days' AS enrolled,
            random() AS r, random() AS spread
        FROM customers_contact WHERE id % 5 < 3
    ) AS drawn, courses_course AS course
    WHERE course.slug = '{ONBOARDING}'
    """,
    # One contact in seven enrolls in the advanced course in the 200 days
    # before AS_OF; half start it and one in ten withdraws.
    f"""
    INSERT INTO courses_enrollment (
        contact_id, course_id, source, origin, status, enrolled_at, started_at,
        completed_at, ended_at, furthest_lesson_id, score, created_at, updated_at)
    SELECT drawn.id, course.id, 'automatic', 'trigger:scale',
        CASE WHEN r >= 0.9 THEN 'withdrawn' ELSE 'active' END,
        enrolled, CASE WHEN r < 0.5 THEN enrolled + INTERVAL '2 days' END, NULL,
        CASE WHEN r >= 0.9 THEN enrolled + INTERVAL '5 days' END, NULL, NULL,
        now(), now()
    FROM (
        SELECT id, TIMESTAMPTZ '2024-06-15 12:00+00'
                   - random() * INTERVAL '200 days' AS enrolled,
            random() AS r
        FROM customers_contact WHERE id % 7 = 0
    ) AS drawn, courses_course AS course
    WHERE course.slug = '{ADVANCED}'
    """,
    # Version 2 of the onboarding course, published on 2024-05-01 with
    # recertification, marks every other learner who completed it before.
    f"""
    INSERT INTO courses_courseversion (
        course_id, number, fingerprint, lesson_count, note,
        requires_recertification, expired_certificates, recertification_count,
        published_at, published_by_id)
    SELECT id, 2, repeat('0', 64), 4, '', true, false, 0,
        TIMESTAMPTZ '2024-05-01 12:00+00', NULL
    FROM courses_course WHERE slug = '{ONBOARDING}'
    """,
    f"""
    UPDATE courses_enrollment en SET recertification_version = 2
    FROM courses_course co
    WHERE co.id = en.course_id AND co.slug = '{ONBOARDING}'
        AND en.completed_at < TIMESTAMPTZ '2024-05-01 12:00+00' AND en.id % 2 = 0
    """,
    # A certificate on each onboarding completion, valid for a year. One in
    # ten is revoked after 100 days. One in seven is renewed after 300 days
    # by a certificate for version 2 that never expires.
    f"""
    INSERT INTO courses_certificate (
        enrollment_id, course_version, code, learner_name, course_title,
        issued_at, expires_at, revoked_at)
    SELECT en.id, 1, md5(en.id::text), 'Scale learner', 'Scale onboarding',
        en.completed_at, en.completed_at + INTERVAL '365 days',
        CASE WHEN en.id % 10 = 0 THEN en.completed_at + INTERVAL '100 days' END
    FROM courses_enrollment en
    JOIN courses_course co ON co.id = en.course_id
    WHERE co.slug = '{ONBOARDING}' AND en.completed_at IS NOT NULL
    """,
    f"""
    INSERT INTO courses_certificate (
        enrollment_id, course_version, code, learner_name, course_title,
        issued_at, expires_at, revoked_at)
    SELECT en.id, 2, md5('renewed ' || en.id), 'Scale learner', 'Scale onboarding',
        en.completed_at + INTERVAL '300 days', NULL, NULL
    FROM courses_enrollment en
    JOIN courses_course co ON co.id = en.course_id
    WHERE co.slug = '{ONBOARDING}' AND en.completed_at IS NOT NULL
        AND en.id % 7 = 0
    """,
    # A lesson a day from the start. Learners who completed the course
    # completed every lesson, the others two lessons in three. Quizzes and
    # exams have a score from 40 to 100.
    """
    INSERT INTO courses_lessonprogress (
        enrollment_id, lesson_id, started_at, completed_at, views,
        time_spent_seconds, score, updated_at, position_seconds,
        heartbeat_view, heartbeat_sequence, pages_viewed, watched_intervals)
    SELECT en.id, l.id, en.started_at + l."order" * INTERVAL '1 day',
        CASE WHEN en.completed_at IS NOT NULL OR (en.id + l."order") % 3 <> 0
             THEN en.started_at + l."order" * INTERVAL '1 day' + INTERVAL '1 hour'
        END,
        1, 300,
        CASE WHEN l.kind IN ('quiz', 'exam')
             THEN round((40 + random() * 60)::numeric, 2) END,
        now(), 0, 0, 0, '[]'::jsonb, '[]'::jsonb
    FROM courses_enrollment en
    JOIN courses_module m ON m.course_id = en.course_id
    JOIN courses_lesson l ON l.module_id = m.id
    WHERE en.started_at IS NOT NULL
    """,
    # Stage history: each account moves through the first one to five
    # stages, one every 60 to 150 days from signup, so some moves come
    # after AS_OF.
    """
    WITH ranked AS (
        SELECT id, row_number() OVER (ORDER BY "order") AS position
        FROM lifecycle_stage)
    INSERT INTO lifecycle_stagechange (
        account_id, from_stage_id, to_stage_id, changed_at, source, reason,
        changed_by_id, created_at)
    SELECT a.id, previous.id, stage.id,
        a.signup_date + ((stage.position - 1) * (60 + a.id % 90))::int
            + INTERVAL '9 hours',
        CASE WHEN stage.position = 1 THEN 'initial' ELSE 'criteria' END,
        '', NULL, now()
    FROM customers_account a
    JOIN ranked AS stage ON stage.position <= 1 + a.id % 5
    LEFT JOIN ranked AS previous ON previous.position = stage.position - 1
    """,
]

SCALE_COURSES = (
    (
        ONBOARDING,
        "Scale onboarding",
        (
            ModuleSpec(
                "Basics",
                (LessonSpec("Welcome"), LessonSpec("First project")),
            ),
            ModuleSpec(
                "Check your knowledge",
                (
                    LessonSpec("Checkpoint quiz", kind=LessonKind.QUIZ),
                    LessonSpec(FINAL_QUIZ, kind=LessonKind.EXAM),
                ),
            ),
        ),
    ),
    (
        ADVANCED,
        "Scale advanced",
        (
            ModuleSpec(
                "Automation",
                (
                    LessonSpec("Scheduled reports"),
                    LessonSpec("Automation quiz", kind=LessonKind.QUIZ),
                ),
            ),
        ),
    ),
)


def run() -> int:
    started = time.perf_counter()
    _build_population()
    print(
        f"Scale {SCALE:g} (NUDGEPATH_BENCH_SCALE): {ACCOUNTS:,} accounts, "
        f"{_count('customers_contact'):,} contacts, {EVENTS:,} usage events, "
        f"{TICKETS:,} tickets, {_count('customers_surveyresponse'):,} survey "
        f"responses, {_count('courses_enrollment'):,} enrollments, "
        f"{_count('courses_lessonprogress'):,} lesson progress rows, "
        f"{_count('lifecycle_stagechange'):,} stage changes "
        f"(built in {time.perf_counter() - started:.0f} s)"
    )

    worst = _compare_kinds()
    worst = max(worst, _time_sweeps())
    missing = _kinds_without_case()
    if missing:
        print(
            "No benchmark case for the condition kinds "
            f"{', '.join(missing)}; add one to bench/scale_cases.py"
        )
        return 1
    return 0 if worst <= 1.0 else 1


def _build_population() -> None:
    for slug, title, modules in SCALE_COURSES:
        ensure_course(slug, title, "", modules)
    with connection.cursor() as cursor:
        # Loading 10 million rows into a table without its secondary indexes
        # and building them afterwards is several times faster than
        # maintaining them row by row.
        definitions = _secondary_indexes(cursor, "customers_usageevent")
        for name in definitions:
            cursor.execute(f'DROP INDEX "{name}"')
        # The daily roll-up, too, is built once from the loaded events
        # rather than upserted by the triggers while they load.
        drop_triggers(connection)
        for statement in POPULATION_SQL:
            cursor.execute(statement)
        install_triggers(connection)
        rebuild_usage_days()
        for definition in definitions.values():
            cursor.execute(definition)
        # VACUUM sets the visibility map, so the planner can use index-only
        # scans as it would on a table that has settled in production.
        cursor.execute("VACUUM ANALYZE")


def _secondary_indexes(cursor: Any, table: str) -> dict[str, str]:
    """Return name -> CREATE INDEX statement of the indexes no constraint owns."""
    cursor.execute(
        """
        SELECT indexname, indexdef FROM pg_indexes
        WHERE tablename = %s AND indexname NOT IN (
            SELECT conname FROM pg_constraint WHERE conrelid = %s::regclass)
        """,
        [table, table],
    )
    return dict(cursor.fetchall())


def _count(table: str) -> int:
    return _scalar(f"SELECT count(*) FROM {table}", {})


def _kinds_without_case() -> list[str]:
    covered = {case.kind for case in KIND_CASES}
    return sorted(set(kinds()) - covered)


def _compare_kinds() -> float:
    print(
        f"{'condition kind':<22} {'matches':>8} {'ORM median s':>12} "
        f"{'SQL median s':>12} {'ratio':>6} {'/limit':>7}  condition"
    )
    parameters = {"as_of": AS_OF, "today": AS_OF.date()}
    context = EvaluationContext("contact", AS_OF)
    worst = 0.0
    for case in KIND_CASES:
        tree = parse_condition(case.text, "contact")
        if tree.get("kind") != case.kind:
            raise AssertionError(
                f"the case for {case.kind} parses to {tree}; "
                f"write a condition whose outer function is {case.kind}"
            )
        compiled = subjects_as_of("contact", AS_OF).filter(
            compile_condition(tree, context)
        )
        orm_count, orm_seconds, sql_count, sql_seconds = _median_pair(
            compiled.count, partial(_scalar, case.sql, parameters)
        )
        if orm_count != sql_count:
            raise AssertionError(
                f"{case.kind} ({case.text}): the compiled query counts {orm_count} "
                f"contacts, the hand-written SQL {sql_count}; fix the SQL or the kind"
            )
        # A floor of 10 ms keeps noise on near-instant queries out of the ratio.
        ratio = max(orm_seconds, 0.01) / max(sql_seconds, 0.01)
        worst = max(worst, ratio / KIND_RATIO_LIMIT)
        print(
            f"{case.kind:<22} {orm_count:>8} {orm_seconds:>10.3f} "
            f"{sql_seconds:>10.3f} {ratio:>6.2f} {ratio / KIND_RATIO_LIMIT:>7.2f}  "
            f"{case.text}",
            flush=True,
        )
    return worst


def _time_sweeps() -> float:
    triggers = _make_triggers()
    for label in ("first sweep (writes firings)", "steady-state sweep"):
        started = time.perf_counter()
        report = run_sweep(AS_OF, triggers=triggers, queue_email=False)
        seconds = time.perf_counter() - started
        if report.failures:
            raise AssertionError(f"sweep failures: {report.failures}")
        print(
            f"{label:<32} {seconds:>7.2f} s, {report.matched:,} matched, "
            f"{report.fired:,} fired, {report.enrollments:,} enrollments",
            flush=True,
        )
    serial_ratio = seconds / SWEEP_LIMIT_SECONDS
    print(
        f"steady-state sweep of {len(triggers)} triggers in one process: "
        f"{seconds:.2f} s against {SWEEP_LIMIT_SECONDS:.1f} s, "
        f"ratio {serial_ratio:.2f}"
    )
    _print_trigger_times(triggers)

    # The first run warms the worker's processes and connections.
    durations = time_fanned_out_sweeps(triggers, AS_OF.isoformat(), runs=FANOUT_RUNS)
    fanned_out = max(durations[1:])
    ratio = fanned_out / SWEEP_LIMIT_SECONDS
    print(
        f"steady-state sweep fanned out to a worker of {CONCURRENCY} processes "
        f"(slowest of {FANOUT_RUNS - 1} runs after one warm-up): "
        f"{fanned_out:.2f} s against {SWEEP_LIMIT_SECONDS:.1f} s, ratio {ratio:.2f}"
    )
    return max(ratio, serial_ratio)


def _print_trigger_times(triggers: list[Trigger]) -> None:
    """Print each trigger's time in a steady-state sweep of its own."""
    for trigger in triggers:
        started = time.perf_counter()
        report = run_sweep(AS_OF, triggers=[trigger], queue_email=False)
        seconds = time.perf_counter() - started
        print(
            f"  {seconds:>6.2f} s {report.matched:>7,} matched  {trigger.name}",
            flush=True,
        )


def _make_triggers() -> list[Trigger]:
    course = Course.objects.create(slug=SWEEP_COURSE, title="Scale sweep course")
    triggers = []
    for number, spec in enumerate(SWEEP_TRIGGERS):
        triggers.append(
            Trigger.objects.create(
                slug=f"scale-{number}",
                name=spec.text,
                subject_type=SubjectType.CONTACT,
                condition=parse_condition(spec.text, "contact"),
                occurrence=spec.occurrence,
                # Every other trigger enrolls, so the first sweep writes actions.
                enroll_course=course if number % 2 == 0 else None,
            )
        )
    return triggers


def _median_pair(
    first: Callable[[], int], second: Callable[[], int]
) -> tuple[int, float, int, float]:
    """Time two queries in turn after one untimed run of each; return medians.

    Alternating them, after a run that warms the cache, gives both the same
    share of whatever else the machine is doing. The median, unlike a high
    percentile of a few runs, is not decided by one pause of the machine
    on a query of a few milliseconds, so the ratio compares the plans.
    """
    first_result, second_result = first(), second()
    first_times: list[float] = []
    second_times: list[float] = []
    for _ in range(REPEATS):
        first_times.append(_seconds(first))
        second_times.append(_seconds(second))
    return (
        first_result,
        statistics.median(first_times),
        second_result,
        statistics.median(second_times),
    )


def _seconds(action: Callable[[], int]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _scalar(sql: str, parameters: dict[str, Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)
        row = cursor.fetchone()
    return int(row[0])
