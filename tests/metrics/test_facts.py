"""The dashboard's precomputed facts give the figures of the source tables."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import numpy as np
import pytest
from django.core.cache import cache
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from courses.models import (
    Attempt,
    EnrollmentStatus,
    LearningPath,
    LessonProgress,
    PathEnrollment,
)
from customers.models import Account
from lifecycle.models import AccountStage, Stage
from metrics.changes import outcome_changes
from metrics.cohorts import Cohort, CohortRule
from metrics.facts import FACT_TABLES, last_refresh, refresh_facts
from metrics.models import AccountFact, CourseCompletionFact, TrainingFact
from metrics.report_cache import cached_report
from metrics.scope import Scope
from metrics.services import learning_engagement, outcome_comparison
from metrics.tasks import refresh_dashboard_facts
from tests.factories import make_account, make_contact, make_event
from tests.metrics.builders import (
    at_noon,
    lessons_by_module,
    make_course,
    make_enrollment,
)
from tests.metrics.test_services import (
    AS_OF,
    draw_mixed_accounts,
    expected_outcomes,
    save_mixed_accounts,
)
from tests.sqlite_child import run_on_sqlite

pytestmark = pytest.mark.django_db


@pytest.fixture
def mixed_data():
    courses = {"main": make_course((1,)), "other": make_course((1,))}
    accounts = draw_mixed_accounts(np.random.default_rng(11), 150)
    save_mixed_accounts(accounts, courses)
    return courses, accounts


def figures(comparison) -> dict:
    """Return every number of a comparison, keyed by metric and group."""
    values: dict = {
        "trained": comparison.trained_accounts,
        "untrained": comparison.untrained_accounts,
    }
    for metric in comparison.metrics:
        for name in ("trained", "untrained"):
            group = getattr(metric, name)
            values[(metric.key, name)] = (
                group.n,
                group.events,
                group.excluded,
                group.estimate,
                group.interval,
            )
        values[(metric.key, "difference")] = metric.difference
    return values


@pytest.mark.parametrize("course_key", [None, "main"])
def test_facts_match_independent_count(mixed_data, course_key):
    courses, accounts = mixed_data
    rows = [
        row
        for planted in accounts
        if (row := expected_outcomes(planted, course_key)) is not None
    ]
    course = courses[course_key] if course_key else None
    refresh_facts()

    comparison = outcome_comparison(as_of=AS_OF, course=course, precomputed=True)

    metrics = {metric.key: metric for metric in comparison.metrics}
    for trained, group_name in ((True, "trained"), (False, "untrained")):
        group = [row for row in rows if row["trained"] is trained]
        due = [row for row in group if row["renewal_due"]]
        ttv = [row["ttv"] for row in group if row["ttv"] is not None]
        rates = [row["ticket_rate"] for row in group if row["ticket_rate"] is not None]
        assert getattr(comparison, f"{group_name}_accounts") == len(group)
        assert getattr(metrics["churn_rate"], group_name).events == sum(
            row["churned"] for row in group
        )
        assert getattr(metrics["renewal_rate"], group_name).n == len(due)
        assert getattr(metrics["renewal_rate"], group_name).events == sum(
            row["renewed"] for row in due
        )
        assert getattr(metrics["time_to_value"], group_name).n == len(ttv)
        assert getattr(metrics["time_to_value"], group_name).estimate == pytest.approx(
            np.mean(ttv)
        )
        assert getattr(metrics["ticket_rate"], group_name).n == len(rates)
        assert getattr(metrics["ticket_rate"], group_name).estimate == pytest.approx(
            np.mean(rates)
        )


@pytest.mark.parametrize(
    "as_of",
    [
        None,
        AS_OF,
        AS_OF - timedelta(days=45),
        date(2023, 3, 1),
        AS_OF + timedelta(days=25),
    ],
)
@pytest.mark.parametrize("course_key", [None, "main", "other"])
def test_facts_equal_live_path_for_any_as_of(mixed_data, as_of, course_key):
    courses, _ = mixed_data
    course = courses[course_key] if course_key else None
    refresh_facts()

    live = outcome_comparison(as_of=as_of, course=course, precomputed=False)
    stored = outcome_comparison(as_of=as_of, course=course, precomputed=True)

    assert figures(stored) == figures(live)


@pytest.mark.parametrize(
    "scope",
    [Scope(plan="pro"), Scope(segment="Retail"), Scope(stage="onboarding")],
    ids=["plan", "segment", "stage"],
)
def test_facts_equal_live_path_in_scope(mixed_data, scope):
    courses, _ = mixed_data
    accounts = list(Account.objects.order_by("pk"))
    for index, account in enumerate(accounts):
        account.plan = "pro" if index % 3 == 0 else "basic"
        account.industry = "Retail" if index % 2 == 0 else "Banking"
    Account.objects.bulk_update(accounts, ["plan", "industry"])
    refresh_facts()

    for course in (None, courses["main"]):
        live = outcome_comparison(AS_OF, course, scope, precomputed=False)
        stored = outcome_comparison(AS_OF, course, scope, precomputed=True)
        assert figures(stored) == figures(live)


def test_undated_completion_counts_only_for_today():
    course = make_course((1,))
    account = make_account(signup_date=date(2024, 1, 1))
    make_enrollment(make_contact(account), course, status=EnrollmentStatus.COMPLETED)
    refresh_facts()

    today = outcome_comparison(course=course, precomputed=True)
    dated = outcome_comparison(as_of=AS_OF, course=course, precomputed=True)

    assert today.trained_accounts == 1
    assert dated.trained_accounts == 0
    assert dated.untrained_accounts == 1


def test_usage_before_signup_ignored():
    account = make_account(signup_date=date(2024, 3, 1))
    contact = make_contact(account)
    make_event(contact, at_noon(date(2024, 2, 20)))
    make_event(contact, at_noon(date(2024, 3, 11)))
    refresh_facts()

    fact = AccountFact.objects.get(account=account)
    comparison = outcome_comparison(as_of=AS_OF, precomputed=True)

    assert fact.first_usage_day == date(2024, 3, 11)
    ttv = next(m for m in comparison.metrics if m.key == "time_to_value")
    assert ttv.untrained.estimate == 10


def test_refresh_twice_leaves_same_rows(mixed_data):
    refresh_facts()
    first = (
        list(AccountFact.objects.order_by("pk").values()),
        list(
            CourseCompletionFact.objects.order_by("course", "account").values(
                "course", "account", "first_completed_at", "has_undated_completion"
            )
        ),
    )
    refresh_facts()
    second = (
        list(AccountFact.objects.order_by("pk").values()),
        list(
            CourseCompletionFact.objects.order_by("course", "account").values(
                "course", "account", "first_completed_at", "has_undated_completion"
            )
        ),
    )

    assert second == first
    assert len(first[0]) == Account.objects.count()


def test_refresh_records_when():
    make_account()
    moment = datetime(2024, 6, 30, 8, 15, tzinfo=UTC)
    assert last_refresh() is None

    refresh_facts(now=moment)

    refresh = last_refresh()
    assert refresh is not None
    assert refresh.refreshed_at == moment
    assert refresh.accounts == 1


def test_comparison_uses_facts_once_refreshed():
    account = make_account(signup_date=date(2024, 1, 1))
    refresh_facts()
    course = make_course((1,))
    make_enrollment(
        make_contact(account),
        course,
        status=EnrollmentStatus.COMPLETED,
        completed_at=at_noon(date(2024, 2, 1)),
    )

    before_refresh = outcome_comparison(as_of=AS_OF)
    refresh_facts()
    after_refresh = outcome_comparison(as_of=AS_OF)

    assert before_refresh.trained_accounts == 0
    assert after_refresh.trained_accounts == 1


def test_refresh_task_clears_cached_reports(
    settings, django_capture_on_commit_callbacks
):
    settings.NUDGEPATH_DASHBOARD_CACHE_SECONDS = 60
    cache.clear()
    make_account()
    cached_report("outcomes", ("key",), lambda: "old")

    with django_capture_on_commit_callbacks(execute=True):
        refresh_dashboard_facts.apply()

    assert cached_report("outcomes", ("key",), lambda: "new") == "new"
    assert last_refresh() is not None


def test_refresh_on_sqlite(tmp_path):
    script = """
