"""The trained subjects' windows stored by a refresh equal the source tables'."""

import itertools
from collections import Counter
from datetime import UTC, date, datetime, time, timedelta

import numpy as np
import pytest

from courses.models import EnrollmentStatus, LearningPath, PathCourse, PathEnrollment
from customers.models import (
    Account,
    Contact,
    HealthScore,
    Subscription,
    SupportTicket,
    UsageDay,
)
from metrics.changes import ACCOUNT_WINDOW_DAYS, outcome_changes
from metrics.cohorts import DAYS_AFTER, DAYS_BEFORE, Cohort, CohortRule
from metrics.facts import refresh_facts
from metrics.models import CourseTopic, TrainingFact
from metrics.scope import Scope
from tests.factories import (
    make_account,
    make_contact,
    make_event,
    make_health,
    make_ticket,
)
from tests.metrics.builders import at_noon, make_course, make_enrollment
from tests.sqlite_child import run_on_sqlite

pytestmark = pytest.mark.django_db

TOPICS = ["Billing", "Login", "Setup"]
_sequence = itertools.count(1)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


@pytest.fixture
def outcome_data():
    """Accounts with usage, health scores, tickets and subscriptions around training.

    Some accounts sign up, and some contacts are added, inside the windows,
    so they are left out. Tickets fall on the training day and on the
    windows' edges.
    """
    rng = np.random.default_rng(29)
    courses = [make_course((1,)), make_course((1,))]
    CourseTopic.objects.create(course=courses[0], topic="Billing")
    CourseTopic.objects.create(course=courses[0], topic="Setup")
    CourseTopic.objects.create(course=courses[1], topic="Login")
    path = LearningPath.objects.create(slug="window-path", title="Window path")
    PathCourse.objects.create(path=path, course=courses[0], order=1)
    start = date(2024, 1, 1)
    for index in range(24):
        signup = date(2023, 6, 1) if index % 5 else date(2024, 3, 10)
        account = make_account(
            signup_date=signup,
            plan=str(rng.choice(["basic", "pro"])),
            industry=str(rng.choice(["Retail", "Banking"])),
        )
        for offset in rng.choice(180, size=12, replace=False):
            make_health(account, start + timedelta(days=int(offset)), int(offset) % 101)
        for _ in range(int(rng.integers(0, 14))):
            day = start + timedelta(days=int(rng.integers(0, 180)))
            make_ticket(
                account,
                _midnight(day) + timedelta(hours=int(rng.integers(0, 24))),
                topic=str(rng.choice([*TOPICS, ""])),
            )
        for _ in range(int(rng.integers(0, 4))):
            Subscription.objects.create(
                account=account,
                external_id=f"S-window{next(_sequence)}",
                started_on=start + timedelta(days=int(rng.integers(-60, 180))),
                plan="Pro",
                seats=int(rng.integers(1, 30)),
                mrr=100,
                arr=1200,
                is_upgrade=bool(rng.random() < 0.2),
            )
        for _ in range(int(rng.integers(1, 4))):
            added = _midnight(date(2023, 6, 1))
            if rng.random() < 0.2:
                added = _midnight(date(2024, 3, 20))
            contact = make_contact(account, added_at=added)
            for offset in range(0, 180, 3):
                if rng.random() < 0.5:
                    make_event(contact, at_noon(start + timedelta(days=offset)))
            if rng.random() < 0.25:
                continue
            course = courses[int(rng.integers(0, 2))]
            trained_on = date(2024, 2, 1) + timedelta(days=int(rng.integers(0, 100)))
            make_enrollment(
                contact,
                course,
                status=EnrollmentStatus.COMPLETED,
                started_at=at_noon(trained_on - timedelta(days=3)),
                completed_at=at_noon(trained_on),
            )
            if course == courses[0] and rng.random() < 0.5:
                PathEnrollment.objects.create(
                    contact=contact,
                    path=path,
                    source="manual",
                    enrolled_at=at_noon(trained_on - timedelta(days=3)),
                    completed_at=at_noon(trained_on),
                )
    return courses, path


def _usage(contact_id: int, first: date, last: date, skipped: date) -> int:
    counts = UsageDay.objects.filter(
        contact_id=contact_id, day__gte=first, day__lte=last
    ).exclude(day=skipped)
    return sum(counts.values_list("count", flat=True))


def _last_score(account: Account, first: date, last: date) -> int | None:
    score = (
        HealthScore.objects.filter(
            account=account, scored_on__gte=first, scored_on__lte=last
        )
        .order_by("-scored_on")
        .first()
    )
    return score.score if score is not None else None


