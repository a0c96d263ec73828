"""Time the daily health computation of 100,000 accounts against 60 seconds.

The data is built in SQL (generate_series with a fixed seed), as in
bench.scale. Every account has 3 to 7 contacts, 30 usage events on average
in the 40 days before the scored day, two support tickets, one CSAT and one
NPS response, a renewal date, a CRM health property, one stage and a week
of earlier scores. Two in five contacts are enrolled in a course. Half of
those completed it, and half of the completions have a score. Weight sets
weigh every measure by default. Adoption and renewal have sets of their
own, and advocacy reads the CRM property, so the run builds a plan per
stage and runs every measure. The day is computed twice. The first run
inserts the scores, and the second replaces them, as a recomputation does.
The slower of the two is held to the limit.

NUDGEPATH_BENCH_SCALE (default 1.0) multiplies the number of accounts, and
with it every other row, so that 0.01 checks the benchmark in seconds. The
limit is meant for 1.0.
"""

import os
import time
from datetime import date

from django.db import connection

from bench.scale import _scale_from_environment, _secondary_indexes
from courses.models import Course
from customers.models import HealthScore
from lifecycle.health import compute_health, replace_weights
from lifecycle.models import HealthSource, HealthWeightSet, Stage

SCALE = _scale_from_environment()
ACCOUNTS = max(50, round(100_000 * SCALE))
EVENTS_PER_ACCOUNT = 30
ON = date(2024, 6, 15)
LIMIT_SECONDS = 60.0

POPULATION_SQL = [
    "SELECT setseed(0.17)",
    f"""
    INSERT INTO customers_account (
        external_id, name, industry, country, plan, seats, mrr, arr, is_trial,
        signup_date, kickoff_date, renewal_date, health_score, time_zone,
        properties, created_at, updated_at)
    SELECT 'H-' || n, 'Health account ' || n, '', '', 'Pro', 1 + n % 25, 0, 0,
        false, DATE '2023-01-01' + n % 400, NULL, DATE '2024-06-15' + (n % 500) - 60,
        NULL, '', jsonb_build_object('cs_health', (n * 7) % 101), now(), now()
    FROM generate_series(1, {ACCOUNTS}) AS n
    """,
    """
    INSERT INTO customers_contact (
        account_id, external_id, email, first_name, last_name, role,
        is_champion, time_zone, properties, added_at, created_at, updated_at)
    SELECT a.id, a.external_id || '-' || m,
        'c' || m || '@' || lower(a.external_id) || '.example', 'Health', '', '',
        m = 1, '', '{}',
        TIMESTAMPTZ '2023-06-01 00:00+00' + random() * INTERVAL '400 days',
        now(), now()
    FROM customers_account a, generate_series(1, 3 + a.id % 5) AS m
    """,
    # Events drawn over the 40 days before the scored day, so a quarter of
    # them fall before the 30-day window.
    f"""
    WITH numbered AS (
        SELECT id, account_id, row_number() OVER (ORDER BY id) AS position
        FROM customers_contact),
    total AS (SELECT count(*) AS contacts FROM customers_contact)
    INSERT INTO customers_usageevent (
        account_id, contact_id, name, feature, occurred_at, quantity,
        duration_seconds, error_count, properties, created_at)
    SELECT c.account_id, c.id, 'Feature Used', 'feature_' || (k % 20),
        TIMESTAMPTZ '2024-06-15 00:00+00' - random() * INTERVAL '40 days',
        1 + k % 3, 0, 0, '{{}}', now()
    FROM (
        SELECT k, 1 + floor(power(random(), 2) * total.contacts)::int AS position
        FROM generate_series(1, {ACCOUNTS * EVENTS_PER_ACCOUNT}) AS k, total
    ) AS drawn
    JOIN numbered AS c USING (position)
    """,
    """
    INSERT INTO customers_supportticket (
        account_id, external_id, opened_at, closed_at, priority, topic,
        satisfaction_score, escalated, created_at)
    SELECT a.id, 'HT-' || a.id || '-' || t, opened,
        CASE WHEN (a.id + t) % 3 = 0 THEN NULL
             ELSE opened + random() * INTERVAL '5 days' END,
        (ARRAY['low', 'medium', 'high', 'urgent'])[1 + (a.id + t) % 4], 'setup',
        CASE WHEN (a.id + t) % 3 = 1 THEN 1 + (a.id + t) % 5 END, false, now()
    FROM customers_account a, generate_series(1, 2) AS t,
        LATERAL (SELECT TIMESTAMPTZ '2024-06-15 00:00+00'
                 - random() * INTERVAL '60 days' AS opened) AS drawn
    """,
    """
    INSERT INTO customers_surveyresponse (
        account_id, contact_id, kind, score, comment, submitted_at, created_at)
    SELECT c.account_id, c.id, kind,
        CASE WHEN kind = 'nps' THEN c.id % 11 ELSE 1 + c.id % 5 END, '',
        TIMESTAMPTZ '2024-06-15 00:00+00' - random() * INTERVAL '45 days', now()
    FROM customers_contact c, unnest(ARRAY['nps', 'csat']) AS kind
    WHERE c.is_champion
    """,
    """
    INSERT INTO courses_enrollment (
        contact_id, course_id, source, origin, status, enrolled_at, started_at,
        completed_at, ended_at, furthest_lesson_id, score, created_at, updated_at)
    SELECT c.id, course.id, 'manual', '',
        CASE WHEN c.id % 2 = 0 THEN 'completed' ELSE 'active' END,
        TIMESTAMPTZ '2024-01-01 00:00+00' + random() * INTERVAL '150 days',
        NULL,
        CASE WHEN c.id % 2 = 0 THEN TIMESTAMPTZ '2024-06-01 00:00+00' END,
        NULL, NULL,
        CASE WHEN c.id % 4 = 0 THEN round((40 + random() * 60)::numeric, 2) END,
        now(), now()
    FROM customers_contact c
    JOIN courses_course course ON course.slug = 'health-bench-' || (c.id % 3)
    WHERE c.id % 5 < 2
    """,
    """
    WITH ranked AS (
        SELECT id, row_number() OVER (ORDER BY "order") AS position
        FROM lifecycle_stage)
    INSERT INTO lifecycle_stagechange (
        account_id, from_stage_id, to_stage_id, changed_at, source, reason,
        changed_by_id, created_at)
    SELECT a.id, NULL, stage.id, a.signup_date + INTERVAL '9 hours', 'initial',
        '', NULL, now()
    FROM customers_account a
    JOIN ranked AS stage ON stage.position = 1 + a.id % 5
    """,
    """
    INSERT INTO customers_healthscore (account_id, scored_on, score, measures,
        created_at)
    SELECT a.id, DATE '2024-06-15' - d, (a.id * 13 + d * 3) % 101, '{}', now()
    FROM customers_account a, generate_series(1, 7) AS d
    """,
]

