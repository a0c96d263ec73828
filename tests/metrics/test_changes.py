"""Changes around training against statsmodels, on planted usage, health and tickets."""

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as scipy_stats

from courses.models import EnrollmentStatus, LearningPath, PathCourse, PathEnrollment
from customers.models import Account, Contact, Subscription, UsageEvent
from metrics.changes import ACCOUNT_WINDOW_DAYS, outcome_changes
from metrics.cohorts import (
    DAYS_AFTER,
    DAYS_BEFORE,
    HASH_MODULUS,
    HASH_MULTIPLIER,
    Cohort,
    CohortRule,
    align_anchors,
)
from metrics.models import CourseTopic
from metrics.scope import Scope
from metrics.stats import MIN_SUBJECTS, Verdict
from tests.factories import make_account, make_contact, make_health, make_ticket
from tests.metrics.builders import at_noon, make_course, make_enrollment, present
from tests.sqlite_child import run_on_sqlite

pytestmark = pytest.mark.django_db

AS_OF = date(2024, 6, 30)
FIRST_TRAINING_DAY = date(2024, 3, 1)
TRAINING_DAYS = 60
ADDED_AT = datetime(2023, 1, 1, tzinfo=UTC)
_sequence = itertools.count(1)


@dataclass
class PlantedContact:
    """One contact's planted usage: events per UTC day, and its training day."""

    trained_on: date | None
    daily_events: dict[date, int] = field(default_factory=dict)


def draw_usage(
    rng: np.random.Generator, trained: int, untrained: int, effect: float
) -> list[PlantedContact]:
    """Draw contacts with Poisson usage on every day; the trained gain ``effect``.

    Each contact has its own base rate, so the groups differ in level, which
    a difference in differences removes.
    """
    first = FIRST_TRAINING_DAY - timedelta(days=DAYS_BEFORE + 1)
    last = FIRST_TRAINING_DAY + timedelta(days=TRAINING_DAYS + DAYS_AFTER + 1)
    days = [first + timedelta(days=offset) for offset in range((last - first).days)]
    planted = []
    for index in range(trained + untrained):
        is_trained = index < trained
        trained_on = None
        if is_trained:
            trained_on = FIRST_TRAINING_DAY + timedelta(
                days=int(rng.integers(0, TRAINING_DAYS))
            )
        base_rate = rng.uniform(0.5, 3.0) + (1.0 if is_trained else 0.0)
        daily = {}
        for day in days:
            rate = base_rate
            if trained_on is not None and day > trained_on:
                rate += effect
            daily[day] = int(rng.poisson(rate))
        planted.append(PlantedContact(trained_on=trained_on, daily_events=daily))
    return planted


def save_usage(planted: list[PlantedContact], course) -> list[Contact]:
    """Save one account and contact per planted contact, with its events."""
    prefix = f"usage{next(_sequence)}"
    accounts = Account.objects.bulk_create(
        Account(
            external_id=f"A-{prefix}-{index}",
            name=f"Account {index}",
            signup_date=date(2023, 1, 1),
        )
        for index in range(len(planted))
    )
    contacts = Contact.objects.bulk_create(
        Contact(
            account=account,
            external_id=f"C-{prefix}-{index}",
            email=f"{prefix}-{index}@example.com",
            first_name="Learner",
            added_at=ADDED_AT,
        )
        for index, account in enumerate(accounts)
    )
    for contact, plant in zip(contacts, planted, strict=True):
        if plant.trained_on is not None:
            make_enrollment(
                contact,
                course,
                status=EnrollmentStatus.COMPLETED,
                completed_at=at_noon(plant.trained_on),
            )
    UsageEvent.objects.bulk_create(
        UsageEvent(
            account=contact.account,
            contact=contact,
            name="Feature Used",
            occurred_at=at_noon(day) + timedelta(minutes=minute),
        )
        for contact, plant in zip(contacts, planted, strict=True)
        for day, count in plant.daily_events.items()
        for minute in range(count)
    )
    return contacts


