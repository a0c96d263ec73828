"""Outcome comparison and learning engagement against counts the tests compute."""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import proportion_confint

from courses.models import Course, EnrollmentStatus
from metrics.services import TICKET_RATE_DAYS, learning_engagement, outcome_comparison
from metrics.stats import MIN_SUBJECTS, Verdict
from tests.factories import make_account, make_contact, make_event, make_ticket
from tests.metrics.builders import (
    at_noon,
    lessons_by_module,
    make_course,
    make_enrollment,
    planted_cohort,
    present,
    save_churn_event,
    save_cohort,
)

pytestmark = pytest.mark.django_db

AS_OF = date(2024, 6, 30)


@dataclass
class MixedAccount:
    """One account of the mixed data set, as the test planted it."""

    signup_date: date
    churned_on: date | None
    churn_event_days: list[date]
    renewal_date: date | None
    # (course key "main" or "other", status, completion day or None) per contact.
    enrollments: list[tuple[str, str, date | None]]
    usage_days: list[date]
    ticket_days: list[date]
    expected: dict = field(default_factory=dict)


def random_day(rng, start: date, end: date) -> date:
    return start + timedelta(days=int(rng.integers(0, (end - start).days + 1)))


def draw_mixed_accounts(rng, count: int) -> list[MixedAccount]:
    """Draw accounts with dates on both sides of AS_OF and of their signup."""
    accounts = []
    for _ in range(count):
        signup = random_day(rng, date(2023, 1, 1), AS_OF + timedelta(days=20))
        near = (signup - timedelta(days=30), AS_OF + timedelta(days=30))
        churned_on = random_day(rng, *near) if rng.random() < 0.3 else None
        churn_event_days = [
            random_day(rng, *near) for _ in range(int(rng.integers(0, 2)))
        ]
        renewal_date = random_day(rng, *near) if rng.random() < 0.7 else None
        enrollments = []
        for _contact in range(int(rng.integers(0, 3))):
            course_key = str(rng.choice(["main", "other"]))
            status = str(rng.choice(EnrollmentStatus.values))
            done_day = random_day(rng, *near) if rng.random() < 0.9 else None
            enrollments.append((course_key, status, done_day))
        usage_days = [random_day(rng, *near) for _ in range(int(rng.integers(0, 4)))]
        ticket_days = [random_day(rng, *near) for _ in range(int(rng.integers(0, 6)))]
        accounts.append(
            MixedAccount(
                signup_date=signup,
                churned_on=churned_on,
                churn_event_days=churn_event_days,
                renewal_date=renewal_date,
                enrollments=enrollments,
                usage_days=usage_days,
                ticket_days=ticket_days,
            )
        )
    return accounts


def save_mixed_accounts(accounts: list[MixedAccount], courses: dict) -> None:
    for planted in accounts:
        account = make_account(
            signup_date=planted.signup_date,
            churned_on=planted.churned_on,
            renewal_date=planted.renewal_date,
        )
        for day in planted.churn_event_days:
            save_churn_event(account, day)
        for course_key, status, done_day in planted.enrollments:
            make_enrollment(
                make_contact(account),
                courses[course_key],
                status=status,
                completed_at=at_noon(done_day) if done_day else None,
            )
        if planted.usage_days:
            user = make_contact(account)
            for day in planted.usage_days:
                make_event(user, at_noon(day))
        for day in planted.ticket_days:
            make_ticket(account, at_noon(day))


def expected_outcomes(planted: MixedAccount, course_key: str | None) -> dict | None:
    """Compute one account's group and outcomes by the documented definitions."""
    if planted.signup_date > AS_OF:
        return None
    trained = any(
        status == EnrollmentStatus.COMPLETED
        and done_day is not None
        and done_day <= AS_OF
        and course_key in (None, key)
        for key, status, done_day in planted.enrollments
    )
    churn_days = [
        day
        for day in [planted.churned_on, *planted.churn_event_days]
        if day is not None and day <= AS_OF
    ]
    tenure_end = min([*churn_days, AS_OF])
    tenure_days = (tenure_end - planted.signup_date).days
    tickets = sum(
        planted.signup_date <= day <= tenure_end for day in planted.ticket_days
    )
    usage = [day for day in planted.usage_days if planted.signup_date <= day <= AS_OF]
    renewal_due = planted.renewal_date is not None and planted.renewal_date <= AS_OF
    return {
        "trained": trained,
        "churned": bool(churn_days),
        "renewal_due": renewal_due,
        "renewed": renewal_due and not churn_days,
        "ttv": (min(usage) - planted.signup_date).days if usage else None,
        "ticket_rate": (
            tickets * TICKET_RATE_DAYS / tenure_days
            if tenure_days >= TICKET_RATE_DAYS
            else None
        ),
    }


