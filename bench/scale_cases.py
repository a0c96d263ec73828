"""The scale benchmark's cases: a condition as text beside its predicate in SQL.

Each case names the condition kind it covers, which must be the kind at
the root of the parsed condition. The SQL counts the contacts that existed
as of %(as_of)s and match, with %(today)s the date of as_of in UTC (the
benchmark runs with the site time zone UTC). It is written the way an
engineer would write the predicate by hand: a correlated EXISTS or
subquery on the indexed columns, a join to the account for account
columns, EXISTS for "at least one" and NOT EXISTS for "none". The
benchmark fails when the two counts differ, so each SQL query is checked
against the compiled condition on every run.

SWEEP_TRIGGERS are the 20 triggers of the sweep: the demo program's
conditions and a mix of the others, alone and combined.
"""

from dataclasses import dataclass

from triggers.models import Occurrence

# The scale population's courses and lesson, created by bench.scale.
ONBOARDING = "scale-onboarding"
ADVANCED = "scale-advanced"
FINAL_QUIZ = "Final quiz"


@dataclass(frozen=True)
class Case:
    kind: str
    text: str
    sql: str


CONTACTS = "SELECT count(*) FROM customers_contact c WHERE c.added_at <= %(as_of)s"
# Account facts are the same for each contact of the account, so a hand
# query tests them once per account, as the compiled kinds do.
ACCOUNTS_MATCHING = (
    CONTACTS + " AND c.account_id IN (SELECT a.id FROM customers_account a WHERE "
)
CONTACTS_WITH_ACCOUNT = (
    "SELECT count(*) FROM customers_contact c"
    " JOIN customers_account a ON a.id = c.account_id"
    " WHERE c.added_at <= %(as_of)s"
)


def in_window(alias: str, column: str, days: int) -> str:
    """Return the half-open window (as_of - days, as_of] on a timestamp column."""
    return (
        f"{alias}.{column} > %(as_of)s - INTERVAL '{days} days'"
        f" AND {alias}.{column} <= %(as_of)s"
    )


def contact_events(days: int, name: str = "") -> str:
    """Return the WHERE clause of contact c's usage events e in the window."""
    clause = f"e.contact_id = c.id AND {in_window('e', 'occurred_at', days)}"
    if name:
        clause += f" AND e.name = '{name}'"
    return clause


def latest_health(day: str) -> str:
    return (
        "(SELECT h.score FROM customers_healthscore h"
        f" WHERE h.account_id = a.id AND h.scored_on <= {day}"
        " ORDER BY h.scored_on DESC LIMIT 1)"
    )


def enrollment_in(course: str) -> str:
    """Return the FROM and WHERE of contact c's enrollment en in a course."""
    return (
        "courses_enrollment en JOIN courses_course co ON co.id = en.course_id"
        f" WHERE en.contact_id = c.id AND co.slug = '{course}'"
    )


def valid_certificate_in(course: str) -> str:
    """Return the FROM and WHERE of contact c's certificates ce valid as of as_of."""
    return (
        "courses_certificate ce"
        " JOIN courses_enrollment en ON en.id = ce.enrollment_id"
        " JOIN courses_course co ON co.id = en.course_id"
        f" WHERE en.contact_id = c.id AND co.slug = '{course}'"
        " AND ce.issued_at <= %(as_of)s"
        " AND (ce.revoked_at IS NULL OR ce.revoked_at > %(as_of)s)"
    )


def not_by_as_of(column: str) -> str:
    """Return the test that a nullable timestamp had not happened by as_of."""
    return f"(en.{column} IS NULL OR en.{column} > %(as_of)s)"


def latest_stage_change(column: str) -> str:
    return (
        f"(SELECT {column} FROM lifecycle_stagechange sc"
        " JOIN lifecycle_stage st ON st.id = sc.to_stage_id"
        " WHERE sc.account_id = a.id AND sc.changed_at <= %(as_of)s"
        " ORDER BY sc.changed_at DESC, sc.id DESC LIMIT 1)"
    )


