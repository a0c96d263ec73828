"""The value a trigger preview shows beside each leaf, for every condition kind.

Each case builds a small record, previews a one-leaf trigger as of NOW and
checks the text shown for the first matching subject against a value worked
out by hand from the record. NOW is 2024-06-15 12:00 UTC and the site time
zone is UTC, so today is 2024-06-15.
"""

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from conditions import kinds
from courses.models import (
    Certificate,
    CourseVersion,
    Enrollment,
    Lesson,
    LessonProgress,
    Module,
)
from customers.models import Account, Contact, Subscription
from lifecycle.models import Stage, StageChange
from tests.factories import (
    NOW,
    make_account,
    make_contact,
    make_event,
    make_health,
    make_survey,
    make_ticket,
)
from tests.triggers.factories import make_course, make_trigger
from triggers.preview import format_value, preview_trigger

pytestmark = pytest.mark.django_db

TODAY = NOW.date()
ADMIN_ROLE = {
    "kind": "attribute",
    "field": "contact.role",
    "op": "==",
    "value": "admin",
}


@dataclass(frozen=True)
class Case:
    """A one-leaf condition, the record it is previewed on and the value shown."""

    condition: dict[str, Any]
    subject_type: str
    # Builds the record and returns the subject the preview must list first.
    build: Callable[[], Account | Contact]
    expected: str


# -- records ---------------------------------------------------------------------


def busy_contact() -> Contact:
    contact = make_contact()
    make_event(contact, NOW - timedelta(days=12))
    make_event(contact, NOW - timedelta(days=3), feature="reports")
    make_event(contact, NOW - timedelta(days=2), feature="exports")
    make_event(contact, NOW - timedelta(days=1), feature="reports")
    return contact


def lapsed_contact() -> Contact:
    contact = make_contact()
    make_event(contact, NOW - timedelta(days=30))
    make_event(contact, NOW - timedelta(days=12, hours=2))
    return contact


def newcomer() -> Contact:
    contact = make_contact()
    make_event(contact, NOW - timedelta(days=3))
    return contact


def kicked_off_account() -> Account:
    account = make_account(kickoff_date=date(2024, 6, 1))
    contact = make_contact(account)
    make_event(contact, datetime(2024, 6, 3, 10, 0, tzinfo=UTC))
    make_event(contact, datetime(2024, 6, 5, 10, 0, tzinfo=UTC))
    return account


def growing_team() -> Account:
    # Two contacts active in the last 30 days, one only in the 30 before.
    account = make_account()
    for days_ago in (2, 20, 45):
        make_event(make_contact(account), NOW - timedelta(days=days_ago))
    return account


def team_with_admins() -> Account:
    account = make_account()
    make_contact(account, role="admin")
    make_contact(account, role="admin")
    make_contact(account, role="viewer")
    return account


def recently_grown_team() -> Account:
    # The first contact brings admin; analyst is new 3 days ago. The blank
    # role 1 day ago never counts, and a second analyst 1 day ago is not new.
    account = make_account()
    make_contact(account, role="admin", added_at=NOW - timedelta(days=100))
    make_contact(account, role="analyst", added_at=NOW - timedelta(days=3))
    make_contact(account, role="", added_at=NOW - timedelta(days=1))
    make_contact(account, role="Analyst", added_at=NOW - timedelta(days=1))
    make_contact(account, added_at=NOW - timedelta(days=40))
    return account


def contact_in_account(**account_fields: Any) -> Callable[[], Contact]:
    return lambda: make_contact(make_account(**account_fields))


def scored_account() -> Account:
    account = make_account()
    make_health(account, TODAY - timedelta(days=40), 90)
    make_health(account, TODAY - timedelta(days=30), 70)
    make_health(account, TODAY - timedelta(days=1), 58)
    return account


def ticketed_account() -> Account:
    account = make_account()
    make_ticket(account, NOW - timedelta(days=3), priority="high")
    make_ticket(account, NOW - timedelta(days=5), priority="urgent")
    make_ticket(account, NOW - timedelta(days=6), priority="low")
    make_ticket(
        account,
        NOW - timedelta(days=8),
        priority="high",
        closed_at=NOW - timedelta(days=4),
    )
    make_ticket(account, NOW - timedelta(days=60), priority="high")
    return account


