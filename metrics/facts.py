"""Precomputed facts for the dashboard, refreshed by a periodic task.

The dashboard needs these facts. Per account: whether and when it was
trained, and when it first churned, first used the product and left
onboarding. Per contact and account: when each training rule was first
met, and the outcomes around that day. Per enrollment: its status,
furthest module, course score, lesson activity and lesson scores. Computing them on
each request reads every enrollment, attempt, churn event, stage change
and lesson progress row. The fact tables (metrics.models) store them as
dates, instants and counts, so each report is one join or scan over narrow
rows for any as-of day and filter. refresh_facts() recomputes every row in
one transaction, and FactRefresh records when, for the dashboard to show.

A refresh is about twenty grouped statements over the source tables, a
few seconds at full size, so it recomputes everything rather than
tracking which accounts changed. docs/decisions/0026-dashboard-facts.md
gives the reasons.
"""

import logging
import time as clock
from datetime import datetime
from typing import Any

from django.db import connection, transaction
from django.utils import timezone

from courses.models import EnrollmentStatus
from metrics.models import FactRefresh
from metrics.report_cache import clear_cached_reports
from metrics.scores import OUT_OF_RANGE, SCORE_BIN_WIDTH, SCORE_BINS
from metrics.windows import insert_training_facts, utc_day_sql

logger = logging.getLogger(__name__)

# The lifecycle stage whose exit ends onboarding (seeded by lifecycle).
ONBOARDING_STAGE = "onboarding"

ACCOUNT_FACTS = "metrics_accountfact"
COURSE_FACTS = "metrics_coursecompletionfact"
ENROLLMENT_FACTS = "metrics_enrollmentfact"
MODULE_ACTIVITY = "metrics_moduleactivityfact"
LESSON_SCORES = "metrics_lessonscorefact"
TRAINING_FACTS = "metrics_trainingfact"
# The training facts are staged here first, so that each row is inserted
# once with the figures around its day (metrics.windows).
TRAINING_STAGE = "metrics_training_stage"
FACT_TABLES = (
    ACCOUNT_FACTS,
    COURSE_FACTS,
    ENROLLMENT_FACTS,
    MODULE_ACTIVITY,
    LESSON_SCORES,
    TRAINING_FACTS,
)

# Completed enrollments per account (any course), or per course and account.
COMPLETIONS_SQL = """
SELECT {group}, MIN(enrollment.completed_at) AS first_completed_at,
    MAX(CASE WHEN enrollment.completed_at IS NULL THEN 1 ELSE 0 END) = 1
        AS has_undated_completion
FROM courses_enrollment AS enrollment
JOIN customers_contact AS contact ON contact.id = enrollment.contact_id
WHERE enrollment.status = %s
GROUP BY {group}
"""

# The first usage day is the first roll-up row on or after the signup date,
# one index seek on (account, day) per account. {change_day} is the UTC day
# of a stage change's changed_at in the database's dialect.
ACCOUNT_FACTS_SQL = f"""
INSERT INTO {ACCOUNT_FACTS} (
    account_id, first_usage_day, first_churn_event_day,
    first_completed_at, has_undated_completion, left_onboarding_day)
SELECT account.id,
    (SELECT MIN(day.day) FROM metrics_accountday AS day
        WHERE day.account_id = account.id AND day.usage_events > 0
        AND day.day >= account.signup_date),
    (SELECT MIN(churn.churned_on) FROM customers_churnevent AS churn
        WHERE churn.account_id = account.id),
    done.first_completed_at,
    COALESCE(done.has_undated_completion, FALSE),
    (SELECT MIN({{change_day}}) FROM lifecycle_stagechange AS change
        JOIN lifecycle_stage AS stage ON stage.id = change.from_stage_id
        WHERE change.account_id = account.id AND stage.slug = %s)
FROM customers_account AS account
LEFT JOIN ({COMPLETIONS_SQL.format(group="contact.account_id")}) AS done
    ON done.account_id = account.id
"""