CUSTOMER_CASES = [
    Case(
        "attribute",
        'account.properties.industry == "fintech"',
        CONTACTS_WITH_ACCOUNT + " AND a.properties ->> 'industry' = 'fintech'",
    ),
    Case(
        "attribute",
        'contact.role in ["admin", "manager"]',
        CONTACTS + " AND c.role IN ('admin', 'manager')",
    ),
    Case(
        "days_until",
        "days_until(account.renewal_date) <= 90",
        CONTACTS_WITH_ACCOUNT + " AND a.renewal_date <= %(today)s + 90",
    ),
    Case(
        "days_since",
        "days_since(account.kickoff_date) > 500",
        CONTACTS_WITH_ACCOUNT + " AND a.kickoff_date < %(today)s - 500",
    ),
    Case(
        "date_within",
        "date_within(contact.added_at, last 30 days)",
        CONTACTS + " AND c.added_at >= (%(today)s - 29)::timestamptz",
    ),
    Case(
        "inactivity",
        "inactive(last 10 days)",
        CONTACTS
        + " AND NOT EXISTS (SELECT 1 FROM customers_usageevent e WHERE "
        + contact_events(10)
        + ")",
    ),
    Case(
        "event_count",
        'count(event "Signed In", last 30 days) >= 5',
        CONTACTS
        + " AND (SELECT count(*) FROM customers_usageevent e WHERE "
        + contact_events(30, "Signed In")
        + ") >= 5",
    ),
    Case(
        "event_count",
        'count(event "Signed In", last 10 days) == 0',
        CONTACTS
        + " AND NOT EXISTS (SELECT 1 FROM customers_usageevent e WHERE "
        + contact_events(10, "Signed In")
        + ")",
    ),
    Case(
        "distinct_features",
        'distinct(event "Feature Used".feature, last 7 days) >= 3',
        CONTACTS
        + " AND (SELECT count(DISTINCT e.feature) FROM customers_usageevent e WHERE "
        + contact_events(7, "Feature Used")
        + " AND e.feature <> '') >= 3",
    ),
    Case(
        "first_usage_within",
        "first_usage(within 7 days of kickoff)",
        ACCOUNTS_MATCHING + "EXISTS (SELECT 1 FROM customers_usageevent e"
        " WHERE e.account_id = a.id AND e.occurred_at <= %(as_of)s"
        " AND e.occurred_at >= a.kickoff_date::timestamptz"
        " AND e.occurred_at < (a.kickoff_date + 8)::timestamptz))",
    ),
    Case(
        "first_event",
        'first_seen(event "Integration Connected", last 30 days)',
        CONTACTS
        + " AND EXISTS (SELECT 1 FROM customers_usageevent e WHERE "
        + contact_events(30, "Integration Connected")
        + ") AND NOT EXISTS (SELECT 1 FROM customers_usageevent e"
        " WHERE e.contact_id = c.id AND e.name = 'Integration Connected'"
        " AND e.occurred_at <= %(as_of)s - INTERVAL '30 days')",
    ),
    Case(
        "active_users_trend",
        "active_users_stable(last 30 days)",
        ACCOUNTS_MATCHING + "(SELECT count(DISTINCT e.contact_id) FROM"
        " customers_usageevent e WHERE e.account_id = a.id AND "
        + in_window("e", "occurred_at", 30)
        + ") >= GREATEST(1, (SELECT count(DISTINCT e.contact_id) FROM"
        " customers_usageevent e WHERE e.account_id = a.id"
        " AND e.occurred_at > %(as_of)s - INTERVAL '60 days'"
        " AND e.occurred_at <= %(as_of)s - INTERVAL '30 days')))",
    ),
    Case(
        "renewal_within",
        "renewal_within(next 60 days)",
        CONTACTS_WITH_ACCOUNT + " AND a.renewal_date >= %(today)s"
        " AND a.renewal_date <= %(today)s + 60",
    ),
    Case(
        "health_score",
        "account.health_score > 70",
        ACCOUNTS_MATCHING + latest_health("%(today)s") + " > 70)",
    ),
    Case(
        "health_change",
        "health_change(last 30 days) <= -10",
        ACCOUNTS_MATCHING
        + latest_health("%(today)s")
        + " - "
        + latest_health("%(today)s - 30")
        + " <= -10)",
    ),
    Case(
        "plan",
        'plan_in(["Pro", "Enterprise"])',
        CONTACTS_WITH_ACCOUNT + " AND a.plan IN ('Pro', 'Enterprise')",
    ),
    Case(
        "subscription_plan",
        'subscribed_to("Pro")',
        ACCOUNTS_MATCHING + "(EXISTS (SELECT 1 FROM customers_subscription s"
        " WHERE s.account_id = a.id AND s.started_on <= %(today)s"
        " AND NOT s.is_trial AND s.plan = 'Pro'"
        " AND (s.ended_on IS NULL OR s.ended_on > %(today)s))"
        " OR (a.plan = 'Pro' AND NOT EXISTS (SELECT 1 FROM customers_subscription s"
        "   WHERE s.account_id = a.id))))",
    ),
    Case(
        "upgraded_within",
        "upgraded(last 90 days)",
        ACCOUNTS_MATCHING + "EXISTS (SELECT 1 FROM customers_subscription s"
        " WHERE s.account_id = a.id AND s.is_upgrade"
        " AND s.started_on > %(today)s - 90 AND s.started_on <= %(today)s))",
    ),
    Case(
        "team_growth",
        "team_growth(last 30 days, value 3)",
        ACCOUNTS_MATCHING + "(SELECT count(*) FROM customers_contact n"
        " WHERE n.account_id = a.id AND " + in_window("n", "added_at", 30) + ") >= 3)",
    ),
    Case(
        "contacts_added",
        "contacts_added(last 60 days) >= 5",
        ACCOUNTS_MATCHING + "(SELECT count(*) FROM customers_contact n"
        " WHERE n.account_id = a.id AND " + in_window("n", "added_at", 60) + ") >= 5)",
    ),
    Case(
        "contact_count",
        "contact_count >= 25",
        ACCOUNTS_MATCHING + "(SELECT count(*) FROM customers_contact n"
        " WHERE n.account_id = a.id AND n.added_at <= %(as_of)s) >= 25)",
    ),
    Case(
        "contact_added_within",
        "joined(last 7 days)",
        CONTACTS + " AND c.added_at > %(as_of)s - INTERVAL '7 days'",
    ),
    Case(
        "new_role_added",
        "new_role_added(last 30 days)",
        ACCOUNTS_MATCHING + "EXISTS (SELECT 1 FROM customers_contact n"
        " WHERE n.account_id = a.id AND n.role <> '' AND "
        + in_window("n", "added_at", 30)
        + " AND EXISTS (SELECT 1 FROM customers_contact b"
        "   WHERE b.account_id = n.account_id AND b.added_at < n.added_at)"
        " AND NOT EXISTS (SELECT 1 FROM customers_contact b"
        "   WHERE b.account_id = n.account_id AND upper(b.role) = upper(n.role)"
        "   AND b.added_at < n.added_at)))",
    ),
    Case(
        "any_contact",
        f'any_contact(contact.role == "admin" and completed("{ONBOARDING}"))',
        ACCOUNTS_MATCHING + "EXISTS (SELECT 1 FROM customers_contact n"
        " JOIN courses_enrollment en ON en.contact_id = n.id"
        " JOIN courses_course co ON co.id = en.course_id"
        " WHERE n.account_id = a.id AND n.added_at <= %(as_of)s"
        f" AND n.role = 'admin' AND co.slug = '{ONBOARDING}'"
        " AND en.completed_at <= %(as_of)s))",
    ),
    Case(
        "contacts_matching",
        "contacts(count(event, last 7 days) >= 1) >= 3",
        ACCOUNTS_MATCHING + "(SELECT count(*) FROM customers_contact n"
        " WHERE n.account_id = a.id AND n.added_at <= %(as_of)s"
        " AND EXISTS (SELECT 1 FROM customers_usageevent e"
        " WHERE e.contact_id = n.id AND "
        + in_window("e", "occurred_at", 7)
        + ")) >= 3)",
    ),
    Case(
        "survey_score",
        "survey_answered(nps, last 30 days, min 9, max 10)",
        CONTACTS + " AND EXISTS (SELECT 1 FROM customers_surveyresponse s"
        " WHERE s.contact_id = c.id AND s.kind = 'nps' AND s.score BETWEEN 9 AND 10"
        " AND " + in_window("s", "submitted_at", 30) + ")",
    ),
    Case(
        "survey_latest",
        "latest_score(nps) >= 9",
        CONTACTS + " AND (SELECT s.score FROM customers_surveyresponse s"
        " WHERE s.contact_id = c.id AND s.kind = 'nps'"
        " AND s.submitted_at <= %(as_of)s"
        " ORDER BY s.submitted_at DESC, s.id DESC LIMIT 1) >= 9",
    ),
    Case(
        "survey_average",
        "average_score(csat, last 90 days) >= 4.5",
        CONTACTS + " AND (SELECT avg(s.score) FROM customers_surveyresponse s"
        " WHERE s.contact_id = c.id AND s.kind = 'csat'"
        " AND " + in_window("s", "submitted_at", 90) + ") >= 4.5",
    ),
    Case(
        "open_tickets",
        'open_tickets(priorities ["high", "urgent"]) >= 2',
        ACCOUNTS_MATCHING + "(SELECT count(*) FROM customers_supportticket t"
        " WHERE t.account_id = a.id AND t.opened_at <= %(as_of)s"
        " AND (t.closed_at IS NULL OR t.closed_at > %(as_of)s)"
        " AND t.priority IN ('high', 'urgent')) >= 2)",
    ),
    Case(
        "tickets",
        'tickets(last 30 days, priority ["high", "urgent"], topic "billing",'
        ' status "open") >= 1',
        ACCOUNTS_MATCHING + "EXISTS (SELECT 1 FROM customers_supportticket t"
        " WHERE t.account_id = a.id AND "
        + in_window("t", "opened_at", 30)
        + " AND (t.closed_at IS NULL OR t.closed_at > %(as_of)s)"
        " AND t.priority IN ('high', 'urgent') AND t.topic = 'billing'))",
    ),
]

