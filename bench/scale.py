"""Time condition kinds and a 20-trigger sweep over 100,000 contacts.

The population is built in SQL (generate_series with a fixed seed), because
10 million usage events through the ORM would take far longer than the
measurements. For each condition kind the compiled query's count over all
contacts is timed beside a hand-written SQL query for the same predicate,
in the same run, and the two counts must agree, which checks that the
hand-written query really is the same predicate. Then 20 triggers are swept
twice: the first sweep writes the firings, the second is the steady state
that a scheduled sweep sees, and that one is held to the limit.
"""

import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from typing import Any

from django.db import connection

from conditions import EvaluationContext, compile_condition
from courses.models import Course
from customers.services import subjects_as_of
from triggers.models import Occurrence, SubjectType, Trigger
from triggers.services import run_sweep

ACCOUNTS = 5_000
CONTACTS_PER_ACCOUNT = 20
EVENTS = 10_000_000
TICKETS = 200_000
SURVEYS = 100_000
HEALTH_DAYS = 60
AS_OF = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
REPEATS = 5

# A compiled query may take at most this multiple of the hand-written one.
KIND_RATIO_LIMIT = 1.5
# A steady-state sweep of the 20 triggers on a 2-core machine.
SWEEP_LIMIT_SECONDS = 3.0

POPULATION_SQL = [
    "SELECT setseed(0.42)",
    # Accounts: signed up over 2022-2023, renewing within the year after
    # AS_OF, a kick-off a few days after signup.
    f"""
    INSERT INTO customers_account (
        external_id, name, industry, country, plan, seats, mrr, arr, is_trial,
        signup_date, kickoff_date, renewal_date, health_score, time_zone,
        properties, created_at, updated_at)
    SELECT 'S-' || n, 'Scale account ' || n, '', '',
        (ARRAY['Basic', 'Pro', 'Enterprise'])[1 + n % 3], {CONTACTS_PER_ACCOUNT},
        0, 0, false,
        DATE '2022-01-01' + (n % 700), DATE '2022-01-01' + (n % 700) + n % 9,
        DATE '2024-06-15' + (n % 365), NULL, '', '{{}}', now(), now()
    FROM generate_series(1, {ACCOUNTS}) AS n
    """,
    f"""
    INSERT INTO customers_contact (
        account_id, external_id, email, first_name, last_name, role,
        is_champion, time_zone, properties, added_at, created_at, updated_at)
    SELECT a.id, a.external_id || '-' || m, 'c' || m || '@' ||
        lower(a.external_id) || '.example', 'Scale', '',
        (ARRAY['admin', 'analyst', 'engineer', 'manager', 'finance',
               'support', 'sales', ''])[1 + (m * 7 + a.id) % 8],
        m = 1, '', '{{}}',
        TIMESTAMPTZ '2023-01-01 00:00+00' + random() * INTERVAL '530 days',
        now(), now()
    FROM customers_account a, generate_series(1, {CONTACTS_PER_ACCOUNT}) AS m
    """,
    # Events: contacts drawn with a skew (random() squared), so some are
    # busy and many are quiet, as in real products.
    f"""
    INSERT INTO customers_usageevent (
        account_id, contact_id, name, feature, occurred_at, quantity,
        duration_seconds, error_count, properties, created_at)
    SELECT c.account_id, c.id,
        (ARRAY['Signed In', 'Feature Used', 'Report Exported'])[1 + k % 3],
        'feature_' || (k % 40),
        TIMESTAMPTZ '2024-06-15 12:00+00' - random() * INTERVAL '540 days',
        1, 0, 0, '{{}}', now()
    FROM (
        SELECT k, 1 + floor(power(random(), 2) * {ACCOUNTS * CONTACTS_PER_ACCOUNT})::int
            AS position
        FROM generate_series(1, {EVENTS}) AS k
    ) AS drawn
    JOIN (
        SELECT id, account_id, row_number() OVER (ORDER BY id) AS position
        FROM customers_contact
    ) AS c USING (position)
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
    f"""
    INSERT INTO customers_surveyresponse (
        account_id, contact_id, kind, score, comment, submitted_at, created_at)
    SELECT c.account_id, c.id, 'nps', (k * 7) % 11, '',
        TIMESTAMPTZ '2024-06-15 12:00+00' - random() * INTERVAL '540 days', now()
    FROM generate_series(1, {SURVEYS}) AS k
    JOIN customers_contact c
      ON c.id = (SELECT min(id) FROM customers_contact)
               + (k * 37) % {ACCOUNTS * CONTACTS_PER_ACCOUNT}
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
]