def expected_panel(
    planted: list[PlantedContact], contacts: list[Contact], anchors: dict[int, date]
) -> pd.DataFrame:
    """Stack each measured contact's rate before and after its anchor day."""
    rows = []
    for contact, plant in zip(contacts, planted, strict=True):
        if contact.pk not in anchors:
            continue
        anchor = anchors[contact.pk]
        before = sum(
            plant.daily_events.get(anchor - timedelta(days=offset), 0)
            for offset in range(1, DAYS_BEFORE + 1)
        )
        after = sum(
            plant.daily_events.get(anchor + timedelta(days=offset), 0)
            for offset in range(1, DAYS_AFTER + 1)
        )
        trained = int(plant.trained_on is not None)
        rows.append((contact.pk, trained, 0, before / DAYS_BEFORE))
        rows.append((contact.pk, trained, 1, after / DAYS_AFTER))
    return pd.DataFrame(rows, columns=["subject", "trained", "post", "rate"])


def test_usage_change_matches_statsmodels():
    rng = np.random.default_rng(11)
    course = make_course((1,))
    planted = draw_usage(rng, trained=40, untrained=60, effect=2.0)
    contacts = save_usage(planted, course)

    report = outcome_changes(Cohort(course=course), as_of=AS_OF)

    anchors = {anchor.subject_id: anchor.day for anchor in report.contacts.anchors}
    panel = expected_panel(planted, contacts, anchors)
    pooled = smf.ols("rate ~ trained * post", data=panel).fit()
    changes = panel.pivot(index="subject", columns="post", values="rate")
    changes["change"] = changes[1] - changes[0]
    changes["trained"] = panel.groupby("subject")["trained"].first()
    robust = smf.ols("change ~ trained", data=changes).fit(cov_type="HC2")
    trained_changes = changes.loc[changes["trained"] == 1, "change"]
    untrained_changes = changes.loc[changes["trained"] == 0, "change"]
    welch = scipy_stats.ttest_ind(trained_changes, untrained_changes, equal_var=False)
    usage = report.usage
    interval = present(usage.difference.interval)
    half_width = (interval.high - interval.low) / 2
    critical = scipy_stats.t.ppf(0.975, welch.df)

    assert usage.trained.n == 40
    assert usage.untrained.n == 60
    assert usage.difference.estimate == pytest.approx(
        pooled.params["trained:post"], rel=1e-9
    )
    assert half_width / critical == pytest.approx(robust.bse["trained"], rel=1e-9)
    assert usage.difference.p_value == pytest.approx(welch.pvalue, rel=1e-9)
    assert usage.trained.change.value == pytest.approx(trained_changes.mean())


def test_planted_usage_effect_found():
    rng = np.random.default_rng(12)
    course = make_course((1,))
    planted = draw_usage(rng, trained=40, untrained=60, effect=2.0)
    save_usage(planted, course)

    usage = outcome_changes(Cohort(course=course), as_of=AS_OF).usage

    assert usage.verdict == Verdict.SIGNIFICANT
    assert present(usage.difference.interval).contains(2.0)


def test_untrained_anchors_share_trained_days():
    days = [date(2024, 3, 5), date(2024, 3, 1), date(2024, 3, 3)]

    anchors = align_anchors(days, [10, 11, 12, 13, 14, 15, 16])

    assert [anchor.day for anchor in anchors] == [
        date(2024, 3, 1),
        date(2024, 3, 3),
        date(2024, 3, 5),
    ] * 2 + [date(2024, 3, 1)]
    assert not any(anchor.trained for anchor in anchors)


def test_no_trained_subjects_no_anchors():
    assert align_anchors([], [1, 2, 3]) == []


def test_small_cohort_gets_warning():
    rng = np.random.default_rng(13)
    course = make_course((1,))
    planted = draw_usage(rng, trained=MIN_SUBJECTS - 20, untrained=40, effect=5.0)
    save_usage(planted, course)

    usage = outcome_changes(Cohort(course=course), as_of=AS_OF).usage

    assert usage.trained.n == MIN_SUBJECTS - 20
    assert usage.verdict == Verdict.SMALL_SAMPLE


def test_training_within_follow_up_awaits():
    course = make_course((1,))
    contact = make_contact(added_at=ADDED_AT)
    make_enrollment(
        contact,
        course,
        status=EnrollmentStatus.COMPLETED,
        completed_at=at_noon(AS_OF - timedelta(days=DAYS_AFTER - 1)),
    )

    report = outcome_changes(Cohort(course=course), as_of=AS_OF)

    assert report.contacts.trained_count == 0
    assert report.contacts.trained_awaiting_follow_up == 1


