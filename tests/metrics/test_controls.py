"""A trigger's held-out subjects as the comparison group of the changes section."""

from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from django.urls import reverse
from scipy import stats as scipy_stats

from customers.models import UsageEvent
from metrics.changes import outcome_changes
from metrics.cohorts import DAYS_AFTER, DAYS_BEFORE
from metrics.exports import CHANGES_HEADER
from metrics.models import CourseTopic
from metrics.stats import Verdict
from tests.factories import make_account, make_contact
from tests.metrics.builders import make_course
from tests.triggers.factories import make_template, make_trigger
from triggers.models import Firing, FiringOutcome, SubjectType

pytestmark = pytest.mark.django_db

FIRST_FIRING = date(2024, 3, 1)
AS_OF = date(2024, 6, 30)
NEVER_USED = {"kind": "inactivity", "days": 10}


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


def plant(seed: int, subjects: int, effect: float):
    """Fire a trigger with a holdout for contacts, then draw their daily usage.

    Every other contact is held out. Each contact has its own base rate,
    and the treated gain ``effect`` events per day after their firing day.
    Returns the trigger and, per contact, (treated, before, after) rates.
    """
    rng = np.random.default_rng(seed)
    trigger = make_trigger(
        NEVER_USED, holdout_percent=50, email_template=make_template()
    )
    planted = []
    events = []
    for index in range(subjects):
        treated = index % 2 == 0
        account = make_account(signup_date=date(2023, 1, 1))
        contact = make_contact(account, added_at=datetime(2023, 1, 1, tzinfo=UTC))
        fired_on = FIRST_FIRING + timedelta(days=int(rng.integers(0, 40)))
        # A second, later firing must not move the subject's day.
        for day in (fired_on, fired_on + timedelta(days=10)):
            Firing.objects.create(
                trigger=trigger,
                subject_type=SubjectType.CONTACT,
                account=account,
                contact=contact,
                occurrence_key=day.isoformat(),
                fired_at=at_noon(day),
                outcome=FiringOutcome.ACTED if treated else FiringOutcome.HELD_OUT,
            )
        base = rng.uniform(0.5, 3.0)
        before = after = 0
        for offset in range(-DAYS_BEFORE, DAYS_AFTER + 1):
            rate = base + (effect if treated and offset > 0 else 0.0)
            count = int(rng.poisson(rate))
            if offset < 0:
                before += count
            elif offset > 0:
                after += count
            day = fired_on + timedelta(days=offset)
            events += [
                UsageEvent(
                    account=account,
                    contact=contact,
                    name="Feature Used",
                    occurred_at=at_noon(day) + timedelta(minutes=minute),
                )
                for minute in range(count)
            ]
        planted.append((treated, before / DAYS_BEFORE, after / DAYS_AFTER))
    UsageEvent.objects.bulk_create(events)
    return trigger, planted


def test_holdout_usage_matches_scipy():
    trigger, planted = plant(seed=3, subjects=80, effect=0.0)
    treated = [after - before for is_treated, before, after in planted if is_treated]
    held = [after - before for is_treated, before, after in planted if not is_treated]
    expected = scipy_stats.ttest_ind(treated, held, equal_var=False)

    report = outcome_changes(as_of=AS_OF, control=trigger)

    assert report.is_causal
    assert report.usage.trained.n == len(treated)
    assert report.usage.untrained.n == len(held)
    assert report.usage.difference.estimate == pytest.approx(
        np.mean(treated) - np.mean(held)
    )
    assert report.usage.difference.p_value == pytest.approx(expected.pvalue)


def test_planted_holdout_effect_found():
    trigger, _ = plant(seed=5, subjects=80, effect=2.0)

    report = outcome_changes(as_of=AS_OF, control=trigger)

    interval = report.usage.difference.interval
    assert report.usage.verdict == Verdict.SIGNIFICANT
    assert interval is not None
    assert interval.low < 2.0 < interval.high


def test_account_takes_first_firing_group():
    trigger = make_trigger(
        NEVER_USED, holdout_percent=50, email_template=make_template()
    )
    account = make_account(signup_date=date(2023, 1, 1))
    for offset, outcome in ((5, FiringOutcome.ACTED), (2, FiringOutcome.HELD_OUT)):
        Firing.objects.create(
            trigger=trigger,
            subject_type=SubjectType.CONTACT,
            account=account,
            contact=make_contact(account),
            occurrence_key="once",
            fired_at=at_noon(FIRST_FIRING + timedelta(days=offset)),
            outcome=outcome,
        )

    report = outcome_changes(as_of=AS_OF, control=trigger)

    (anchor,) = report.accounts.anchors
    assert anchor.trained is False
    assert anchor.day == FIRST_FIRING + timedelta(days=2)


def test_firing_within_follow_up_awaits():
    trigger = make_trigger(
        NEVER_USED, holdout_percent=50, email_template=make_template()
    )
    contact = make_contact()
    Firing.objects.create(
        trigger=trigger,
        subject_type=SubjectType.CONTACT,
        account=contact.account,
        contact=contact,
        occurrence_key="once",
        fired_at=at_noon(AS_OF - timedelta(days=DAYS_AFTER - 1)),
        outcome=FiringOutcome.HELD_OUT,
    )

    report = outcome_changes(as_of=AS_OF, control=trigger)

    assert report.contacts.anchors == []
    assert report.contacts.trained_awaiting_follow_up == 1


def test_dashboard_compares_with_holdout(staff_client):
    trigger, _ = plant(seed=7, subjects=12, effect=1.0)
    # Without a course in the cohort, every course's ticket topics are covered.
    CourseTopic.objects.create(course=make_course((1,)), topic="Billing")

    response = staff_client.get(
        reverse("metrics:dashboard"),
        {"as_of": AS_OF.isoformat(), "holdout": trigger.pk},
    )
    csv_response = staff_client.get(
        reverse("metrics:changes-csv"),
        {"as_of": AS_OF.isoformat(), "holdout": trigger.pk},
    )

    text = response.content.decode()
    section = text[text.index('id="changes-heading"') : text.index('id="engagement')]
    assert response.status_code == 200
    assert "Treated against held out estimates the effect" in section
    assert "Held out n" in section
    assert "observational" not in section
    charts = response.context["charts"]
    for canvas in (
        "changes-usage",
        "changes-health",
        "changes-tickets",
        "changes-expansion",
    ):
        assert charts[canvas]["labels"] == ["Treated", "Held out"], canvas
    assert charts["changes-tickets-topics"]["labels"] == [
        "Billing (Treated)",
        "Billing (Held out)",
    ]
    first_row = csv_response.content.decode().splitlines()[1].split(",")
    assert first_row[CHANGES_HEADER.index("holdout_trigger_id")] == str(trigger.pk)


@pytest.mark.parametrize(
    ("holdout", "status", "message"),
    [
        ("999999", 404, "Trigger &#x27;999999&#x27; was not found"),
        ("x", 404, "Trigger &#x27;x&#x27; was not found"),
    ],
)
def test_unknown_holdout_trigger_rejected(staff_client, holdout, status, message):
    response = staff_client.get(reverse("metrics:dashboard"), {"holdout": holdout})

    assert response.status_code == status
    assert message in response.content.decode()


def test_trigger_without_holdout_rejected(staff_client):
    trigger = make_trigger(NEVER_USED, email_template=make_template())

    response = staff_client.get(reverse("metrics:changes-csv"), {"holdout": trigger.pk})

    assert response.status_code == 400
    assert "has no holdout" in response.content.decode()


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user(username="manager", is_staff=True)
    client.force_login(user)
    return client