# For each kind: a condition over contacts and the same predicate written by
# hand. %(as_of)s is the instant and %(today)s its UTC date.
CONTACTS_AT = "SELECT count(*) FROM customers_contact c WHERE c.added_at <= %(as_of)s"
IN_WINDOW = (
    "e.occurred_at > %(as_of)s - INTERVAL '{days} days' AND e.occurred_at <= %(as_of)s"
)

KIND_CASES: list[tuple[dict[str, Any], str]] = [
    (
        {"kind": "inactivity", "days": 10},
        CONTACTS_AT + " AND NOT EXISTS (SELECT 1 FROM customers_usageevent e"
        " WHERE e.contact_id = c.id AND " + IN_WINDOW.format(days=10) + ")",
    ),
    (
        {
            "kind": "event_count",
            "days": 30,
            "event": "Signed In",
            "op": ">=",
            "value": 5,
        },
        CONTACTS_AT + " AND (SELECT count(*) FROM customers_usageevent e"
        " WHERE e.contact_id = c.id AND e.name = 'Signed In' AND "
        + IN_WINDOW.format(days=30)
        + ") >= 5",
    ),
    (
        {"kind": "distinct_features", "days": 7, "op": ">=", "value": 3},
        CONTACTS_AT + " AND (SELECT count(DISTINCT e.feature) FROM"
        " customers_usageevent e WHERE e.contact_id = c.id AND e.feature <> ''"
        " AND " + IN_WINDOW.format(days=7) + ") >= 3",
    ),
    (
        {"kind": "first_usage_within", "days": 7, "after": "kickoff"},
        CONTACTS_AT + " AND EXISTS (SELECT 1 FROM customers_usageevent e"
        " JOIN customers_account a ON a.id = c.account_id"
        " WHERE e.account_id = c.account_id AND e.occurred_at <= %(as_of)s"
        " AND e.occurred_at >= a.kickoff_date::timestamptz"
        " AND e.occurred_at < (a.kickoff_date + 8)::timestamptz)",
    ),
    (
        {"kind": "active_users_trend", "days": 30},
        CONTACTS_AT + " AND (SELECT count(DISTINCT e.contact_id) FROM"
        " customers_usageevent e WHERE e.account_id = c.account_id AND "
        + IN_WINDOW.format(days=30)
        + ") >= GREATEST(1, (SELECT count(DISTINCT e.contact_id) FROM"
        " customers_usageevent e WHERE e.account_id = c.account_id"
        " AND e.occurred_at > %(as_of)s - INTERVAL '60 days'"
        " AND e.occurred_at <= %(as_of)s - INTERVAL '30 days'))",
    ),
    (
        {"kind": "renewal_within", "days": 60},
        CONTACTS_AT + " AND EXISTS (SELECT 1 FROM customers_account a"
        " WHERE a.id = c.account_id AND a.renewal_date >= %(today)s"
        " AND a.renewal_date <= %(today)s + 60)",
    ),
    (
        {"kind": "health_score", "op": ">", "value": 70},
        CONTACTS_AT + " AND (SELECT h.score FROM customers_healthscore h"
        " WHERE h.account_id = c.account_id AND h.scored_on <= %(today)s"
        " ORDER BY h.scored_on DESC LIMIT 1) > 70",
    ),
    (
        {"kind": "plan", "plans": ["Pro", "Enterprise"]},
        CONTACTS_AT + " AND EXISTS (SELECT 1 FROM customers_account a"
        " WHERE a.id = c.account_id AND a.plan IN ('Pro', 'Enterprise'))",
    ),
    (
        {"kind": "team_growth", "days": 30, "value": 3},
        CONTACTS_AT + " AND (SELECT count(*) FROM customers_contact n"
        " WHERE n.account_id = c.account_id"
        " AND n.added_at > %(as_of)s - INTERVAL '30 days'"
        " AND n.added_at <= %(as_of)s) >= 3",
    ),
    (
        {"kind": "contact_count", "op": ">=", "value": 15},
        CONTACTS_AT + " AND (SELECT count(*) FROM customers_contact n"
        " WHERE n.account_id = c.account_id AND n.added_at <= %(as_of)s) >= 15",
    ),
    (
        {"kind": "survey_score", "survey": "nps", "min": 9, "max": 10, "days": 30},
        CONTACTS_AT + " AND EXISTS (SELECT 1 FROM customers_surveyresponse s"
        " WHERE s.contact_id = c.id AND s.kind = 'nps' AND s.score BETWEEN 9 AND 10"
        " AND s.submitted_at > %(as_of)s - INTERVAL '30 days'"
        " AND s.submitted_at <= %(as_of)s)",
    ),
    (
        {
            "kind": "open_tickets",
            "op": ">=",
            "value": 2,
            "priorities": ["high", "urgent"],
        },
        CONTACTS_AT + " AND (SELECT count(*) FROM customers_supportticket t"
        " WHERE t.account_id = c.account_id AND t.opened_at <= %(as_of)s"
        " AND (t.closed_at IS NULL OR t.closed_at > %(as_of)s)"
        " AND t.priority IN ('high', 'urgent')) >= 2",
    ),
    (
        {"kind": "new_role_added", "days": 30},
        CONTACTS_AT + " AND EXISTS (SELECT 1 FROM customers_contact n"
        " WHERE n.account_id = c.account_id AND n.role <> ''"
        " AND n.added_at > %(as_of)s - INTERVAL '30 days'"
        " AND n.added_at <= %(as_of)s"
        " AND EXISTS (SELECT 1 FROM customers_contact b"
        "   WHERE b.account_id = n.account_id AND b.added_at < n.added_at)"
        " AND NOT EXISTS (SELECT 1 FROM customers_contact b"
        "   WHERE b.account_id = n.account_id AND upper(b.role) = upper(n.role)"
        "   AND b.added_at < n.added_at))",
    ),
    (
        {"kind": "subscription_plan", "plans": ["Pro"]},
        CONTACTS_AT + " AND (EXISTS (SELECT 1 FROM customers_subscription s"
        " WHERE s.account_id = c.account_id AND s.started_on <= %(today)s"
        " AND NOT s.is_trial AND s.plan = 'Pro'"
        " AND (s.ended_on IS NULL OR s.ended_on > %(today)s))"
        " OR (NOT EXISTS (SELECT 1 FROM customers_subscription s"
        "   WHERE s.account_id = c.account_id)"
        "   AND EXISTS (SELECT 1 FROM customers_account a"
        "   WHERE a.id = c.account_id AND a.plan = 'Pro')))",
    ),
    (
        {"kind": "upgraded_within", "days": 90},
        CONTACTS_AT + " AND EXISTS (SELECT 1 FROM customers_subscription s"
        " WHERE s.account_id = c.account_id AND s.is_upgrade"
        " AND s.started_on > %(today)s - 90 AND s.started_on <= %(today)s)",
    ),
    (
        {"kind": "contact_added_within", "days": 7},
        CONTACTS_AT + " AND c.added_at > %(as_of)s - INTERVAL '7 days'",
    ),
]