def _expanded(account: Account, first: date, last: date, earlier_than: date) -> bool:
    """Whether a subscription started in [first, last] upgraded or added seats."""
    earlier = Subscription.objects.filter(account=account, started_on__lt=earlier_than)
    max_seats = max(earlier.values_list("seats", flat=True), default=None)
    for later in Subscription.objects.filter(
        account=account, started_on__gte=first, started_on__lte=last
    ):
        if later.is_upgrade or (max_seats is not None and later.seats > max_seats):
            return True
    return False


def _topic_tickets(account: Account, day: date) -> dict[str, list[int]]:
    window = timedelta(days=ACCOUNT_WINDOW_DAYS)
    before: Counter[str] = Counter()
    after: Counter[str] = Counter()
    for ticket in SupportTicket.objects.filter(account=account):
        opened = ticket.opened_at
        if _midnight(day - window) <= opened < _midnight(day):
            before[ticket.topic] += 1
        elif (
            _midnight(day + timedelta(days=1))
            <= opened
            < _midnight(day + window + timedelta(days=1))
        ):
            after[ticket.topic] += 1
    return {
        topic: [before[topic], after[topic]]
        for topic in sorted(set(before) | set(after))
    }


def test_contact_facts_hold_usage_windows(outcome_data):
    refresh_facts()

    facts = TrainingFact.objects.filter(level="contact")
    assert facts.filter(measured=True).exists()
    assert facts.filter(measured=False).exists()
    for fact in facts:
        day = fact.first_at.astimezone(UTC).date()
        contact = Contact.objects.get(pk=fact.subject_id)
        measured = contact.added_at < _midnight(day - timedelta(days=DAYS_BEFORE))
        assert fact.measured is measured
        if not measured:
            assert fact.usage_before is None
            continue
        before = _usage(contact.pk, day - timedelta(days=DAYS_BEFORE), day, day)
        after = _usage(contact.pk, day, day + timedelta(days=DAYS_AFTER), day)
        assert fact.usage_before == before
        assert fact.usage_after == after


def test_account_facts_hold_outcome_windows(outcome_data):
    refresh_facts()
    window = timedelta(days=ACCOUNT_WINDOW_DAYS)
    one_day = timedelta(days=1)

    facts = TrainingFact.objects.filter(level="account")
    assert facts.filter(measured=True).exists()
    assert facts.filter(measured=False).exists()
    assert facts.exclude(topic_tickets=None).exists()
    for fact in facts:
        day = fact.first_at.astimezone(UTC).date()
        account = Account.objects.get(pk=fact.subject_id)
        measured = account.signup_date <= day - window
        assert fact.measured is measured
        if not measured:
            assert fact.health_before is None
            assert fact.topic_tickets is None
            continue
        assert fact.health_before == _last_score(account, day - window, day - one_day)
        assert fact.health_after == _last_score(account, day + one_day, day + window)
        assert fact.expanded_before is _expanded(
            account, day - window, day - one_day, day - window
        )
        assert fact.expanded_after is _expanded(
            account, day + one_day, day + window, day + one_day
        )
        assert (fact.topic_tickets or {}) == _topic_tickets(account, day)


@pytest.mark.parametrize("target", ["any", "course", "path"])
@pytest.mark.parametrize("rule", [CohortRule.STARTED, CohortRule.COMPLETED])
def test_stored_outcome_changes_equal_live(outcome_data, target, rule):
    courses, path = outcome_data
    cohort = Cohort(
        rule=rule,
        course=courses[0] if target == "course" else None,
        path=path if target == "path" else None,
    )
    refresh_facts()

    for scope in (Scope(), Scope(plan="pro"), Scope(start=date(2024, 3, 1))):
        for as_of in (date(2024, 6, 30), date(2024, 4, 20)):
            live = outcome_changes(cohort, scope, as_of, precomputed=False)
            stored = outcome_changes(cohort, scope, as_of, precomputed=True)
            assert stored.accounts.stored is not None
            assert stored == live


@pytest.mark.parametrize("precomputed", [False, True])
def test_untrained_added_at_window_start(precomputed):
    """An untrained contact added at 00:00 UTC of its window's first day is left out.

    A contact counts from added_at, so one added a moment earlier is measured.
    """
    course = make_course((1,))
    trained_on = date(2024, 4, 1)
    window_start = _midnight(trained_on - timedelta(days=DAYS_BEFORE))
    trained = make_contact(added_at=_midnight(date(2023, 1, 1)))
    make_enrollment(
        trained,
        course,
        status=EnrollmentStatus.COMPLETED,
        completed_at=at_noon(trained_on),
    )
    for added_at in (
        _midnight(date(2023, 1, 1)),
        window_start - timedelta(microseconds=1),
        window_start,
    ):
        make_contact(added_at=added_at)
    refresh_facts()

    report = outcome_changes(
        Cohort(course=course), as_of=date(2024, 6, 30), precomputed=precomputed
    )

    assert report.contacts.untrained_count == 3
    assert report.usage.untrained.n == 2
    assert report.usage.untrained.left_out == 1
    assert report.usage.trained.n == 1