# Each enrollment with its account, furthest module and course score bin;
# {score_bin} is the bin of enrollment.score in the database's dialect.
ENROLLMENT_FACTS_SQL = f"""
INSERT INTO {ENROLLMENT_FACTS} (
    enrollment_id, course_id, account_id, enrolled_at, status,
    furthest_module_id, score_bin)
SELECT enrollment.id, enrollment.course_id, contact.account_id,
    enrollment.enrolled_at, enrollment.status, lesson.module_id,
    CASE WHEN enrollment.score IS NULL THEN NULL ELSE {{score_bin}} END
FROM courses_enrollment AS enrollment
JOIN customers_contact AS contact ON contact.id = enrollment.contact_id
LEFT JOIN courses_lesson AS lesson ON lesson.id = enrollment.furthest_lesson_id
"""

# Lesson progress summed per enrollment and module, with the enrollment's
# course, account and enrollment time for the report's scope.
MODULE_ACTIVITY_SQL = f"""
INSERT INTO {MODULE_ACTIVITY} (
    enrollment_id, module_id, course_id, account_id, enrolled_at,
    views, repeat_views, seconds, viewed, repeated, timed)
SELECT progress.enrollment_id, lesson.module_id, enrollment.course_id,
    contact.account_id, enrollment.enrolled_at,
    SUM(progress.views),
    SUM(CASE WHEN progress.views > 1 THEN progress.views - 1 ELSE 0 END),
    SUM(progress.time_spent_seconds),
    MAX(CASE WHEN progress.views > 0 THEN 1 ELSE 0 END) = 1,
    MAX(CASE WHEN progress.views > 1 THEN 1 ELSE 0 END) = 1,
    MAX(CASE WHEN progress.time_spent_seconds > 0 THEN 1 ELSE 0 END) = 1
FROM courses_lessonprogress AS progress
JOIN courses_lesson AS lesson ON lesson.id = progress.lesson_id
JOIN courses_enrollment AS enrollment ON enrollment.id = progress.enrollment_id
JOIN customers_contact AS contact ON contact.id = enrollment.contact_id
GROUP BY progress.enrollment_id, lesson.module_id, enrollment.course_id,
    contact.account_id, enrollment.enrolled_at
"""

# Lesson scores counted per enrollment and bin, as metrics.engagement bins
# them: {score_bin} is the bin of progress.score in the database's dialect.
LESSON_SCORES_SQL = f"""
INSERT INTO {LESSON_SCORES} (
    enrollment_id, course_id, account_id, enrolled_at, score_bin, scores)
SELECT enrollment_id, course_id, account_id, enrolled_at, score_bin, COUNT(*)
FROM (
    SELECT progress.enrollment_id, enrollment.course_id, contact.account_id,
        enrollment.enrolled_at, {{score_bin}} AS score_bin
    FROM courses_lessonprogress AS progress
    JOIN courses_enrollment AS enrollment
        ON enrollment.id = progress.enrollment_id
    JOIN customers_contact AS contact ON contact.id = enrollment.contact_id
    WHERE progress.score IS NOT NULL
) AS binned
GROUP BY enrollment_id, course_id, account_id, enrolled_at, score_bin
"""

COURSE_FACTS_SQL = f"""
INSERT INTO {COURSE_FACTS} (
    course_id, account_id, first_completed_at, has_undated_completion)
{COMPLETIONS_SQL.format(group="enrollment.course_id, contact.account_id")}
"""