def test_contact_added_within_window_left_out():
    course = make_course((1,))
    trained_on = date(2024, 4, 1)
    late = make_contact(added_at=at_noon(trained_on - timedelta(days=3)))
    make_enrollment(
        late,
        course,
        status=EnrollmentStatus.COMPLETED,
        completed_at=at_noon(trained_on),
    )

    usage = outcome_changes(Cohort(course=course), as_of=AS_OF).usage

    assert usage.trained.n == 0
    assert usage.trained.left_out == 1


def test_usage_on_training_day_ignored():
    course = make_course((1,))
    trained_on = date(2024, 4, 1)
    contact = make_contact(added_at=ADDED_AT)
    make_enrollment(
        contact,
        course,
        status=EnrollmentStatus.COMPLETED,
        completed_at=at_noon(trained_on),
    )
    UsageEvent.objects.bulk_create(
        [
            UsageEvent(
                account=contact.account,
                contact=contact,
                name="Signed In",
                occurred_at=at_noon(day),
            )
            for day in (
                trained_on - timedelta(days=DAYS_BEFORE + 1),
                trained_on - timedelta(days=DAYS_BEFORE),
                trained_on,
                trained_on + timedelta(days=DAYS_AFTER),
                trained_on + timedelta(days=DAYS_AFTER + 1),
            )
        ]
    )

    usage = outcome_changes(Cohort(course=course), as_of=AS_OF).usage

    assert usage.trained.mean_before == pytest.approx(1 / DAYS_BEFORE)
    assert usage.trained.mean_after == pytest.approx(1 / DAYS_AFTER)


def test_started_rule_anchors_on_start():
    course = make_course((1,))
    contact = make_contact(added_at=ADDED_AT)
    make_enrollment(contact, course, started_at=at_noon(date(2024, 3, 10)))

    started = outcome_changes(
        Cohort(rule=CohortRule.STARTED, course=course), as_of=AS_OF
    )
    completed = outcome_changes(Cohort(course=course), as_of=AS_OF)

    assert [anchor.day for anchor in started.contacts.anchors] == [date(2024, 3, 10)]
    assert completed.contacts.anchors == []


def test_path_completion_rule():
    path = LearningPath.objects.create(slug="admin-path", title="Admin path")
    contact = make_contact(added_at=ADDED_AT)
    other = make_contact(added_at=ADDED_AT)
    PathEnrollment.objects.create(
        contact=contact,
        path=path,
        source="manual",
        enrolled_at=at_noon(date(2024, 3, 1)),
        completed_at=at_noon(date(2024, 4, 2)),
    )

    report = outcome_changes(Cohort(path=path), as_of=AS_OF)
    trained = [anchor for anchor in report.contacts.anchors if anchor.trained]
    untrained = [anchor for anchor in report.contacts.anchors if not anchor.trained]

    assert [(anchor.subject_id, anchor.day) for anchor in trained] == [
        (contact.pk, date(2024, 4, 2))
    ]
    assert [(anchor.subject_id, anchor.day) for anchor in untrained] == [
        (other.pk, date(2024, 4, 2))
    ]


def test_passed_rule_rejected_for_path():
    path = LearningPath.objects.create(slug="exam-path", title="Exam path")

    with pytest.raises(ValueError, match="exam-path"):
        Cohort(rule=CohortRule.PASSED, path=path)


def test_segment_and_period_narrow_trained():
    course = make_course((1,))
    matching = make_contact(make_account(industry="Retail"), added_at=ADDED_AT)
    other_segment = make_contact(make_account(industry="Banking"), added_at=ADDED_AT)
    outside_period = make_contact(make_account(industry="Retail"), added_at=ADDED_AT)
    for contact, day in (
        (matching, date(2024, 4, 1)),
        (other_segment, date(2024, 4, 1)),
        (outside_period, date(2024, 2, 1)),
    ):
        make_enrollment(
            contact,
            course,
            status=EnrollmentStatus.COMPLETED,
            completed_at=at_noon(day),
        )
    scope = Scope(start=date(2024, 3, 1), end=date(2024, 4, 30), segment="Retail")

    report = outcome_changes(Cohort(course=course), scope, as_of=AS_OF)

    assert [anchor.subject_id for anchor in report.contacts.anchors] == [matching.pk]
    assert report.contacts.untrained_eligible == 0