import json
import django
django.setup()
from datetime import UTC, date, datetime
from django.core.management import call_command
call_command("migrate", verbosity=0)
from courses.models import EnrollmentStatus
from metrics.facts import refresh_facts
from metrics.services import outcome_comparison
from tests.factories import make_account, make_contact, make_event, make_ticket
from tests.metrics.builders import make_course, make_enrollment
course = make_course((1,))
for index in range(6):
    account = make_account(signup_date=date(2024, 1, 1 + index))
    contact = make_contact(account)
    make_event(contact, datetime(2024, 1, 10 + index, 12, tzinfo=UTC))
    make_ticket(account, datetime(2024, 3, 1 + index, 12, tzinfo=UTC))
    if index % 2:
        make_enrollment(contact, course, status=EnrollmentStatus.COMPLETED,
                        completed_at=datetime(2024, 2, 1, tzinfo=UTC))
from decimal import Decimal
from courses.models import LessonProgress
from metrics.changes import outcome_changes
from metrics.services import learning_engagement
from tests.metrics.builders import lessons_by_module
lesson = lessons_by_module(course)[0][0]
for index, enrollment in enumerate(course.enrollments.all()):
    LessonProgress.objects.create(
        enrollment=enrollment, lesson=lesson, views=index,
        started_at=datetime(2024, 2, 1, tzinfo=UTC),
        time_spent_seconds=60 * index, score=Decimal("95.5") - 20 * index)