# The 20 triggers of the sweep: the kinds above, alone and combined, with
# and without actions.
SWEEP_CONDITIONS: list[dict[str, Any]] = [case[0] for case in KIND_CASES] + [
    {
        "all": [
            {"kind": "renewal_within", "days": 90},
            {"kind": "health_score", "op": ">", "value": 70},
        ]
    },
    {
        "all": [
            {"kind": "inactivity", "days": 10},
            {"kind": "event_count", "days": 90, "op": ">=", "value": 1},
        ]
    },
    {
        "any": [
            {"kind": "open_tickets", "op": ">=", "value": 3, "priorities": []},
            {"not": {"kind": "health_score", "op": ">=", "value": 40}},
        ]
    },
    {
        "all": [
            {"kind": "plan", "plans": ["Enterprise"]},
            {"kind": "distinct_features", "days": 30, "op": "<", "value": 5},
        ]
    },
]


def run() -> int:
    started = time.perf_counter()
    _build_population()
    print(
        f"Population: {ACCOUNTS:,} accounts, {ACCOUNTS * CONTACTS_PER_ACCOUNT:,} "
        f"contacts, {EVENTS:,} usage events, {TICKETS:,} tickets, "
        f"{SURVEYS:,} survey responses (built in {time.perf_counter() - started:.0f} s)"
    )

    worst = _compare_kinds()
    worst = max(worst, _time_sweeps())
    return 0 if worst <= 1.0 else 1