def surveyed_contact() -> Contact:
    contact = make_contact()
    make_survey(contact, NOW - timedelta(days=20), 6)
    make_survey(contact, NOW - timedelta(days=2), 9)
    make_survey(contact, NOW - timedelta(days=40), 4, kind="csat")
    make_survey(contact, NOW - timedelta(days=30), 5, kind="csat")
    make_survey(contact, NOW - timedelta(days=10), 5, kind="csat")
    make_survey(contact, NOW - timedelta(days=1), 4, kind="csat")
    return contact


def enroll(contact: Contact, course: Any, days_ago: float, **fields: Any) -> Any:
    return Enrollment.objects.create(
        contact=contact,
        course=course,
        source="manual",
        enrolled_at=NOW - timedelta(days=days_ago),
        **fields,
    )


def learner_due_for_recertification() -> Contact:
    # Basics: completed 20 days ago and marked by version 2, published 5 days ago.
    contact = learner()
    course = Enrollment.objects.get(contact=contact, course__slug="basics").course
    CourseVersion.objects.create(
        course=course,
        number=2,
        fingerprint="0" * 64,
        lesson_count=2,
        requires_recertification=True,
        published_at=NOW - timedelta(days=5),
    )
    Enrollment.objects.filter(contact=contact, course=course).update(
        recertification_version=2
    )
    return contact


def certified_learner() -> Contact:
    # Basics: a certificate issued 20 days ago that expires in 12 days.
    contact = learner()
    Certificate.objects.create(
        enrollment=Enrollment.objects.get(contact=contact, course__slug="basics"),
        code="0" * 32,
        learner_name="Learner",
        course_title="Basics",
        issued_at=NOW - timedelta(days=20),
        expires_at=NOW + timedelta(days=12),
    )
    return contact


def learner() -> Contact:
    # Basics: enrolled 30 days ago, started 29, completed 20, score 85.
    # Advanced: enrolled 12 days ago, started 4, completed 2, no score.
    # Reporting: enrolled 10 days ago, not started.
    contact = make_contact()
    enroll(
        contact,
        make_course(slug="basics"),
        30,
        started_at=NOW - timedelta(days=29),
        completed_at=NOW - timedelta(days=20),
        status="completed",
        score=Decimal("85.00"),
    )
    enroll(
        contact,
        make_course(slug="advanced"),
        12,
        started_at=NOW - timedelta(days=4),
        completed_at=NOW - timedelta(days=2),
        status="completed",
    )
    enroll(contact, make_course(slug="reporting"), 10)
    return contact


def quiz_taker() -> Contact:
    course = make_course(slug="analytics")
    module = Module.objects.create(course=course, title="Basics")
    contact = make_contact()
    enrollment = enroll(contact, course, 10)
    for title, score in (("Final quiz", "90"), ("Practice", "65")):
        lesson = Lesson.objects.create(module=module, title=title, kind="quiz")
        LessonProgress.objects.create(
            enrollment=enrollment,
            lesson=lesson,
            started_at=NOW - timedelta(days=3),
            completed_at=NOW - timedelta(days=2),
            score=Decimal(score),
        )
    return contact


def staged_account() -> Account:
    # Entered adoption at 23:00 on 26 May: 19 days and 13 hours before NOW,
    # but 20 calendar days, which is what days_in_stage counts.
    account = make_account()
    for slug, changed_at in (
        ("onboarding", NOW - timedelta(days=60)),
        ("adoption", datetime(2024, 5, 26, 23, 0, tzinfo=UTC)),
    ):
        StageChange.objects.create(
            account=account,
            to_stage=Stage.objects.get(slug=slug),
            changed_at=changed_at,
            source="criteria",
        )
    return account


def subscribe(account: Account, plan: str, started_on: date, **fields: Any) -> None:
    Subscription.objects.create(
        account=account,
        external_id=f"S-{account.pk}-{plan}-{started_on.isoformat()}",
        started_on=started_on,
        plan=plan,
        seats=10,
        mrr=Decimal("100.00"),
        arr=Decimal("1200.00"),
        **fields,
    )