@pytest.fixture
def mixed_data():
    courses = {"main": make_course((1,)), "other": make_course((1,))}
    accounts = draw_mixed_accounts(np.random.default_rng(5), 120)
    save_mixed_accounts(accounts, courses)
    return courses, accounts


@pytest.mark.parametrize("course_key", [None, "main"])
def test_comparison_counts_match_independent_count(mixed_data, course_key):
    courses, accounts = mixed_data
    rows = [
        row
        for planted in accounts
        if (row := expected_outcomes(planted, course_key)) is not None
    ]
    course = courses[course_key] if course_key else None

    comparison = outcome_comparison(as_of=AS_OF, course=course)

    metrics = {metric.key: metric for metric in comparison.metrics}
    for trained, group_name in ((True, "trained"), (False, "untrained")):
        group = [row for row in rows if row["trained"] is trained]
        due = [row for row in group if row["renewal_due"]]
        ttv = [row["ttv"] for row in group if row["ttv"] is not None]
        rates = [row["ticket_rate"] for row in group if row["ticket_rate"] is not None]
        churn = getattr(metrics["churn_rate"], group_name)
        renewal = getattr(metrics["renewal_rate"], group_name)
        time_to_value = getattr(metrics["time_to_value"], group_name)
        tickets = getattr(metrics["ticket_rate"], group_name)

        assert getattr(comparison, f"{group_name}_accounts") == len(group)
        assert churn.n == len(group)
        assert churn.events == sum(row["churned"] for row in group)
        assert renewal.n == len(due)
        assert renewal.events == sum(row["renewed"] for row in due)
        assert renewal.excluded == len(group) - len(due)
        assert time_to_value.n == len(ttv)
        assert time_to_value.excluded == len(group) - len(ttv)
        assert time_to_value.estimate == pytest.approx(np.mean(ttv))
        assert tickets.n == len(rates)
        assert tickets.estimate == pytest.approx(np.mean(rates))


def test_comparison_p_values_match_scipy(mixed_data):
    _, accounts = mixed_data
    rows = [
        row
        for planted in accounts
        if (row := expected_outcomes(planted, None)) is not None
    ]

    def values(metric: str, trained: bool) -> list:
        return [
            row[metric]
            for row in rows
            if row["trained"] is trained and row[metric] is not None
        ]

    ttv_test = scipy_stats.ttest_ind(
        values("ttv", True), values("ttv", False), equal_var=False
    )
    ticket_test = scipy_stats.ttest_ind(
        values("ticket_rate", True), values("ticket_rate", False), equal_var=False
    )

    comparison = outcome_comparison(as_of=AS_OF)

    metrics = {metric.key: metric for metric in comparison.metrics}
    assert metrics["time_to_value"].difference.p_value == pytest.approx(
        ttv_test.pvalue, rel=1e-6
    )
    assert metrics["ticket_rate"].difference.p_value == pytest.approx(
        ticket_test.pvalue, rel=1e-6
    )


@pytest.mark.parametrize("precomputed", [False, True])
def test_comparison_runs_one_query(mixed_data, precomputed):
    with CaptureQueriesContext(connection) as queries:
        outcome_comparison(as_of=AS_OF, precomputed=precomputed)

    assert len(queries) == 1


def test_undated_completion_counts_only_today():
    course = make_course((1,))
    contact = make_contact(make_account(signup_date=date(2024, 1, 1)))
    make_enrollment(contact, course, status=EnrollmentStatus.COMPLETED)

    assert outcome_comparison().trained_accounts == 1
    assert outcome_comparison(as_of=AS_OF).trained_accounts == 0