WEIGHT_SETS = {
    None: {
        "usage": 30,
        "active_users": 20,
        "support": 15,
        "csat": 10,
        "nps": 10,
        "renewal": 5,
        "learning": 10,
    },
    "adoption": {"usage": 30, "active_users": 20, "support": 20, "learning": 30},
    "renewal": {"renewal": 40, "csat": 20, "nps": 20, "support": 20},
}


def run() -> int:
    started = time.perf_counter()
    _build_population()
    print(
        f"Scale {SCALE:g} (NUDGEPATH_BENCH_SCALE): {ACCOUNTS:,} accounts, "
        f"{_count('customers_contact'):,} contacts, "
        f"{_count('customers_usageevent'):,} usage events, "
        f"{_count('customers_supportticket'):,} tickets, "
        f"{_count('customers_surveyresponse'):,} survey responses, "
        f"{_count('courses_enrollment'):,} enrollments, "
        f"{_count('customers_healthscore'):,} earlier scores "
        f"(built in {time.perf_counter() - started:.0f} s)",
        flush=True,
    )
    print(f"Load average before: {_load_average()}", flush=True)

    slowest = 0.0
    for label in ("first computation (inserts)", "recomputation (replaces)"):
        started = time.perf_counter()
        result = compute_health(ON)
        seconds = time.perf_counter() - started
        slowest = max(slowest, seconds)
        print(
            f"{label:<30} {seconds:>7.2f} s, {result.scored:,} scored, "
            f"{result.unscored:,} without data",
            flush=True,
        )

    stored = HealthScore.objects.filter(scored_on=ON).count()
    if stored != ACCOUNTS:
        print(f"Expected {ACCOUNTS:,} scores for {ON}, found {stored:,}")
        return 1
    ratio = slowest / LIMIT_SECONDS
    print(f"Load average after: {_load_average()}")
    print(
        f"daily health, {ACCOUNTS:,} accounts: {slowest:.2f} s of "
        f"{LIMIT_SECONDS:.0f} s, ratio {ratio:.2f}"
    )
    return 0 if ratio <= 1.0 else 1


def _build_population() -> None:
    _configure_weights()
    for number in range(3):
        Course.objects.create(slug=f"health-bench-{number}", title=f"Course {number}")
    with connection.cursor() as cursor:
        # Loading rows into a table without its secondary indexes and
        # building them afterwards is faster than maintaining them per row.
        definitions = _secondary_indexes(cursor, "customers_usageevent")
        for name in definitions:
            cursor.execute(f'DROP INDEX "{name}"')
        for statement in POPULATION_SQL:
            cursor.execute(statement)
        for definition in definitions.values():
            cursor.execute(definition)
        cursor.execute("VACUUM ANALYZE")


def _configure_weights() -> None:
    for slug, weights in WEIGHT_SETS.items():
        stage = Stage.objects.get(slug=slug) if slug else None
        replace_weights(HealthWeightSet.objects.create(stage=stage), weights)
    HealthWeightSet.objects.create(
        stage=Stage.objects.get(slug="advocacy"),
        source=HealthSource.CRM_PROPERTY,
        crm_property="cs_health",
    )


def _count(table: str) -> int:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT count(*) FROM {table}")
        row = cursor.fetchone()
    return int(row[0]) if row else 0


def _load_average() -> str:
    return ", ".join(f"{value:.2f}" for value in os.getloadavg())