def _build_population() -> None:
    with connection.cursor() as cursor:
        # Loading 10 million rows into a table without its secondary indexes
        # and building them afterwards is several times faster than
        # maintaining them row by row.
        definitions = _secondary_indexes(cursor, "customers_usageevent")
        for name in definitions:
            cursor.execute(f'DROP INDEX "{name}"')
        for statement in POPULATION_SQL:
            cursor.execute(statement)
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


def _compare_kinds() -> float:
    print(
        f"{'condition kind':<22} {'matches':>8} {'ORM p95 s':>10} "
        f"{'SQL p95 s':>10} {'ratio':>6} {'/limit':>7}"
    )
    parameters = {"as_of": AS_OF, "today": AS_OF.date()}
    context = EvaluationContext("contact", AS_OF)
    worst = 0.0
    for condition, sql in KIND_CASES:
        compiled = subjects_as_of("contact", AS_OF).filter(
            compile_condition(condition, context)
        )
        orm_count, orm_seconds, sql_count, sql_seconds = _p95_pair(
            compiled.count, partial(_scalar, sql, parameters)
        )
        if orm_count != sql_count:
            raise AssertionError(
                f"{condition['kind']}: the compiled query counts {orm_count} "
                f"contacts, the hand-written SQL {sql_count}; fix the SQL or the kind"
            )
        # A floor of 10 ms keeps noise on near-instant queries out of the ratio.
        ratio = max(orm_seconds, 0.01) / max(sql_seconds, 0.01)
        worst = max(worst, ratio / KIND_RATIO_LIMIT)
        print(
            f"{condition['kind']:<22} {orm_count:>8} {orm_seconds:>10.3f} "
            f"{sql_seconds:>10.3f} {ratio:>6.2f} {ratio / KIND_RATIO_LIMIT:>7.2f}"
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
            f"{report.fired:,} fired, {report.enrollments:,} enrollments"
        )
    ratio = seconds / SWEEP_LIMIT_SECONDS
    print(
        f"steady-state sweep of {len(triggers)} triggers: {seconds:.2f} s against "
        f"{SWEEP_LIMIT_SECONDS:.1f} s, ratio {ratio:.2f}"
    )
    return ratio


def _make_triggers() -> list[Trigger]:
    course = Course.objects.create(slug="scale-course", title="Scale course")
    triggers = []
    for number, condition in enumerate(SWEEP_CONDITIONS):
        triggers.append(
            Trigger.objects.create(
                slug=f"scale-{number}",
                name=f"Scale trigger {number}",
                subject_type=SubjectType.CONTACT,
                condition=condition,
                occurrence=Occurrence.ONCE,
                # Every other trigger enrolls, so the first sweep writes actions.
                enroll_course=course if number % 2 == 0 else None,
            )
        )
    return triggers


def _p95_pair(
    first: Callable[[], int], second: Callable[[], int]
) -> tuple[int, float, int, float]:
    """Time two queries in turn after one untimed run of each.

    Alternating them, after a run that warms the cache, gives both the same
    share of whatever else the machine is doing.
    """
    first_result, second_result = first(), second()
    first_times: list[float] = []
    second_times: list[float] = []
    for _ in range(REPEATS):
        first_times.append(_seconds(first))
        second_times.append(_seconds(second))
    return first_result, _p95(first_times), second_result, _p95(second_times)


def _seconds(action: Callable[[], int]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _p95(timings: list[float]) -> float:
    return statistics.quantiles(timings, n=20)[-1]


def _scalar(sql: str, parameters: dict[str, Any]) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, parameters)
        row = cursor.fetchone()
    return int(row[0])