def test_days_are_utc_in_any_time_zone(settings):
    # In Tokyo (UTC+9) every instant below falls on the next calendar day.
    settings.TIME_ZONE = "Asia/Tokyo"
    course = make_course((1,))
    late_on_signup_day = make_contact(make_account(signup_date=date(2024, 6, 1)))
    make_event(late_on_signup_day, datetime(2024, 6, 1, 23, 0, tzinfo=UTC))
    make_enrollment(
        late_on_signup_day,
        course,
        status=EnrollmentStatus.COMPLETED,
        completed_at=datetime(2024, 6, 30, 23, 30, tzinfo=UTC),
    )
    before_signup = make_contact(make_account(signup_date=date(2024, 6, 1)))
    make_event(before_signup, datetime(2024, 5, 31, 20, 0, tzinfo=UTC))

    comparison = outcome_comparison(as_of=AS_OF)

    time_to_value = next(m for m in comparison.metrics if m.key == "time_to_value")
    assert comparison.trained_accounts == 1
    assert time_to_value.trained.estimate == 0
    assert time_to_value.untrained.n == 0
    assert time_to_value.untrained.excluded == 1


def test_empty_database_gives_small_sample():
    comparison = outcome_comparison(as_of=AS_OF)

    assert comparison.trained_accounts == 0
    assert comparison.untrained_accounts == 0
    for metric in comparison.metrics:
        assert metric.verdict == Verdict.SMALL_SAMPLE


def test_planted_effect_is_found():
    rng = np.random.default_rng(42)
    course = make_course((1,))
    trained = planted_cohort(rng, 150, True, 0.10, 5.0, AS_OF)
    untrained = planted_cohort(rng, 150, False, 0.35, 15.0, AS_OF)
    save_cohort(trained + untrained, course, AS_OF)

    comparison = outcome_comparison(as_of=AS_OF)

    metrics = {metric.key: metric for metric in comparison.metrics}
    churn = metrics["churn_rate"].difference
    ttv = metrics["time_to_value"].difference
    assert churn.verdict == Verdict.SIGNIFICANT
    assert present(churn.interval).contains(0.10 - 0.35)
    assert ttv.verdict == Verdict.SIGNIFICANT
    assert present(ttv.interval).contains(5.0 - 15.0)


def test_no_planted_effect_covers_zero():
    rng = np.random.default_rng(43)
    course = make_course((1,))
    trained = planted_cohort(rng, 150, True, 0.25, 10.0, AS_OF)
    untrained = planted_cohort(rng, 150, False, 0.25, 10.0, AS_OF)
    save_cohort(trained + untrained, course, AS_OF)

    comparison = outcome_comparison(as_of=AS_OF)

    metrics = {metric.key: metric for metric in comparison.metrics}
    for key in ("churn_rate", "time_to_value"):
        assert present(metrics[key].difference.interval).contains(0.0), key
        assert metrics[key].verdict == Verdict.NOT_SIGNIFICANT, key


def test_small_cohort_gets_warning():
    course = make_course((1,))
    trained = planted_cohort(
        np.random.default_rng(1), MIN_SUBJECTS - 1, True, 0.5, 5.0, AS_OF
    )
    untrained = planted_cohort(np.random.default_rng(2), 100, False, 0.5, 5.0, AS_OF)
    save_cohort(trained + untrained, course, AS_OF)

    comparison = outcome_comparison(as_of=AS_OF)

    for metric in comparison.metrics:
        assert metric.verdict == Verdict.SMALL_SAMPLE, metric.key


# Enrollments of the hand-made course: (status, module index of the furthest
# lesson, or None when no lesson was reached).
FUNNEL_ENROLLMENTS = [
    (EnrollmentStatus.COMPLETED, 2),
    (EnrollmentStatus.COMPLETED, None),
    (EnrollmentStatus.WITHDRAWN, 0),
    (EnrollmentStatus.FAILED, 1),
    (EnrollmentStatus.FAILED, 1),
    (EnrollmentStatus.ACTIVE, 2),
    (EnrollmentStatus.ACTIVE, 0),
    (EnrollmentStatus.ACTIVE, None),
    (EnrollmentStatus.WITHDRAWN, None),
]