refresh_facts()
def figures(precomputed):
    comparison = outcome_comparison(date(2024, 6, 30), course, precomputed=precomputed)
    return [comparison.trained_accounts, comparison.untrained_accounts] + [
        [metric.trained.n, metric.trained.estimate,
         metric.untrained.n, metric.untrained.estimate]
        for metric in comparison.metrics]
def others(precomputed):
    engagement = learning_engagement(course, precomputed=precomputed)
    changes = outcome_changes(as_of=date(2024, 6, 30), precomputed=precomputed)
    return [repr(engagement), repr(changes.contacts), repr(changes.usage)]
print(json.dumps({
    "live": figures(False), "stored": figures(True),
    "others_live": others(False), "others_stored": others(True),
}))
"""
    result = run_on_sqlite(script, tmp_path)

    assert result["stored"] == result["live"]
    assert result["live"][:2] == [3, 3]
    assert result["others_stored"] == result["others_live"]
    assert "repeat_views=1" in result["others_live"][0]


def test_beat_schedules_refresh_task():
    from celery import current_app
    from django_celery_beat.models import PeriodicTask

    entry = PeriodicTask.objects.get(name="refresh-dashboard-facts")

    assert entry.task == refresh_dashboard_facts.name
    assert entry.task in current_app.tasks
    assert entry.interval.every == 600
    assert entry.enabled


@pytest.fixture
def learning_data():
    """Two courses with random progress, scores and plans over three months."""
    rng = np.random.default_rng(3)
    courses = [make_course((2, 3)), make_course((1, 2))]
    stages = list(Stage.objects.all())
    for index in range(40):
        account = make_account(plan=str(rng.choice(["basic", "pro"])))
        if index % 3:
            AccountStage.objects.create(
                account=account,
                stage=stages[index % len(stages)],
                entered_at=datetime(2024, 1, 1, tzinfo=UTC),
            )
        course = courses[index % 2]
        day = date(2024, 1, 1) + timedelta(days=int(rng.integers(0, 90)))
        enrollment = make_enrollment(
            make_contact(account),
            course,
            str(rng.choice(EnrollmentStatus.values)),
            enrolled_at=datetime(day.year, day.month, day.day, 23, 30, tzinfo=UTC),
        )
        for lesson in [
            lesson for module in lessons_by_module(course) for lesson in module
        ]:
            if rng.random() < 0.3:
                continue
            score = None
            if rng.random() < 0.6:
                score = Decimal(str(round(float(rng.uniform(-5, 105)), 2)))
            LessonProgress.objects.create(
                enrollment=enrollment,
                lesson=lesson,
                started_at=datetime(2024, 4, 1, tzinfo=UTC),
                views=int(rng.integers(0, 4)),
                time_spent_seconds=int(rng.choice([0, 0, 60, 450])),
                score=score,
            )
    return courses


ENGAGEMENT_SCOPES = [
    Scope(),
    Scope(plan="pro"),
    Scope(stage="onboarding"),
    Scope(start=date(2024, 2, 1), end=date(2024, 2, 29)),
    Scope(plan="basic", start=date(2024, 1, 15)),
]


@pytest.mark.parametrize("scope", ENGAGEMENT_SCOPES)
def test_stored_engagement_equals_live(learning_data, scope):
    refresh_facts()

    for course in (None, learning_data[0]):
        live = learning_engagement(course, scope, precomputed=False)
        stored = learning_engagement(course, scope, precomputed=True)
        assert stored == live


def test_stored_engagement_sees_progress(learning_data):
    refresh_facts()

    reports = learning_engagement(precomputed=True)

    assert sum(report.lesson_scores.total for report in reports) > 0
    assert sum(report.lesson_scores.out_of_range for report in reports) > 0
    assert any(module.activity.repeat_views for module in reports[0].modules)


@pytest.fixture
def training_data():
    """Contacts who started, completed, passed and took a path, with usage."""
    rng = np.random.default_rng(17)
    courses = [make_course((1,)), make_course((2,))]
    path = LearningPath.objects.create(slug="fact-path", title="Fact path")
    added = datetime(2023, 1, 1, tzinfo=UTC)
    for index in range(30):
        account = make_account(
            plan=str(rng.choice(["basic", "pro"])),
            industry=str(rng.choice(["Retail", "Banking"])),
            signup_date=date(2023, 1, 1),
        )
        for _ in range(int(rng.integers(1, 4))):
            contact = make_contact(account, added_at=added)
            for day in range(0, 200, 7):
                if rng.random() < 0.5:
                    make_event(contact, at_noon(date(2024, 1, 1) + timedelta(day)))
            if rng.random() < 0.3:
                continue
            course = courses[int(rng.integers(0, 2))]
            start = date(2024, 2, 1) + timedelta(days=int(rng.integers(0, 120)))
            done = start + timedelta(days=int(rng.integers(0, 20)))
            enrollment = make_enrollment(
                contact,
                course,
                str(rng.choice(EnrollmentStatus.values)),
                completed_at=at_noon(done) if rng.random() < 0.8 else None,
                started_at=at_noon(start),
            )
            if rng.random() < 0.5:
                Attempt.objects.create(
                    enrollment=enrollment,
                    lesson=lessons_by_module(course)[0][0],
                    number=1,
                    started_at=at_noon(start),
                    submitted_at=at_noon(done),
                    passed=bool(rng.random() < 0.7),
                )
            if index % 4 == 0:
                PathEnrollment.objects.create(
                    contact=contact,
                    path=path,
                    source="manual",
                    enrolled_at=at_noon(start),
                    completed_at=at_noon(done) if rng.random() < 0.6 else None,
                )
    return courses, path


@pytest.mark.parametrize("rule", list(CohortRule))
@pytest.mark.parametrize("target", ["any", "course", "path"])
def test_stored_changes_equal_live(training_data, rule, target):
    courses, path = training_data
    if target == "path" and rule == CohortRule.PASSED:
        pytest.skip("a path has no passed rule")
    cohort = Cohort(
        rule=rule,
        course=courses[1] if target == "course" else None,
        path=path if target == "path" else None,
    )
    refresh_facts()

    for scope in (Scope(), Scope(plan="pro", start=date(2024, 3, 1))):
        for as_of in (date(2024, 6, 30), date(2024, 4, 15)):
            live = outcome_changes(cohort, scope, as_of, precomputed=False)
            stored = outcome_changes(cohort, scope, as_of, precomputed=True)
            assert stored == live
            assert stored.contacts.trained_days == live.contacts.trained_days
            assert stored.contacts.untrained == live.contacts.untrained
            # The stored path adds up the trained in the database instead.
            assert stored.contacts.trained == []
            assert len(live.contacts.trained) == live.contacts.trained_count


def test_stored_changes_have_trained(training_data):
    refresh_facts()

    report = outcome_changes(as_of=date(2024, 6, 30), precomputed=True)

    assert report.contacts.trained_count > 0
    assert report.accounts.trained_count > 0
    assert report.contacts.untrained_count > 0


def test_refresh_leaves_planner_statistics(training_data):
    refresh_facts()

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples FROM pg_class WHERE relname = 'metrics_trainingfact'"
        )
        estimated = cursor.fetchone()[0]

    # Without an ANALYZE the planner takes the table for empty (-1 or 0).
    assert estimated == TrainingFact.objects.count()


def test_fact_tables_unlogged():
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT relname, relpersistence FROM pg_class "
            "WHERE relname LIKE 'metrics\\_%%fact%%' AND relkind = 'r'"
        )
        persistence = dict(cursor.fetchall())

    assert persistence == {
        "metrics_accountfact": "u",
        "metrics_coursecompletionfact": "u",
        "metrics_enrollmentfact": "u",
        "metrics_moduleactivityfact": "u",
        "metrics_lessonscorefact": "u",
        "metrics_trainingfact": "u",
        "metrics_factrefresh": "u",
    }


def test_deleting_account_deletes_its_facts(training_data):
    refresh_facts()
    account = Account.objects.filter(contacts__enrollments__isnull=False).first()
    assert account is not None
    account_id = account.pk
    assert TrainingFact.objects.filter(account_id=account_id).exists()
    assert AccountFact.objects.filter(account_id=account_id).exists()

    account.delete()

    assert not AccountFact.objects.filter(account_id=account_id).exists()
    assert not TrainingFact.objects.filter(account_id=account_id).exists()


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_refresh_vacuums_fact_tables():
    make_account()

    with CaptureQueriesContext(connection) as queries:
        refresh_facts()

    vacuumed = [
        query["sql"].removeprefix("VACUUM ")
        for query in queries.captured_queries
        if query["sql"].startswith("VACUUM ")
    ]
    assert vacuumed == list(FACT_TABLES)


def test_refresh_in_outer_transaction_skips_vacuum(django_capture_on_commit_callbacks):
    make_account()

    with (
        CaptureQueriesContext(connection) as queries,
        django_capture_on_commit_callbacks(execute=True),
    ):
        refresh_facts()

    assert not [q for q in queries.captured_queries if q["sql"].startswith("VACUUM")]
    assert last_refresh() is not None


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_refresh_in_outer_transaction_vacuums_after_commit():
    make_account()

    with CaptureQueriesContext(connection) as queries, transaction.atomic():
        refresh_facts()
        inside = len(queries.captured_queries)

    vacuumed = [
        query["sql"].removeprefix("VACUUM ")
        for query in queries.captured_queries[inside:]
        if query["sql"].startswith("VACUUM ")
    ]
    assert vacuumed == list(FACT_TABLES)