LEARNING_CASES = [
    Case(
        "course_enrolled",
        f'enrolled("{ADVANCED}", last 90 days)',
        CONTACTS
        + " AND EXISTS (SELECT 1 FROM "
        + enrollment_in(ADVANCED)
        + " AND "
        + in_window("en", "enrolled_at", 90)
        + " AND "
        + not_by_as_of("ended_at")
        + ")",
    ),
    Case(
        "course_started",
        f'started("{ONBOARDING}")',
        CONTACTS
        + " AND EXISTS (SELECT 1 FROM "
        + enrollment_in(ONBOARDING)
        + " AND en.started_at <= %(as_of)s)",
    ),
    Case(
        "course_completed",
        "completed",
        CONTACTS + " AND EXISTS (SELECT 1 FROM courses_enrollment en"
        " WHERE en.contact_id = c.id AND en.completed_at <= %(as_of)s)",
    ),
    Case(
        "course_not_started",
        f'not_started("{ONBOARDING}", 7 days)',
        CONTACTS
        + " AND EXISTS (SELECT 1 FROM "
        + enrollment_in(ONBOARDING)
        + " AND en.enrolled_at <= %(as_of)s - INTERVAL '7 days'"
        + " AND "
        + " AND ".join(
            not_by_as_of(column)
            for column in ("started_at", "completed_at", "ended_at")
        )
        + ")",
    ),
    Case(
        "course_score",
        f'course_score("{ONBOARDING}") >= 80',
        # One enrollment per contact and course, so "its score" is "a score".
        CONTACTS
        + " AND EXISTS (SELECT 1 FROM "
        + enrollment_in(ONBOARDING)
        + " AND (en.completed_at <= %(as_of)s OR en.ended_at <= %(as_of)s)"
        " AND en.score >= 80)",
    ),
    Case(
        "recertification_due",
        f'recertification_due("{ONBOARDING}")',
        # Due from the publication of the version that marked the enrollment.
        CONTACTS + " AND EXISTS (SELECT 1 FROM courses_enrollment en"
        " JOIN courses_course co ON co.id = en.course_id"
        " JOIN courses_courseversion v ON v.course_id = en.course_id"
        " AND v.number = en.recertification_version"
        f" WHERE en.contact_id = c.id AND co.slug = '{ONBOARDING}'"
        " AND en.completed_at <= %(as_of)s AND v.published_at <= %(as_of)s)",
    ),
    Case(
        "certificate_expires_within",
        f'certificate_expires_within("{ONBOARDING}", next 60 days)',
        # A newer certificate that outlasts the window leaves nothing to renew.
        CONTACTS
        + " AND EXISTS (SELECT 1 FROM "
        + valid_certificate_in(ONBOARDING)
        + " AND ce.expires_at > %(as_of)s"
        " AND ce.expires_at <= %(as_of)s + INTERVAL '60 days')"
        " AND NOT EXISTS (SELECT 1 FROM "
        + valid_certificate_in(ONBOARDING)
        + " AND (ce.expires_at IS NULL"
        " OR ce.expires_at > %(as_of)s + INTERVAL '60 days'))",
    ),
    Case(
        "quiz_score",
        f'quiz_score("{ONBOARDING}", lesson "{FINAL_QUIZ}") >= 80',
        CONTACTS + " AND (SELECT avg(p.score) FROM courses_lessonprogress p"
        " JOIN courses_lesson l ON l.id = p.lesson_id"
        " JOIN courses_enrollment en ON en.id = p.enrollment_id"
        " JOIN courses_course co ON co.id = en.course_id"
        f" WHERE en.contact_id = c.id AND co.slug = '{ONBOARDING}'"
        f" AND l.title = '{FINAL_QUIZ}' AND p.completed_at <= %(as_of)s"
        " AND p.score IS NOT NULL) >= 80",
    ),
    Case(
        "quiz_score",
        f'quiz_score("{ONBOARDING}") >= 70',
        CONTACTS + " AND (SELECT avg(p.score) FROM courses_lessonprogress p"
        " JOIN courses_enrollment en ON en.id = p.enrollment_id"
        " JOIN courses_course co ON co.id = en.course_id"
        f" WHERE en.contact_id = c.id AND co.slug = '{ONBOARDING}'"
        " AND p.completed_at <= %(as_of)s AND p.score IS NOT NULL) >= 70",
    ),
]

