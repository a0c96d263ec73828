"""Precomputed per-account facts for the dashboard, refreshed by a periodic task.

The outcome comparison needs, per account, whether it was trained, when it
first churned and first used the product. Computing them on each request
reads every enrollment, churn event and first usage row of every account.
AccountFact and CourseCompletionFact store them as dates and instants, so
the comparison is one join over one narrow row per account for any as-of
day. refresh_facts() recomputes every row in one transaction, and
FactRefresh records when, for the dashboard to show.

A refresh is a few grouped queries over accounts, enrollments and the
per-account roll-up, so it recomputes everything rather than tracking
which accounts changed. docs/decisions/0026-dashboard-facts.md gives the
reasons.
"""

import logging
import time as clock
from datetime import datetime

from django.db import connection, transaction
from django.utils import timezone

from courses.models import EnrollmentStatus
from metrics.models import FactRefresh
from metrics.report_cache import clear_cached_reports

logger = logging.getLogger(__name__)

ACCOUNT_FACTS = "metrics_accountfact"
COURSE_FACTS = "metrics_coursecompletionfact"

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
# one index seek on (account, day) per account.
ACCOUNT_FACTS_SQL = f"""
INSERT INTO {ACCOUNT_FACTS} (
    account_id, first_usage_day, first_churn_event_day,
    first_completed_at, has_undated_completion)
SELECT account.id,
    (SELECT MIN(day.day) FROM metrics_accountday AS day
        WHERE day.account_id = account.id AND day.usage_events > 0
        AND day.day >= account.signup_date),
    (SELECT MIN(churn.churned_on) FROM customers_churnevent AS churn
        WHERE churn.account_id = account.id),
    done.first_completed_at,
    COALESCE(done.has_undated_completion, FALSE)
FROM customers_account AS account
LEFT JOIN ({COMPLETIONS_SQL.format(group="contact.account_id")}) AS done
    ON done.account_id = account.id
"""

COURSE_FACTS_SQL = f"""
INSERT INTO {COURSE_FACTS} (
    course_id, account_id, first_completed_at, has_undated_completion)
{COMPLETIONS_SQL.format(group="enrollment.course_id, contact.account_id")}
"""


def refresh_facts(now: datetime | None = None) -> FactRefresh:
    """Recompute every account's facts from the source tables and record when.

    Runs in one transaction, so the dashboard reads the old facts or the new
    ones, never a mix. Running it twice leaves the same rows. The report
    cache is cleared on commit, because cached reports used the old facts.
    """
    started = clock.monotonic()
    refreshed_at = now or timezone.now()
    completed = EnrollmentStatus.COMPLETED.value
    with transaction.atomic(), connection.cursor() as cursor:
        # Concurrent refreshes queue here, so one never deletes the rows
        # another is inserting.
        refresh = _lock_refresh_row(refreshed_at)
        cursor.execute(f"DELETE FROM {ACCOUNT_FACTS}")
        cursor.execute(f"DELETE FROM {COURSE_FACTS}")
        cursor.execute(ACCOUNT_FACTS_SQL, [completed])
        accounts = cursor.rowcount
        cursor.execute(COURSE_FACTS_SQL, [completed])
        refresh.refreshed_at = refreshed_at
        refresh.accounts = accounts
        refresh.duration_ms = round((clock.monotonic() - started) * 1000)
        refresh.save()
        transaction.on_commit(clear_cached_reports)
    logger.info(
        "Refreshed the dashboard facts of %s accounts in %s ms",
        accounts,
        refresh.duration_ms,
    )
    return refresh


def _lock_refresh_row(refreshed_at: datetime) -> FactRefresh:
    FactRefresh.objects.get_or_create(
        pk=FactRefresh.SINGLETON_PK,
        defaults={"refreshed_at": refreshed_at, "accounts": 0, "duration_ms": 0},
    )
    return FactRefresh.objects.select_for_update().get(pk=FactRefresh.SINGLETON_PK)


def last_refresh() -> FactRefresh | None:
    """Return the last refresh, or None when the facts were never computed."""
    return FactRefresh.objects.filter(pk=FactRefresh.SINGLETON_PK).first()