# The rows that meet each rule, as (contact_id, target_id, instant), where
# the target is the course, or the path for a path rule. Kept equal to the
# rows that metrics.cohorts._training_rows selects.
TRAINING_SOURCES = {
    ("started", "course"): """
        SELECT contact_id, course_id AS target_id, started_at AS instant
        FROM courses_enrollment WHERE started_at IS NOT NULL""",
    ("completed", "course"): """
        SELECT contact_id, course_id AS target_id, completed_at AS instant
        FROM courses_enrollment
        WHERE status = %s AND completed_at IS NOT NULL""",
    ("passed", "course"): """
        SELECT enrollment.contact_id, enrollment.course_id AS target_id,
            attempt.submitted_at AS instant
        FROM courses_attempt AS attempt
        JOIN courses_enrollment AS enrollment
            ON enrollment.id = attempt.enrollment_id
        WHERE attempt.passed AND attempt.submitted_at IS NOT NULL""",
    ("started", "path"): """
        SELECT contact_id, path_id AS target_id, enrolled_at AS instant
        FROM courses_pathenrollment WHERE enrolled_at IS NOT NULL""",
    ("completed", "path"): """
        SELECT contact_id, path_id AS target_id, completed_at AS instant
        FROM courses_pathenrollment WHERE completed_at IS NOT NULL""",
}

# {subject} is contact.id or contact.account_id; {course} and {path} are
# target_id or NULL. Grouping by the target keeps one row per course or path;
# grouping without it gives the row for any course.
TRAINING_FACTS_SQL = f"""
INSERT INTO {TRAINING_STAGE} (
    level, subject_id, account_id, rule, course_id, path_id, first_at)
SELECT %s, {{subject}}, contact.account_id, %s, {{course}}, {{path}},
    MIN(source.instant)
FROM ({{source}}) AS source
JOIN customers_contact AS contact ON contact.id = source.contact_id
GROUP BY {{subject}}, contact.account_id{{target}}
"""


def _refresh_training(cursor: Any) -> None:
    """Insert the first time each subject met each rule, per course, path and any.

    The rows are staged in a temporary table, then inserted with each
    subject's outcomes around that day.
    """
    completed = EnrollmentStatus.COMPLETED.value
    cursor.execute(f"DROP TABLE IF EXISTS {TRAINING_STAGE}")
    cursor.execute(
        f"CREATE TEMPORARY TABLE {TRAINING_STAGE} AS "
        "SELECT level, subject_id, account_id, rule, course_id, path_id, first_at "
        f"FROM {TRAINING_FACTS} WHERE 1 = 0"
    )
    for (rule, kind), source in TRAINING_SOURCES.items():
        source_params = [completed] if "%s" in source else []
        targets = ["target"] if kind == "path" else ["target", "any"]
        for level, subject in (
            ("contact", "contact.id"),
            ("account", "contact.account_id"),
        ):
            for target in targets:
                per_target = target == "target"
                sql = TRAINING_FACTS_SQL.format(
                    subject=subject,
                    course="source.target_id"
                    if per_target and kind == "course"
                    else "NULL",
                    path="source.target_id" if kind == "path" else "NULL",
                    source=source,
                    target=", source.target_id" if per_target else "",
                )
                cursor.execute(sql, [level, rule, *source_params])
    if connection.vendor == "postgresql":
        # Autovacuum never analyzes a temporary table, and without statistics
        # the planner would take the staged rows for a few hundred.
        cursor.execute(f"ANALYZE {TRAINING_STAGE}")
    insert_training_facts(cursor, TRAINING_STAGE)
    cursor.execute(f"DROP TABLE {TRAINING_STAGE}")