def overlapping_subscriptions() -> Account:
    # Pro and a later Enterprise are both in effect; the leaf names Pro.
    account = make_account(plan="Enterprise")
    subscribe(account, "Basic", date(2023, 1, 1), ended_on=date(2024, 1, 1))
    subscribe(account, "Pro", date(2024, 1, 1))
    subscribe(account, "Enterprise", date(2024, 3, 1))
    return account


def upgraded_account() -> Account:
    account = make_account()
    subscribe(account, "Basic", date(2024, 1, 1), ended_on=date(2024, 5, 1))
    subscribe(account, "Pro", date(2024, 5, 1), is_upgrade=True)
    subscribe(account, "Enterprise", date(2024, 6, 1), is_upgrade=True)
    return account


# -- cases -------------------------------------------------------------------------

CASES = {
    "active_users_trend": Case(
        {"kind": "active_users_trend", "days": 30}, "account", growing_team, "2"
    ),
    "any_contact": Case(
        {"kind": "any_contact", "where": ADMIN_ROLE}, "account", team_with_admins, "2"
    ),
    "attribute": Case(
        {"kind": "attribute", "field": "account.plan", "op": "==", "value": "Pro"},
        "contact",
        contact_in_account(plan="Pro"),
        "Pro",
    ),
    "contact_added_within": Case(
        {"kind": "contact_added_within", "days": 7},
        "contact",
        lambda: make_contact(added_at=NOW - timedelta(days=3)),
        "2024-06-12 12:00 (3 days ago)",
    ),
    "contact_count": Case(
        {"kind": "contact_count", "op": ">=", "value": 3},
        "account",
        team_with_admins,
        "3",
    ),
    "certificate_expires_within": Case(
        {"kind": "certificate_expires_within", "course": "basics", "days": 30},
        "contact",
        certified_learner,
        "2024-06-27 12:00 (in 12 days)",
    ),
    "contacts_added": Case(
        {"kind": "contacts_added", "days": 7, "op": ">=", "value": 1},
        "account",
        recently_grown_team,
        "3",
    ),
    "contacts_matching": Case(
        {"kind": "contacts_matching", "where": ADMIN_ROLE, "op": ">=", "value": 2},
        "account",
        team_with_admins,
        "2",
    ),
    "course_completed": Case(
        {"kind": "course_completed"},
        "contact",
        learner,
        "2024-06-13 12:00 (2 days ago)",
    ),
    "course_enrolled": Case(
        {"kind": "course_enrolled", "course": "basics"},
        "contact",
        learner,
        "2024-05-16 12:00 (30 days ago)",
    ),
    "course_not_started": Case(
        {"kind": "course_not_started", "days": 7},
        "contact",
        learner,
        "2024-06-05 12:00 (10 days ago)",
    ),
    "course_score": Case(
        {"kind": "course_score", "course": "basics", "op": ">=", "value": 80},
        "contact",
        learner,
        "85",
    ),
    "course_started": Case(
        {"kind": "course_started"},
        "contact",
        learner,
        "2024-06-11 12:00 (4 days ago)",
    ),
    "date_within": Case(
        {
            "kind": "date_within",
            "field": "account.renewal_date",
            "days": 60,
            "direction": "next",
        },
        "contact",
        contact_in_account(renewal_date=date(2024, 7, 15)),
        "2024-07-15 (in 30 days)",
    ),
    "days_in_stage": Case(
        {"kind": "days_in_stage", "op": ">=", "value": 20},
        "account",
        staged_account,
        "2024-05-26 (20 days ago)",
    ),
    "days_since": Case(
        {"kind": "days_since", "field": "account.kickoff_date", "op": ">", "value": 29},
        "contact",
        contact_in_account(kickoff_date=date(2024, 5, 16)),
        "2024-05-16 (30 days ago)",
    ),
    "days_until": Case(
        {
            "kind": "days_until",
            "field": "account.renewal_date",
            "op": "<=",
            "value": 90,
        },
        "account",
        lambda: make_account(renewal_date=date(2024, 7, 30)),
        "2024-07-30 (in 45 days)",
    ),
    "distinct_features": Case(
        {"kind": "distinct_features", "days": 7, "op": ">=", "value": 2},
        "contact",
        busy_contact,
        "2",
    ),
    "event_count": Case(
        {"kind": "event_count", "days": 7, "op": ">=", "value": 1},
        "contact",
        busy_contact,
        "3",
    ),
    "first_event": Case(
        {"kind": "first_event", "days": 7},
        "contact",
        newcomer,
        "2024-06-12 12:00 (3 days ago)",
    ),
    "first_usage_within": Case(
        {"kind": "first_usage_within", "days": 7, "after": "kickoff"},
        "account",
        kicked_off_account,
        "2024-06-03 10:00 (12 days ago)",
    ),
    "health_change": Case(
        {"kind": "health_change", "days": 30, "op": "<=", "value": -10},
        "account",
        scored_account,
        "-12",
    ),
    "health_score": Case(
        {"kind": "health_score", "op": "<", "value": 60},
        "account",
        scored_account,
        "58",
    ),
    "inactivity": Case(
        {"kind": "inactivity", "days": 10},
        "contact",
        lapsed_contact,
        "2024-06-03 10:00 (12 days ago)",
    ),
    "entered_stage": Case(
        {"kind": "entered_stage", "stage": "adoption", "days": 30},
        "account",
        staged_account,
        # A time of day shows whole days elapsed: 19 days and 13 hours.
        "2024-05-26 23:00 (19 days ago)",
    ),
    "lifecycle_stage": Case(
        {"kind": "lifecycle_stage", "op": "==", "value": "adoption"},
        "account",
        staged_account,
        "adoption",
    ),
    "new_role_added": Case(
        {"kind": "new_role_added", "days": 7},
        "account",
        recently_grown_team,
        "analyst",
    ),
    "open_tickets": Case(
        {"kind": "open_tickets", "op": ">=", "value": 1, "priorities": ["high"]},
        "account",
        ticketed_account,
        "2",
    ),
    "plan": Case(
        {"kind": "plan", "plans": ["Pro", "Enterprise"]},
        "contact",
        contact_in_account(plan="Enterprise"),
        "Enterprise",
    ),
    "quiz_score": Case(
        {"kind": "quiz_score", "course": "analytics", "op": ">=", "value": 70},
        "contact",
        quiz_taker,
        "77.5",
    ),
    "recertification_due": Case(
        {"kind": "recertification_due", "course": "basics"},
        "contact",
        learner_due_for_recertification,
        "2024-06-10 12:00 (5 days ago)",
    ),
    "renewal_within": Case(
        {"kind": "renewal_within", "days": 60},
        "account",
        lambda: make_account(renewal_date=date(2024, 7, 15)),
        "2024-07-15 (in 30 days)",
    ),
    "subscription_plan": Case(
        {"kind": "subscription_plan", "plans": ["Pro"]},
        "account",
        overlapping_subscriptions,
        "Pro",
    ),
    "survey_average": Case(
        {
            "kind": "survey_average",
            "survey": "csat",
            "days": 35,
            "op": ">=",
            "value": 4,
        },
        "contact",
        surveyed_contact,
        "4.67",
    ),
    "survey_latest": Case(
        {"kind": "survey_latest", "survey": "nps", "op": ">=", "value": 9},
        "contact",
        surveyed_contact,
        "9",
    ),
    "survey_score": Case(
        {"kind": "survey_score", "survey": "nps", "min": 5, "max": 10, "days": 30},
        "contact",
        surveyed_contact,
        "9",
    ),
    "team_growth": Case(
        {"kind": "team_growth", "days": 30, "value": 2},
        "account",
        recently_grown_team,
        "3",
    ),
    "tickets": Case(
        {
            "kind": "tickets",
            "days": 30,
            "priority": ["high", "urgent"],
            "status": "open",
            "op": ">=",
            "value": 1,
        },
        "account",
        ticketed_account,
        "2",
    ),
    "upgraded_within": Case(
        {"kind": "upgraded_within", "days": 60},
        "account",
        upgraded_account,
        "2024-06-01 (14 days ago)",
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_preview_shows_leaf_value(name):
    case = CASES[name]
    subject = case.build()
    trigger = make_trigger(case.condition, subject_type=case.subject_type)

    preview = preview_trigger(trigger, NOW)

    assert preview.matched == 1
    first_subject = preview.sample[0]
    subject_id = (
        first_subject.contact_id
        if case.subject_type == "contact"
        else first_subject.account_id
    )
    assert subject_id == subject.pk
    assert preview.leaves[0].has_value
    assert first_subject.leaves[0].holds
    assert first_subject.leaves[0].value == case.expected


def test_every_kind_has_value_and_case():
    # A kind added without a value, or without a case here, fails this test.
    registered = kinds()

    assert sorted(name for name, kind in registered.items() if kind.value is None) == []
    assert sorted(registered) == sorted(CASES)


# -- values beyond the first case of a kind ------------------------------------------


@pytest.mark.parametrize(
    ("condition", "build", "expected"),
    [
        (
            {
                "kind": "attribute",
                "field": "account.properties.employees",
                "op": ">=",
                "value": 100,
            },
            contact_in_account(properties={"employees": 250}),
            "250",
        ),
        (
            {
                "kind": "attribute",
                "field": "contact.is_champion",
                "op": "==",
                "value": True,
            },
            lambda: make_contact(is_champion=True),
            "true",
        ),
        (
            {
                "kind": "attribute",
                "field": "account.renewal_date",
                "op": ">",
                "value": "2024-06-01",
            },
            contact_in_account(renewal_date=date(2024, 6, 25)),
            "2024-06-25 (in 10 days)",
        ),
        (
            # A datetime field is compared, and shown, as its date.
            {
                "kind": "days_since",
                "field": "contact.added_at",
                "op": ">=",
                "value": 2,
            },
            lambda: make_contact(added_at=datetime(2024, 6, 13, 23, 0, tzinfo=UTC)),
            "2024-06-13 (2 days ago)",
        ),
        (
            {
                "kind": "quiz_score",
                "course": "analytics",
                "lesson": "Final quiz",
                "op": ">=",
                "value": 80,
            },
            quiz_taker,
            "90",
        ),
    ],
)
def test_preview_shows_contact_values(condition, build, expected):
    subject = build()
    trigger = make_trigger(condition)

    preview = preview_trigger(trigger, NOW)

    assert preview.matched == 1
    assert preview.sample[0].contact_id == subject.pk
    assert preview.sample[0].leaves[0].value == expected


def test_subscription_plan_without_rows_shows_account_plan():
    account = make_account(plan="Pro")
    trigger = make_trigger(
        {"kind": "subscription_plan", "plans": ["Pro"]}, subject_type="account"
    )

    preview = preview_trigger(trigger, NOW)

    assert preview.sample[0].account_id == account.pk
    assert preview.sample[0].leaves[0].value == "Pro"


def test_failing_leaf_shows_its_value():
    # In an "any" group the subject matches on days_until; the
    # subscription_plan leaf fails and shows the plan in effect instead.
    account = make_account(renewal_date=date(2024, 7, 30))
    subscribe(account, "Basic", date(2024, 1, 1))
    trigger = make_trigger(
        {
            "any": [
                {"kind": "subscription_plan", "plans": ["Enterprise"]},
                {
                    "kind": "days_until",
                    "field": "account.renewal_date",
                    "op": "<=",
                    "value": 90,
                },
            ]
        },
        subject_type="account",
    )

    preview = preview_trigger(trigger, NOW)

    plan, days = preview.sample[0].leaves
    assert not plan.holds
    assert plan.value == "Basic"
    assert days.holds
    assert days.value == "2024-07-30 (in 45 days)"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, "true"),
        (False, "false"),
        (4.666666, "4.67"),
        (Decimal("75.0000"), "75"),
        (Decimal("77.50"), "77.5"),
        (-12, "-12"),
        ("analyst", "analyst"),
    ],
)
def test_format_value_of_scalars(value, expected):
    assert format_value(value, NOW) == expected