def save_trained_account(course, trained_on: date) -> Account:
    account = make_account(signup_date=date(2023, 1, 1))
    contact = make_contact(account, added_at=ADDED_AT)
    make_enrollment(
        contact,
        course,
        status=EnrollmentStatus.COMPLETED,
        completed_at=at_noon(trained_on),
    )
    return account


def subscription(account: Account, started_on: date, seats: int, **fields) -> None:
    Subscription.objects.create(
        account=account,
        external_id=f"S-change{next(_sequence)}",
        started_on=started_on,
        plan="Pro",
        seats=seats,
        mrr=100,
        arr=1200,
        **fields,
    )


def test_health_tickets_and_expansion_by_hand():
    course = make_course((1,))
    CourseTopic.objects.create(course=course, topic="Billing")
    trained_on = date(2024, 4, 1)
    window = timedelta(days=ACCOUNT_WINDOW_DAYS)
    trained = save_trained_account(course, trained_on)
    untrained = make_account(signup_date=date(2023, 1, 1))

    # Trained: health 50 then 70 (the older 40 is replaced by 50), two
    # billing tickets before and none after, an upgrade after.
    make_health(trained, trained_on - window, 40)
    make_health(trained, trained_on - timedelta(days=1), 50)
    make_health(trained, trained_on + window, 70)
    make_ticket(trained, at_noon(trained_on - timedelta(days=3)), topic="Billing")
    make_ticket(trained, at_noon(trained_on - timedelta(days=2)), topic="Billing")
    make_ticket(trained, at_noon(trained_on + timedelta(days=2)), topic="Login")
    make_ticket(trained, at_noon(trained_on), topic="Billing")
    subscription(trained, date(2023, 1, 1), seats=10)
    subscription(trained, trained_on + timedelta(days=5), seats=15)
    # Untrained, aligned on the same day: health 60 then 55, one billing
    # ticket after, a subscription with fewer seats, which is no expansion.
    make_health(untrained, trained_on - timedelta(days=10), 60)
    make_health(untrained, trained_on + timedelta(days=3), 55)
    make_ticket(untrained, at_noon(trained_on + window), topic="Billing")
    make_ticket(
        untrained, at_noon(trained_on + window + timedelta(days=1)), topic="Billing"
    )
    subscription(untrained, date(2023, 1, 1), seats=10)
    subscription(untrained, trained_on + timedelta(days=5), seats=8)

    report = outcome_changes(Cohort(course=course), as_of=AS_OF)

    assert report.topics == ["Billing"]
    assert report.health.trained.mean_before == 50
    assert report.health.trained.mean_after == 70
    assert report.health.untrained.mean_before == 60
    assert report.health.untrained.mean_after == 55
    assert report.health.trained.change.value == 20
    assert report.health.untrained.change.value == -5
    assert report.tickets.trained.mean_before == 2
    assert report.tickets.trained.mean_after == 0
    assert report.tickets.untrained.mean_after == 1
    assert report.tickets.trained.change.value == -2
    assert report.tickets.untrained.change.value == 1
    billing = report.tickets_by_topic[0]
    assert (billing.trained_before, billing.trained_after) == (2, 0)
    assert (billing.untrained_before, billing.untrained_after) == (0, 1)
    assert report.expansion.trained.events == 1
    assert report.expansion.untrained.events == 0
    assert report.expansion.verdict == Verdict.SMALL_SAMPLE


def test_account_without_scores_left_out_of_health():
    course = make_course((1,))
    trained_on = date(2024, 4, 1)
    account = save_trained_account(course, trained_on)
    make_health(account, trained_on + timedelta(days=3), 80)

    health = outcome_changes(Cohort(course=course), as_of=AS_OF).health

    assert health.trained.n == 0
    assert health.trained.left_out == 1


def test_no_topics_counts_no_tickets():
    course = make_course((1,))
    trained_on = date(2024, 4, 1)
    account = save_trained_account(course, trained_on)
    make_ticket(account, at_noon(trained_on - timedelta(days=2)))
    make_ticket(account, at_noon(trained_on + timedelta(days=2)), topic="Billing")

    report = outcome_changes(Cohort(course=course), as_of=AS_OF)

    assert report.topics == []
    assert report.tickets.trained.mean_before == 0
    assert report.tickets.trained.mean_after == 0


