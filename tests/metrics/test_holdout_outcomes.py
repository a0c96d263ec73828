"""Churn, renewal and time-to-value of treated and held-out accounts.

The expected figures come from the raw rows (usage events, churn events
and account fields) counted here, and from scipy and statsmodels.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from django.urls import reverse
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import confint_proportions_2indep

from customers.models import ChurnEvent, UsageEvent
from metrics.exports import HOLDOUT_OUTCOME_HEADER
from metrics.holdout_outcomes import holdout_outcomes
from metrics.scope import Scope
from metrics.stats import Verdict
from tests.factories import make_account, make_contact
from tests.triggers.factories import make_template, make_trigger
from triggers.models import Firing, FiringOutcome, SubjectType

pytestmark = pytest.mark.django_db

SIGNUP = date(2024, 1, 1)
FIRST_FIRING = date(2024, 3, 1)
AS_OF = date(2024, 6, 30)
NEVER_USED = {"kind": "inactivity", "days": 10}


def at_noon(day: date) -> datetime:
    return datetime(day.year, day.month, day.day, 12, tzinfo=UTC)


@dataclass
class PlantedAccount:
    treated: bool
    fired_on: date
    churn_days: list[date]
    renewal_date: date | None
    usage_days: list[date]


def draw_accounts(rng: np.random.Generator, count: int) -> list[PlantedAccount]:
    """Draw accounts whose outcomes depend on the group, some before the firing."""
    planted = []
    for index in range(count):
        treated = index % 3 != 0
        fired_on = FIRST_FIRING + timedelta(days=int(rng.integers(0, 30)))
        churn_days = []
        if rng.random() < (0.15 if treated else 0.35):
            # Some churn before or on the firing day: such accounts are
            # left out of churn and renewal.
            churn_days.append(fired_on + timedelta(days=int(rng.integers(-10, 90))))
        renewal_date = None
        if rng.random() < 0.7:
            renewal_date = fired_on + timedelta(days=int(rng.integers(-20, 100)))
        usage_days = []
        if rng.random() < 0.3:
            # Value reached before the firing: left out of time-to-value.
            usage_days.append(fired_on - timedelta(days=int(rng.integers(1, 40))))
        elif rng.random() < 0.8:
            delay = rng.poisson(20 if treated else 30)
            usage_days.append(fired_on + timedelta(days=1 + int(delay)))
            usage_days.append(usage_days[0] + timedelta(days=3))
        planted.append(
            PlantedAccount(treated, fired_on, churn_days, renewal_date, usage_days)
        )
    return planted


def save_accounts(planted: list[PlantedAccount], subject_type: str = "account"):
    """Save the accounts, their raw rows and one firing each of a new trigger."""
    trigger = make_trigger(
        NEVER_USED,
        subject_type=subject_type,
        holdout_percent=30,
        email_template=make_template(),
    )
    for index, item in enumerate(planted):
        account = make_account(signup_date=SIGNUP, renewal_date=item.renewal_date)
        contact = make_contact(account, added_at=at_noon(SIGNUP))
        for offset, churned_on in enumerate(item.churn_days):
            ChurnEvent.objects.create(
                account=account,
                external_id=f"HOC-{index}-{offset}",
                churned_on=churned_on,
            )
        for day in item.usage_days:
            UsageEvent.objects.create(
                account=account,
                contact=contact,
                name="Feature Used",
                occurred_at=at_noon(day),
            )
        Firing.objects.create(
            trigger=trigger,
            subject_type=subject_type,
            account=account,
            contact=contact if subject_type == SubjectType.CONTACT else None,
            occurrence_key="once",
            fired_at=at_noon(item.fired_on),
            outcome=FiringOutcome.ACTED if item.treated else FiringOutcome.HELD_OUT,
        )
    return trigger


def expected_outcomes(planted: list[PlantedAccount]) -> dict[bool, dict]:
    """Count each group's outcomes from the planted rows, by the documented rules."""
    groups: dict[bool, dict] = {
        group: {"churn": [], "renewal": [], "ttv": []} for group in (True, False)
    }
    for item in planted:
        outcomes = groups[item.treated]
        churns = [day for day in item.churn_days if day <= AS_OF]
        first_churn = min(churns) if churns else None
        if first_churn is None or first_churn > item.fired_on:
            outcomes["churn"].append(first_churn is not None)
            due = item.renewal_date
            if due is not None and item.fired_on < due <= AS_OF:
                outcomes["renewal"].append(first_churn is None)
        usage = [day for day in item.usage_days if SIGNUP <= day <= AS_OF]
        first_usage = min(usage) if usage else None
        if first_usage is not None and first_usage > item.fired_on:
            outcomes["ttv"].append((first_usage - SIGNUP).days)
    return groups