def test_stored_changes_see_topic_change_at_once(outcome_data):
    courses, _ = outcome_data
    cohort = Cohort(course=courses[1])
    refresh_facts()
    CourseTopic.objects.create(course=courses[1], topic="Billing")

    live = outcome_changes(cohort, as_of=date(2024, 6, 30), precomputed=False)
    stored = outcome_changes(cohort, as_of=date(2024, 6, 30), precomputed=True)

    assert stored.topics == ["Billing", "Login"]
    assert stored.tickets == live.tickets
    assert stored.tickets_by_topic == live.tickets_by_topic


def test_stored_changes_use_utc_day_in_other_zone(settings):
    """A training day is the UTC day, whatever the site's time zone is.

    The refresh stores windows around the UTC day, so a report that placed
    the trained on their local day would read windows around another day.
    """
    settings.TIME_ZONE = "America/New_York"
    course = make_course((1,))
    CourseTopic.objects.create(course=course, topic="Billing")
    # 02:00 UTC on 1 April is 22:00 on 31 March in New York.
    utc_day = date(2024, 4, 1)
    trained_at = _midnight(utc_day) + timedelta(hours=2)
    local_day = utc_day - timedelta(days=1)
    for index in range(4):
        account = make_account(signup_date=date(2023, 1, 1))
        contact = make_contact(account, added_at=_midnight(date(2023, 1, 1)))
        # On the local day: in the window before the UTC day, on neither
        # side of the local one.
        make_event(contact, at_noon(local_day))
        make_ticket(account, at_noon(local_day), topic="Billing")
        if index % 2:
            make_enrollment(
                contact,
                course,
                status=EnrollmentStatus.COMPLETED,
                completed_at=trained_at,
            )
    cohort = Cohort(course=course)
    refresh_facts()

    live = outcome_changes(cohort, as_of=date(2024, 6, 30), precomputed=False)
    stored = outcome_changes(cohort, as_of=date(2024, 6, 30), precomputed=True)

    for report in (live, stored):
        trained_days = {anchor.day for anchor in report.accounts.anchors}
        assert trained_days == {utc_day}
        assert report.usage.trained.mean_before == pytest.approx(1 / DAYS_BEFORE)
        assert report.tickets.trained.mean_before == 1
    assert stored == live


def test_stored_topic_tickets_on_sqlite(tmp_path):
    """Read topics that SQLite's JSON paths cannot name as written.

    Django writes a key of digits as an array index in a JSON path, and a
    path cannot hold a double quote, so such topics need another lookup.
    """
    script = """
import json
from datetime import UTC, date, datetime, timedelta
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from courses.models import EnrollmentStatus
from metrics.changes import outcome_changes
from metrics.cohorts import Cohort
from metrics.facts import refresh_facts
from metrics.models import CourseTopic
from tests.factories import make_account, make_contact, make_ticket
from tests.metrics.builders import at_noon, make_course, make_enrollment
topics = ["404", 'Say "hi"', "Billing"]
course = make_course((1,))
for topic in topics:
    CourseTopic.objects.create(course=course, topic=topic)
trained_on = date(2024, 4, 1)
for index in range(4):
    account = make_account(signup_date=date(2023, 1, 1))
    contact = make_contact(account, added_at=datetime(2023, 1, 1, tzinfo=UTC))
    for number, topic in enumerate(topics):
        for _ in range(number + 1):
            make_ticket(account, at_noon(trained_on - timedelta(days=2)), topic=topic)
        make_ticket(account, at_noon(trained_on + timedelta(days=2)), topic=topic)
    if index % 2:
        make_enrollment(contact, course, status=EnrollmentStatus.COMPLETED,
                        completed_at=at_noon(trained_on))
refresh_facts()
def tickets(precomputed):
    report = outcome_changes(Cohort(course=course), as_of=date(2024, 6, 30),
                             precomputed=precomputed)
    return [[row.topic, row.trained_before, row.trained_after]
            for row in report.tickets_by_topic]
print(json.dumps({"live": tickets(False), "stored": tickets(True)}))
"""
    result = run_on_sqlite(script, tmp_path)

    # Two trained accounts, each with n + 1 tickets before on the n-th topic
    # and one after.
    expected = [["404", 2, 2], ["Billing", 6, 2], ['Say "hi"', 4, 2]]
    assert result["live"] == expected
    assert result["stored"] == expected