STAGE_CASES = [
    Case(
        "lifecycle_stage",
        'account.stage in ["renewal", "advocacy"]',
        ACCOUNTS_MATCHING
        + latest_stage_change("st.slug")
        + " IN ('renewal', 'advocacy'))",
    ),
    Case(
        "days_in_stage",
        "days_in_stage >= 60",
        # Entered on a date at least 60 days before today: before the start
        # of the day 59 days ago.
        ACCOUNTS_MATCHING
        + latest_stage_change("sc.changed_at")
        + " < (%(today)s - 59)::timestamptz)",
    ),
    Case(
        "days_in_stage",
        'days_in_stage("adoption") > 14',
        ACCOUNTS_MATCHING + "EXISTS (SELECT 1 FROM (SELECT st.slug, sc.changed_at"
        " FROM lifecycle_stagechange sc"
        " JOIN lifecycle_stage st ON st.id = sc.to_stage_id"
        " WHERE sc.account_id = a.id AND sc.changed_at <= %(as_of)s"
        " ORDER BY sc.changed_at DESC, sc.id DESC LIMIT 1) AS latest"
        " WHERE latest.slug = 'adoption'"
        " AND latest.changed_at < (%(today)s - 14)::timestamptz))",
    ),
    Case(
        "entered_stage",
        'entered_stage("renewal", last 90 days)',
        ACCOUNTS_MATCHING + "EXISTS (SELECT 1 FROM lifecycle_stagechange sc"
        " JOIN lifecycle_stage st ON st.id = sc.to_stage_id"
        " WHERE sc.account_id = a.id AND st.slug = 'renewal'"
        " AND sc.changed_at > %(as_of)s - INTERVAL '90 days'"
        " AND sc.changed_at <= %(as_of)s))",
    ),
]