def refresh_facts(now: datetime | None = None) -> FactRefresh:
    """Recompute every account's facts from the source tables and record when.

    Runs in one transaction, so the dashboard reads the old facts or the new
    ones, never a mix. Running it twice leaves the same rows. The report
    cache is cleared on commit, because cached reports used the old facts,
    and the tables are vacuumed (vacuum_fact_tables).
    """
    started = clock.monotonic()
    refreshed_at = now or timezone.now()
    completed = EnrollmentStatus.COMPLETED.value
    with transaction.atomic(), connection.cursor() as cursor:
        # Concurrent refreshes queue here, so one never deletes the rows
        # another is inserting.
        refresh = _lock_refresh_row(refreshed_at)
        for table in FACT_TABLES:
            cursor.execute(f"DELETE FROM {table}")
        cursor.execute(
            ACCOUNT_FACTS_SQL.format(change_day=utc_day_sql("change.changed_at")),
            # The stage's placeholder comes first in the text, then the join's.
            [ONBOARDING_STAGE, completed],
        )
        accounts = cursor.rowcount
        cursor.execute(COURSE_FACTS_SQL, [completed])
        cursor.execute(MODULE_ACTIVITY_SQL)
        cursor.execute(
            ENROLLMENT_FACTS_SQL.format(score_bin=_score_bin_sql("enrollment.score"))
        )
        cursor.execute(
            LESSON_SCORES_SQL.format(score_bin=_score_bin_sql("progress.score"))
        )
        _refresh_training(cursor)
        if connection.vendor == "postgresql":
            # Every row was just replaced, and until autovacuum reaches a
            # table its statistics describe it as nearly empty. With them
            # the cohort queries chose nested loops that took seconds
            # instead of tens of milliseconds.
            for table in FACT_TABLES:
                cursor.execute(f"ANALYZE {table}")
        refresh.refreshed_at = refreshed_at
        refresh.accounts = accounts
        refresh.duration_ms = round((clock.monotonic() - started) * 1000)
        refresh.save()
        transaction.on_commit(clear_cached_reports)
        transaction.on_commit(vacuum_fact_tables)
    logger.info(
        "Refreshed the dashboard facts of %s accounts in %s ms",
        accounts,
        refresh.duration_ms,
    )
    return refresh


def vacuum_fact_tables() -> None:
    """Vacuum the fact tables on PostgreSQL, so that reads skip the replaced rows.

    Each refresh deletes every row and inserts it again. Until a vacuum,
    the deleted rows stay in the tables and every scan reads them. With
    autovacuum off, a few dozen refreshes made the dashboard page about
    twice as slow at full size (docs/benchmarks.md). With autovacuum on,
    they would slow it until autovacuum reaches each table. VACUUM cannot
    run in a transaction, so this runs after the refresh commits, or after
    the outermost transaction commits when the refresh ran inside one. It
    is skipped when the commit callbacks run inside an atomic block, as a
    test that executes them in its own transaction does.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return
    started = clock.monotonic()
    with connection.cursor() as cursor:
        for table in FACT_TABLES:
            cursor.execute(f"VACUUM {table}")
    logger.info(
        "Vacuumed the dashboard fact tables in %.0f ms",
        (clock.monotonic() - started) * 1000,
    )


def _score_bin_sql(column: str) -> str:
    """Return SQL for the bin of the score ``column``, as metrics.scores.score_bin."""
    if connection.vendor == "postgresql":
        bin_index = "LEAST(FLOOR({column} / {width})::integer, {last})"
    else:
        # A cast truncates towards zero, which is the floor of a score >= 0.
        bin_index = "MIN(CAST({column} / {width} AS INTEGER), {last})"
    bin_index = bin_index.format(
        column=column, width=SCORE_BIN_WIDTH, last=SCORE_BINS - 1
    )
    return (
        f"CASE WHEN {column} < 0 OR {column} > 100 "
        f"THEN {OUT_OF_RANGE} ELSE {bin_index} END"
    )


def _lock_refresh_row(refreshed_at: datetime) -> FactRefresh:
    FactRefresh.objects.get_or_create(
        pk=FactRefresh.SINGLETON_PK,
        defaults={"refreshed_at": refreshed_at, "accounts": 0, "duration_ms": 0},
    )
    return FactRefresh.objects.select_for_update().get(pk=FactRefresh.SINGLETON_PK)


def last_refresh() -> FactRefresh | None:
    """Return the last refresh, or None when the facts were never computed."""
    return FactRefresh.last()