def test_groups_capped_at_sample_limit(monkeypatch):
    monkeypatch.setattr("metrics.cohorts.SAMPLE_LIMIT", 3)
    rng = np.random.default_rng(14)
    course = make_course((1,))
    save_usage(draw_usage(rng, trained=5, untrained=6, effect=0.0), course)

    contacts = outcome_changes(Cohort(course=course), as_of=AS_OF).contacts

    assert contacts.trained_count == 3
    assert contacts.trained_eligible == 5
    assert contacts.untrained_count == 3
    assert contacts.untrained_eligible == 6


def test_untrained_sample_four_per_trained(monkeypatch):
    monkeypatch.setattr("metrics.cohorts.MIN_UNTRAINED_SAMPLE", 2)
    rng = np.random.default_rng(15)
    course = make_course((1,))
    save_usage(draw_usage(rng, trained=2, untrained=12, effect=0.0), course)

    contacts = outcome_changes(Cohort(course=course), as_of=AS_OF).contacts

    assert contacts.trained_count == 2
    assert contacts.untrained_count == 8
    assert contacts.untrained_eligible == 12


@pytest.mark.parametrize("margin", [1.25, 0.5])
def test_untrained_sample_is_first_by_hash(monkeypatch, margin):
    """The bounded read gives the first by key, and a tight bound falls back."""
    monkeypatch.setattr("metrics.cohorts.SAMPLE_BOUND_MARGIN", margin)
    monkeypatch.setattr("metrics.cohorts.MIN_UNTRAINED_SAMPLE", 1)
    rng = np.random.default_rng(16)
    course = make_course((1,))
    save_usage(draw_usage(rng, trained=10, untrained=120, effect=0.0), course)
    untrained_ids = Contact.objects.exclude(enrollments__course=course).values_list(
        "pk", flat=True
    )
    expected = sorted(
        untrained_ids,
        key=lambda pk: ((pk * HASH_MULTIPLIER) % HASH_MODULUS, pk),
    )[: 4 * 10]

    contacts = outcome_changes(Cohort(course=course), as_of=AS_OF).contacts

    assert contacts.untrained_eligible == 120
    assert [anchor.subject_id for anchor in contacts.untrained] == expected


def test_changes_on_sqlite(tmp_path):
    """Run the comparison on SQLite, the demo's database, with hand-set rows."""
    script = """
import json
from datetime import UTC, date, datetime, timedelta
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from customers.models import Account, Contact, HealthScore, UsageEvent
from metrics.changes import outcome_changes
from metrics.cohorts import Cohort
from tests.metrics.builders import at_noon, make_course, make_enrollment
course = make_course((1,))
trained_on = date(2024, 4, 1)
people = []
for n in range(2):
    account = Account.objects.create(
        name=f"A{n}", external_id=f"A{n}", signup_date="2023-01-01")
    people.append(Contact.objects.create(account=account, email=f"p{n}@example.com",
        external_id=f"C{n}", added_at=datetime(2023, 1, 1, tzinfo=UTC)))
    for offset, score in ((-2, 50 + n), (9, 70 - n)):
        HealthScore.objects.create(account=account, score=score,
            scored_on=trained_on + timedelta(days=offset))
make_enrollment(people[0], course, status="completed", completed_at=at_noon(trained_on))
plan = {0: [(-3, 2), (5, 3)], 1: [(-1, 1), (30, 6), (31, 4)]}
for n, days in plan.items():
    for offset, count in days:
        for minute in range(count):
            UsageEvent.objects.create(account=people[n].account, contact=people[n],
                name="Signed In",
                occurred_at=at_noon(trained_on + timedelta(days=offset))
                + timedelta(minutes=minute))
report = outcome_changes(Cohort(course=course), as_of=date(2024, 6, 30))
print(json.dumps({
    "usage": [[g.n, g.mean_before, g.mean_after]
              for g in (report.usage.trained, report.usage.untrained)],
    "health": [[g.n, g.mean_before, g.mean_after]
               for g in (report.health.trained, report.health.untrained)],
}))
"""
    result = run_on_sqlite(script, tmp_path)

    assert result["usage"][0] == [1, pytest.approx(2 / 7), pytest.approx(3 / 30)]
    assert result["usage"][1] == [1, pytest.approx(1 / 7), pytest.approx(6 / 30)]
    assert result["health"] == [[1, 50, 70], [1, 51, 69]]