def check_share(metric, treated: list[bool], held_out: list[bool]) -> None:
    events = (sum(treated), sum(held_out))
    sizes = (len(treated), len(held_out))
    assert metric.trained.n == sizes[0], metric.key
    assert metric.untrained.n == sizes[1], metric.key
    assert metric.trained.events == events[0], metric.key
    assert metric.untrained.events == events[1], metric.key
    table = [
        [events[0], sizes[0] - events[0]],
        [events[1], sizes[1] - events[1]],
    ]
    chi_square = scipy_stats.chi2_contingency(table, correction=False)
    assert chi_square.expected_freq.min() >= 5, metric.key
    assert metric.difference.p_value == pytest.approx(chi_square.pvalue, rel=1e-9)
    low, high = confint_proportions_2indep(
        events[0], sizes[0], events[1], sizes[1], method="newcomb"
    )
    assert metric.difference.interval is not None
    assert metric.difference.interval.low == pytest.approx(low, rel=1e-9)
    assert metric.difference.interval.high == pytest.approx(high, rel=1e-9)
    assert metric.difference.estimate == pytest.approx(
        events[0] / sizes[0] - events[1] / sizes[1]
    )


def test_outcomes_match_raw_rows_and_scipy():
    planted = draw_accounts(np.random.default_rng(11), 300)
    trigger = save_accounts(planted)

    report = holdout_outcomes(trigger, as_of=AS_OF)

    expected = expected_outcomes(planted)
    churn, renewal, ttv = report.metrics
    assert report.treated_accounts == sum(item.treated for item in planted)
    assert report.held_out_accounts == sum(not item.treated for item in planted)
    check_share(churn, expected[True]["churn"], expected[False]["churn"])
    check_share(renewal, expected[True]["renewal"], expected[False]["renewal"])

    treated_days, held_out_days = expected[True]["ttv"], expected[False]["ttv"]
    welch = scipy_stats.ttest_ind(treated_days, held_out_days, equal_var=False)
    interval = welch.confidence_interval(0.95)
    assert ttv.trained.n == len(treated_days)
    assert ttv.untrained.n == len(held_out_days)
    assert ttv.trained.estimate == pytest.approx(np.mean(treated_days))
    assert ttv.difference.p_value == pytest.approx(welch.pvalue, rel=1e-6)
    assert ttv.difference.interval is not None
    assert ttv.difference.interval.low == pytest.approx(interval.low, rel=1e-6)
    assert ttv.difference.interval.high == pytest.approx(interval.high, rel=1e-6)
    assert ttv.verdict == Verdict.SIGNIFICANT


def test_contact_trigger_counts_accounts():
    planted = draw_accounts(np.random.default_rng(5), 60)
    trigger = save_accounts(planted, subject_type=SubjectType.CONTACT)

    report = holdout_outcomes(trigger, as_of=AS_OF)

    expected = expected_outcomes(planted)
    churn = report.metrics[0]
    assert report.treated_accounts + report.held_out_accounts == 60
    assert churn.trained.n == len(expected[True]["churn"])
    assert churn.untrained.n == len(expected[False]["churn"])


def test_small_holdout_warns():
    planted = draw_accounts(np.random.default_rng(3), 12)
    trigger = save_accounts(planted)

    report = holdout_outcomes(trigger, as_of=AS_OF)

    for metric in report.metrics:
        assert metric.verdict == Verdict.SMALL_SAMPLE, metric.key
    assert report.metrics[0].trained.estimate is not None


def test_firing_on_as_of_awaits():
    planted = [PlantedAccount(True, AS_OF, [], None, [])]
    trigger = save_accounts(planted)

    report = holdout_outcomes(trigger, as_of=AS_OF)

    assert report.treated_accounts == 0
    assert report.awaiting_follow_up == 1


def test_period_keeps_firings_in_it():
    planted = draw_accounts(np.random.default_rng(8), 40)
    trigger = save_accounts(planted)

    start = FIRST_FIRING + timedelta(days=15)
    report = holdout_outcomes(trigger, Scope(start=start), as_of=AS_OF)

    in_period = [item for item in planted if item.fired_on >= start]
    assert report.treated_accounts + report.held_out_accounts == len(in_period)


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user(username="manager", is_staff=True)
    client.force_login(user)
    return client


def test_dashboard_shows_causal_table(staff_client):
    planted = draw_accounts(np.random.default_rng(4), 30)
    trigger = save_accounts(planted)
    query = {"as_of": AS_OF.isoformat(), "holdout": trigger.pk}

    response = staff_client.get(reverse("metrics:dashboard"), query)
    csv_response = staff_client.get(reverse("metrics:holdout-outcomes-csv"), query)

    text = response.content.decode()
    report = holdout_outcomes(trigger, as_of=AS_OF)
    assert f"Treated and held-out accounts of {trigger.name} (causal)" in text
    lines = csv_response.content.decode().splitlines()
    assert lines[0].split(",") == HOLDOUT_OUTCOME_HEADER
    assert [line.split(",")[2] for line in lines[1:]] == [
        "churn_rate",
        "renewal_rate",
        "time_to_value",
    ]
    churn_row = dict(zip(HOLDOUT_OUTCOME_HEADER, lines[1].split(","), strict=True))
    assert churn_row["holdout_trigger_id"] == str(trigger.pk)
    assert int(churn_row["treated_n"]) == report.metrics[0].trained.n
    assert int(churn_row["held_out_n"]) == report.metrics[0].untrained.n


def test_dashboard_without_holdout_hides_table(staff_client):
    response = staff_client.get(reverse("metrics:dashboard"))
    csv_response = staff_client.get(reverse("metrics:holdout-outcomes-csv"))

    assert "Treated and held-out accounts" not in response.content.decode()
    assert csv_response.status_code == 400
    assert "holdout filter is missing" in csv_response.content.decode()