KIND_CASES = CUSTOMER_CASES + LEARNING_CASES + STAGE_CASES


@dataclass(frozen=True)
class SweepTrigger:
    text: str
    occurrence: str = Occurrence.ONCE


SWEEP_TRIGGERS = [
    # The demo program.
    SweepTrigger("joined(last 1 day)"),
    SweepTrigger(
        "inactive(last 10 days) and count(event, last 90 days) >= 1",
        Occurrence.INACTIVITY_SPELL,
    ),
    SweepTrigger("team_growth(last 30 days, value 3)"),
    SweepTrigger("renewal_within(next 60 days)", Occurrence.RENEWAL_DATE),
    SweepTrigger(
        "survey_answered(nps, last 1 day, min 9, max 10)", Occurrence.SURVEY_RESPONSE
    ),
    SweepTrigger(
        "renewal_within(next 90 days) and account.health_score > 70",
        Occurrence.RENEWAL_DATE,
    ),
    # Conditions a CSM writes beside them.
    SweepTrigger(
        "days_until(account.renewal_date) <= 90 and account.health_score > 70"
    ),
    SweepTrigger('count(event "Signed In", last 10 days) == 0'),
    SweepTrigger('distinct(event "Feature Used".feature, last 7 days) >= 3'),
    SweepTrigger("contacts_added(last 30 days) >= 2 and contact.is_champion"),
    SweepTrigger(f'not_started("{ONBOARDING}", 7 days)'),
    SweepTrigger(f'completed("{ONBOARDING}") and not enrolled("{ADVANCED}")'),
    SweepTrigger(
        'tickets(last 30 days, priority ["high", "urgent"], status "open") >= 1'
        " and contact.is_champion"
    ),
    SweepTrigger(
        'latest_score(nps, last 90 days) <= 6 and account.plan == "Enterprise"'
    ),
    SweepTrigger("health_change(last 30 days) <= -10"),
    SweepTrigger('days_in_stage("onboarding") > 14'),
    SweepTrigger('first_seen(event "Integration Connected", last 7 days)'),
    SweepTrigger(
        'account.stage == "adoption" and any_contact(contact.role == "admin"'
        f' and completed("{ONBOARDING}"))'
    ),
    SweepTrigger(
        f'quiz_score("{ONBOARDING}", lesson "{FINAL_QUIZ}") >= 80'
        f' and not enrolled("{ADVANCED}")'
    ),
    SweepTrigger(
        'account.properties.industry == "fintech" and plan_in(["Pro", "Enterprise"])'
        " and active_users_stable(last 30 days)"
    ),
]