def test_expansion_change_by_hand():
    course = make_course((1,))
    trained_on = date(2024, 4, 1)
    window = timedelta(days=ACCOUNT_WINDOW_DAYS)
    # Expanded after only: a change of +1.
    after_only = save_trained_account(course, trained_on)
    subscription(after_only, date(2023, 1, 1), seats=10)
    subscription(after_only, trained_on + timedelta(days=5), seats=15)
    # Expanded before and after (an upgrade flag, then more seats): 0.
    both = save_trained_account(course, trained_on)
    subscription(both, date(2023, 1, 1), seats=10)
    subscription(both, trained_on - window, seats=10, is_upgrade=True)
    subscription(both, trained_on + window, seats=12)
    # Untrained, aligned on the same day: expanded before only, -1. The
    # subscription on the training day is in neither window.
    untrained = make_account(signup_date=date(2023, 1, 1))
    subscription(untrained, date(2023, 1, 1), seats=10)
    subscription(untrained, trained_on - timedelta(days=1), seats=20)
    subscription(untrained, trained_on, seats=30)

    report = outcome_changes(Cohort(course=course), as_of=AS_OF)

    change = report.expansion_change
    assert change.trained.n == 2
    assert change.untrained.n == 1
    assert change.trained.mean_before == 0.5
    assert change.trained.mean_after == 1.0
    assert change.untrained.mean_before == 1.0
    assert change.untrained.mean_after == 0.0
    assert change.trained.change.value == 0.5
    assert change.untrained.change.value == -1.0
    assert change.verdict == Verdict.SMALL_SAMPLE


def test_untrained_only_course_audience():
    course = make_course((1,))
    course.audience = {
        "kind": "attribute",
        "field": "contact.role",
        "op": "==",
        "value": "admin",
    }
    course.save()
    trained_on = date(2024, 4, 1)
    for _ in range(2):
        contact = make_contact(added_at=ADDED_AT, role="admin")
        make_enrollment(
            contact,
            course,
            status=EnrollmentStatus.COMPLETED,
            completed_at=at_noon(trained_on),
        )
    for _ in range(3):
        make_contact(added_at=ADDED_AT, role="admin")
    for _ in range(4):
        make_contact(added_at=ADDED_AT, role="viewer")

    report = outcome_changes(Cohort(course=course), as_of=AS_OF)

    assert report.contacts.trained_eligible == 2
    assert report.contacts.untrained_eligible == 3
    assert report.accounts.untrained_eligible == 3


def complete_path(contact: Contact, path: LearningPath) -> None:
    PathEnrollment.objects.create(
        contact=contact,
        path=path,
        source="manual",
        enrolled_at=at_noon(date(2024, 3, 1)),
        completed_at=at_noon(date(2024, 4, 2)),
    )


def test_untrained_path_first_course_audience():
    # The path's first course is for admins; its second is for everyone,
    # so only the first course's audience may narrow the untrained.
    first = make_course((1,), slug="path-first")
    first.audience = {
        "kind": "attribute",
        "field": "contact.role",
        "op": "==",
        "value": "admin",
    }
    first.save()
    second = make_course((1,), slug="path-second")
    path = LearningPath.objects.create(slug="audience-path", title="Audience path")
    PathCourse.objects.create(path=path, course=second, order=2)
    PathCourse.objects.create(path=path, course=first, order=1)
    trained = make_contact(added_at=ADDED_AT, role="admin")
    complete_path(trained, path)
    admins = [make_contact(added_at=ADDED_AT, role="admin") for _ in range(3)]
    for _ in range(4):
        make_contact(added_at=ADDED_AT, role="viewer")

    report = outcome_changes(Cohort(path=path), as_of=AS_OF)
    untrained = {
        anchor.subject_id for anchor in report.contacts.anchors if not anchor.trained
    }

    assert report.contacts.trained_eligible == 1
    assert report.contacts.untrained_eligible == 3
    assert untrained == {contact.pk for contact in admins}
    assert report.accounts.untrained_eligible == 3


def test_untrained_path_without_courses_everyone():
    path = LearningPath.objects.create(slug="empty-path", title="Empty path")
    trained = make_contact(added_at=ADDED_AT, role="admin")
    complete_path(trained, path)
    make_contact(added_at=ADDED_AT, role="admin")
    make_contact(added_at=ADDED_AT, role="viewer")

    report = outcome_changes(Cohort(path=path), as_of=AS_OF)

    assert report.contacts.untrained_eligible == 2
