"""Conditions written as text, compiled and run against small hand-made records."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conditions import (
    ConditionSyntaxError,
    EvaluationContext,
    compile_condition,
    parse_condition,
)
from courses.models import Enrollment, Lesson, LessonProgress, Module
from customers.models import Account, Contact
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
from triggers.models import Firing
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db
TODAY = NOW.date()


def accounts_matching(text, as_of=NOW):
    tree = parse_condition(text, "account")
    condition = compile_condition(tree, EvaluationContext("account", as_of))
    return set(Account.objects.filter(condition).values_list("pk", flat=True))


def contacts_matching(text, as_of=NOW):
    tree = parse_condition(text, "contact")
    condition = compile_condition(tree, EvaluationContext("contact", as_of))
    return set(Contact.objects.filter(condition).values_list("pk", flat=True))


# -- attributes and properties ---------------------------------------------------


def test_property_text_and_number():
    fintech = make_account(properties={"industry": "fintech", "employees": 250})
    small_fintech = make_account(properties={"industry": "fintech", "employees": 20})
    retail = make_account(properties={"industry": "retail", "employees": 900})
    bare = make_account()

    assert accounts_matching('account.properties.industry == "fintech"') == {
        fintech.pk,
        small_fintech.pk,
    }
    assert accounts_matching("account.properties.employees > 100") == {
        fintech.pk,
        retail.pk,
    }
    assert accounts_matching('account.properties.industry != "fintech"') == {retail.pk}
    # Two-valued logic: the account without the property fails the
    # comparison, so it passes its negation.
    assert accounts_matching('not account.properties.industry == "fintech"') == {
        retail.pk,
        bare.pk,
    }


def test_contact_attributes_and_boolean():
    account = make_account(plan="Pro")
    champion = make_contact(account, role="Admin", is_champion=True)
    member = make_contact(account, role="Analyst")
    other = make_contact(make_account(plan="Basic"), role="Admin")

    assert contacts_matching("contact.is_champion") == {champion.pk}
    assert contacts_matching("not contact.is_champion") == {member.pk, other.pk}
    assert contacts_matching('contact.role in ["Admin", "Owner"]') == {
        champion.pk,
        other.pk,
    }
    assert contacts_matching('account.plan == "Pro"') == {champion.pk, member.pk}


# -- relative dates --------------------------------------------------------------


def test_days_until_renewal_and_missing_date():
    soon = make_account(renewal_date=TODAY + timedelta(days=90))
    late = make_account(renewal_date=TODAY + timedelta(days=91))
    undated = make_account(renewal_date=None)

    assert accounts_matching("days_until(account.renewal_date) <= 90") == {soon.pk}
    assert accounts_matching("not days_until(account.renewal_date) <= 90") == {
        late.pk,
        undated.pk,
    }


def test_days_since_and_date_within():
    recent = make_account(kickoff_date=TODAY - timedelta(days=3))
    older = make_account(kickoff_date=TODAY - timedelta(days=30))
    make_account(kickoff_date=None)

    assert accounts_matching("days_since(account.kickoff_date) >= 30") == {older.pk}
    assert accounts_matching("days_since(account.kickoff_date) == 3") == {recent.pk}
    # (today - 30, today]: 30 days ago is outside, 3 days ago inside.
    assert accounts_matching("date_within(account.kickoff_date, last 30 days)") == {
        recent.pk
    }


def test_days_since_datetime_field_uses_dates():
    account = make_account()
    joined = make_contact(account, added_at=NOW - timedelta(days=2, hours=1))
    make_contact(account, added_at=NOW - timedelta(days=40))

    assert contacts_matching("days_since(contact.added_at) <= 2") == {joined.pk}


# -- health and missing values ---------------------------------------------------


def test_not_health_score_includes_unscored():
    healthy = make_account()
    make_health(healthy, TODAY - timedelta(days=1), 80)
    weak = make_account()
    make_health(weak, TODAY - timedelta(days=1), 40)
    unscored = make_account()

    assert accounts_matching("account.health_score > 70") == {healthy.pk}
    assert accounts_matching("not account.health_score > 70") == {weak.pk, unscored.pk}


def test_health_change_over_history():
    falling = make_account()
    make_health(falling, TODAY - timedelta(days=30), 80)
    make_health(falling, TODAY, 65)
    steady = make_account()
    make_health(steady, TODAY - timedelta(days=40), 70)
    make_health(steady, TODAY - timedelta(days=1), 68)
    new = make_account()
    make_health(new, TODAY, 50)

    # falling: 65 - 80 = -15; steady: 68 - 70 = -2; new has no earlier score.
    assert accounts_matching("health_change(last 30 days) <= -10") == {falling.pk}
    assert accounts_matching("health_change(last 30 days) > -10") == {steady.pk}
    # As of 5 days ago the falling account's latest score was still 80.
    five_days_ago = NOW - timedelta(days=5)
    assert accounts_matching("health_change(last 30 days) <= -10", five_days_ago) == (
        set()
    )


# -- usage -------------------------------------------------------------------------


def test_spec_usage_examples():
    quiet = make_contact()
    make_event(quiet, NOW - timedelta(days=10), name="Signed In")
    busy = make_contact()
    make_event(busy, NOW - timedelta(days=2), name="Signed In")
    for days, feature in ((1, "reports"), (2, "exports"), (3, "alerts")):
        make_event(busy, NOW - timedelta(days=days), feature=feature)
    make_event(busy, NOW - timedelta(days=8), feature="admin")

    assert contacts_matching('count(event "Signed In", last 10 days) == 0') == {
        quiet.pk
    }
    assert contacts_matching(
        'distinct(event "Feature Used".feature, last 7 days) >= 3'
    ) == {busy.pk}
    assert contacts_matching("distinct(event.feature, last 7 days) >= 4") == set()


def test_first_seen_in_window_only():
    newcomer = make_contact()
    make_event(newcomer, NOW - timedelta(days=2), name="Report Created")
    veteran = make_contact()
    make_event(veteran, NOW - timedelta(days=2), name="Report Created")
    make_event(veteran, NOW - timedelta(days=20), name="Report Created")

    text = 'first_seen(event "Report Created", last 7 days)'
    assert contacts_matching(text) == {newcomer.pk}
    # As of 10 days ago the veteran's first report was 10 days old, so not new.
    assert contacts_matching(text, NOW - timedelta(days=10)) == set()


def test_first_usage_of_event_after_kickoff():
    quick = make_account(kickoff_date=date(2024, 6, 1))
    make_event(make_contact(quick), NOW.replace(day=5), name="Report Created")
    slow = make_account(kickoff_date=date(2024, 5, 1))
    make_event(make_contact(slow), NOW.replace(day=5), name="Report Created")

    text = 'first_usage(event "Report Created", within 7 days of kickoff)'
    assert accounts_matching(text) == {quick.pk}


# -- roll-ups ----------------------------------------------------------------------


def test_any_contact_and_contact_count():
    team = make_account()
    for role in ("admin", "admin", "analyst"):
        make_contact(team, role=role)
    solo = make_account()
    make_contact(solo, role="admin")
    make_contact(make_account(), role="analyst")

    assert accounts_matching('any_contact(contact.role == "admin")') == {
        team.pk,
        solo.pk,
    }
    assert accounts_matching('contacts(contact.role == "admin") >= 2') == {team.pk}
    assert accounts_matching('not any_contact(contact.role == "admin")') == (
        set(Account.objects.values_list("pk", flat=True)) - {team.pk, solo.pk}
    )


def test_roll_up_of_contact_activity():
    account = make_account()
    active = make_contact(account)
    make_event(active, NOW - timedelta(days=1))
    make_contact(account)
    idle_account = make_account()
    make_contact(idle_account)

    text = "contacts(count(event, last 7 days) >= 1) >= 1"
    assert accounts_matching(text) == {account.pk}


def test_contacts_added_counts_window():
    growing = make_account()
    make_contact(growing, added_at=NOW - timedelta(days=1))
    make_contact(growing, added_at=NOW - timedelta(days=6))
    make_contact(growing, added_at=NOW - timedelta(days=7))
    make_contact(growing, added_at=NOW + timedelta(hours=1))

    # Window (now - 7 days, now]: the 7-day-old and the future contact are out.
    assert accounts_matching("contacts_added(last 7 days) == 2") == {growing.pk}


# -- tickets and surveys -----------------------------------------------------------


def test_tickets_by_priority_topic_and_status_as_of():
    account = make_account()
    make_ticket(
        account,
        NOW - timedelta(days=5),
        priority="high",
        topic="billing",
        closed_at=NOW - timedelta(days=1),
    )
    make_ticket(account, NOW - timedelta(days=3), priority="high", topic="billing")
    make_ticket(account, NOW - timedelta(days=2), priority="low", topic="billing")
    make_ticket(account, NOW - timedelta(days=40), priority="high", topic="billing")

    base = 'tickets(last 30 days, priority "high", topic "billing"'
    assert accounts_matching(base + ") == 2") == {account.pk}
    assert accounts_matching(base + ', status "open") == 1') == {account.pk}
    assert accounts_matching(base + ', status "closed") == 1') == {account.pk}
    # Two days ago the first ticket was not closed yet.
    two_days_ago = NOW - timedelta(days=2)
    assert accounts_matching(base + ', status "open") == 2', two_days_ago) == {
        account.pk
    }


def test_latest_and_average_survey_scores():
    promoter = make_contact()
    make_survey(promoter, NOW - timedelta(days=100), 3)
    make_survey(promoter, NOW - timedelta(days=1), 10)
    happy = make_contact()
    make_survey(happy, NOW - timedelta(days=10), 5, kind="csat")
    make_survey(happy, NOW - timedelta(days=20), 4, kind="csat")
    make_survey(happy, NOW - timedelta(days=200), 1, kind="csat")
    silent = make_contact()

    assert contacts_matching("latest_score(nps) >= 9") == {promoter.pk}
    assert contacts_matching("latest_score(nps) >= 9", NOW - timedelta(days=2)) == set()
    # Mean of 5 and 4 in 90 days; the 200-day-old 1 is outside.
    assert contacts_matching("average_score(csat, last 90 days) >= 4.5") == {happy.pk}
    assert silent.pk in contacts_matching("not latest_score(nps) >= 9")


# -- learning ----------------------------------------------------------------------


def enroll(contact, course, enrolled_days_ago, **fields):
    return Enrollment.objects.create(
        contact=contact,
        course=course,
        source="manual",
        enrolled_at=NOW - timedelta(days=enrolled_days_ago),
        **fields,
    )


def test_learning_state_as_of():
    course = make_course(slug="getting-started")
    done = make_contact()
    enroll(
        done,
        course,
        20,
        started_at=NOW - timedelta(days=19),
        completed_at=NOW - timedelta(days=5),
        status="completed",
        score=Decimal("85.00"),
    )
    waiting = make_contact()
    enroll(waiting, course, 10)
    fresh = make_contact()
    enroll(fresh, course, 2)
    make_contact()

    assert contacts_matching('enrolled("getting-started")') == {
        done.pk,
        waiting.pk,
        fresh.pk,
    }
    assert contacts_matching('enrolled("getting-started", last 7 days)') == {fresh.pk}
    assert contacts_matching('completed("getting-started")') == {done.pk}
    assert contacts_matching('not_started("getting-started", 7 days)') == {waiting.pk}
    assert contacts_matching('course_score("getting-started") >= 80') == {done.pk}
    # Ten days ago the course was not yet completed, so no final score counted.
    ten_days_ago = NOW - timedelta(days=10)
    assert contacts_matching('completed("getting-started")', ten_days_ago) == set()
    assert contacts_matching('course_score("getting-started") >= 80', ten_days_ago) == (
        set()
    )


def test_quiz_score_of_lesson():
    course = make_course(slug="analytics")
    module = Module.objects.create(course=course, title="Basics")
    quiz = Lesson.objects.create(module=module, title="Final quiz", kind="quiz")
    practice = Lesson.objects.create(module=module, title="Practice", kind="quiz")
    learner = make_contact()
    enrollment = enroll(learner, course, 10)
    for lesson, score in ((quiz, "90"), (practice, "60")):
        LessonProgress.objects.create(
            enrollment=enrollment,
            lesson=lesson,
            started_at=NOW - timedelta(days=3),
            completed_at=NOW - timedelta(days=2),
            score=Decimal(score),
        )

    assert contacts_matching('quiz_score("analytics", lesson "Final quiz") >= 80') == {
        learner.pk
    }
    # The mean of 90 and 60 is 75.
    assert contacts_matching('quiz_score("analytics") >= 80') == set()
    assert contacts_matching('quiz_score("analytics") == 75') == {learner.pk}


# -- lifecycle ---------------------------------------------------------------------


def move(account, slug, days_ago, source="criteria"):
    StageChange.objects.create(
        account=account,
        to_stage=Stage.objects.get(slug=slug),
        changed_at=NOW - timedelta(days=days_ago),
        source=source,
    )


def test_stage_and_days_in_stage_from_history():
    account = make_account()
    move(account, "onboarding", 60, source="initial")
    move(account, "adoption", 20)
    other = make_account()
    move(other, "onboarding", 5, source="initial")
    unplaced = make_account()

    assert accounts_matching('account.stage == "adoption"') == {account.pk}
    assert accounts_matching("days_in_stage >= 20") == {account.pk}
    assert accounts_matching('days_in_stage("onboarding") < 10') == {other.pk}
    assert unplaced.pk in accounts_matching('not account.stage == "adoption"')
    # Thirty days ago the account was in onboarding, for 30 days.
    month_ago = NOW - timedelta(days=30)
    assert accounts_matching('account.stage == "onboarding"', month_ago) == {account.pk}
    assert accounts_matching("days_in_stage == 30", month_ago) == {account.pk}
    # A stage left earlier does not count, however long ago it was entered.
    assert accounts_matching('days_in_stage("onboarding") >= 1') == {other.pk}
    assert accounts_matching('days_in_stage("onboarding") == 30', month_ago) == {
        account.pk
    }


# -- references and queries ------------------------------------------------------


def test_missing_course_rejected_on_parse():
    text = 'inactive(last 3 days) and completed("no-such-course")'

    with pytest.raises(ConditionSyntaxError) as caught:
        parse_condition(text, "contact")

    assert "course 'no-such-course' does not exist" in str(caught.value)
    assert caught.value.column == text.index("completed") + 1


def test_missing_stage_rejected_on_parse():
    with pytest.raises(Exception, match="stage 'growth' does not exist"):
        parse_condition('account.stage == "growth"', "account")


NEW_KINDS_ACCOUNT = (
    'account.properties.industry == "fintech" '
    "or days_until(account.renewal_date) <= 90 "
    "or health_change(last 30 days) < 0 "
    'or any_contact(completed("getting-started") and contact.role == "admin") '
    "or contacts(count(event, last 7 days) >= 1) >= 2 "
    "or contacts_added(last 7 days) >= 1 "
    'or tickets(priority "high", status "open") >= 1 '
    "or average_score(csat, last 90 days) >= 4 "
    'or account.stage == "adoption" or days_in_stage >= 30 '
    'or first_seen(event "Signed In", last 7 days)'
)
NEW_KINDS_CONTACT = (
    'contact.properties.team == "ops" '
    'or not_started("getting-started", 7 days) '
    'or quiz_score("getting-started") >= 50 '
    'or course_score("getting-started") >= 50 '
    "or latest_score(nps) >= 9 "
    'or distinct(event "Feature Used".feature, last 7 days) >= 2'
)


def populate(accounts: int, course) -> None:
    for number in range(accounts):
        account = make_account(
            properties={"industry": "fintech" if number % 2 else "retail"}
        )
        move(account, "onboarding", 40, source="initial")
        make_health(account, TODAY, 50 + number % 40)
        make_ticket(account, NOW - timedelta(days=1), priority="high")
        for _ in range(2):
            contact = make_contact(account, role="admin")
            make_event(contact, NOW - timedelta(days=1), name="Signed In")
            make_survey(contact, NOW - timedelta(days=1), 9)
            enroll(contact, course, 10)


def sweep_queries(condition: str, subject_type: str) -> int:
    trigger = make_trigger({"kind": "contact_count", "op": ">=", "value": 0})
    trigger.condition = parse_condition(condition, subject_type)  # type: ignore[arg-type]
    trigger.subject_type = subject_type
    trigger.save()
    with CaptureQueriesContext(connection) as queries:
        report = run_sweep(NOW, triggers=[trigger])
    assert report.failures == ()
    assert report.matched > 0
    assert Firing.objects.filter(trigger=trigger).count() == report.matched
    return len(queries.captured_queries)


@pytest.mark.parametrize(
    ("condition", "subject_type"),
    [(NEW_KINDS_ACCOUNT, "account"), (NEW_KINDS_CONTACT, "contact")],
)
def test_query_count_independent_of_contacts(condition, subject_type):
    course = make_course(slug="getting-started")
    populate(3, course)
    few = sweep_queries(condition, subject_type)

    populate(6, course)
    assert Contact.objects.count() == 18

    assert sweep_queries(condition, subject_type) == few


def test_property_set_to_null_counts_as_missing():
    cleared = make_account(properties={"industry": None, "employees": None})
    bare = make_account()
    retail = make_account(properties={"industry": "retail", "employees": 900})

    assert accounts_matching('account.properties.industry != "fintech"') == {retail.pk}
    assert accounts_matching("account.properties.employees != 300") == {retail.pk}
    assert accounts_matching("account.properties.employees < 1000") == {retail.pk}
    assert accounts_matching('account.properties.industry in ["a", "retail"]') == {
        retail.pk
    }
    # Under not, null and absent both pass, as a missing value does.
    assert accounts_matching('not account.properties.industry == "retail"') == {
        cleared.pk,
        bare.pk,
    }