@pytest.fixture
def funnel_course():
    course = make_course((2, 1, 2))
    modules = lessons_by_module(course)
    for status, module_index in FUNNEL_ENROLLMENTS:
        furthest = None if module_index is None else modules[module_index][-1]
        make_enrollment(make_contact(), course, status=status, furthest_lesson=furthest)
    # A second course whose enrollments must not leak into the first.
    other = make_course((1,))
    make_enrollment(
        make_contact(),
        other,
        status=EnrollmentStatus.WITHDRAWN,
        furthest_lesson=lessons_by_module(other)[0][0],
    )
    return course


def test_engagement_funnel_matches_hand_count(funnel_course):
    completed = sum(
        status == EnrollmentStatus.COMPLETED for status, _ in FUNNEL_ENROLLMENTS
    )
    stopped_statuses = (EnrollmentStatus.FAILED, EnrollmentStatus.WITHDRAWN)

    (engagement,) = learning_engagement(funnel_course)

    assert engagement.enrolled == len(FUNNEL_ENROLLMENTS)
    assert engagement.completed == completed
    assert engagement.not_started == sum(
        status != EnrollmentStatus.COMPLETED and index is None
        for status, index in FUNNEL_ENROLLMENTS
    )
    assert [module.order for module in engagement.modules] == [1, 2, 3]
    for position, module in enumerate(engagement.modules):
        reached = completed + sum(
            status != EnrollmentStatus.COMPLETED
            and index is not None
            and index >= position
            for status, index in FUNNEL_ENROLLMENTS
        )
        stopped = sum(
            status in stopped_statuses and index == position
            for status, index in FUNNEL_ENROLLMENTS
        )
        in_progress = sum(
            status == EnrollmentStatus.ACTIVE and index == position
            for status, index in FUNNEL_ENROLLMENTS
        )
        assert module.reached == reached, position
        assert module.reached_share == pytest.approx(reached / len(FUNNEL_ENROLLMENTS))
        assert module.stopped == stopped, position
        assert module.in_progress == in_progress, position


def test_completion_rate_has_wilson_interval(funnel_course):
    completed = sum(
        status == EnrollmentStatus.COMPLETED for status, _ in FUNNEL_ENROLLMENTS
    )
    expected_low, expected_high = proportion_confint(
        completed, len(FUNNEL_ENROLLMENTS), method="wilson"
    )

    (engagement,) = learning_engagement(funnel_course)

    assert engagement.completion.value == pytest.approx(
        completed / len(FUNNEL_ENROLLMENTS)
    )
    assert present(engagement.completion.interval).low == pytest.approx(expected_low)
    assert present(engagement.completion.interval).high == pytest.approx(expected_high)


def test_engagement_lists_every_course(funnel_course):
    empty = make_course((1, 1))

    report = {engagement.course_id: engagement for engagement in learning_engagement()}

    assert set(report) == set(Course.objects.values_list("pk", flat=True))
    assert len(report) == 3
    assert report[empty.pk].enrolled == 0
    assert report[empty.pk].completion.value is None
    assert [module.reached for module in report[empty.pk].modules] == [0, 0]


@pytest.mark.parametrize("precomputed", [False, True])
def test_engagement_query_count_is_constant(funnel_course, precomputed):
    with CaptureQueriesContext(connection) as few:
        learning_engagement(precomputed=precomputed)
    for _ in range(3):
        course = make_course((1, 2))
        lesson = lessons_by_module(course)[1][0]
        for _ in range(5):
            make_enrollment(
                make_contact(),
                course,
                status=EnrollmentStatus.FAILED,
                furthest_lesson=lesson,
            )

    with CaptureQueriesContext(connection) as many:
        learning_engagement(precomputed=precomputed)

    # Courses, their enrollment counts, modules, funnel counts, module
    # activity, two score histograms and certificates. Over the facts, the
    # enrollment counts, funnel counts and course scores are one query.
    assert len(few) == (6 if precomputed else 8)
    assert len(many) == len(few)
