"""The holdout comparison against an independent pandas and scipy computation."""

import random
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from scipy import stats

from courses.models import Enrollment
from customers.models import ChurnEvent, UsageEvent
from metrics.holdouts import FOLLOW_UP_DAYS, holdout_comparison
from tests.factories import make_account, make_contact
from tests.triggers.factories import make_course, make_template, make_trigger
from triggers.models import Firing
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

FIRED_AT = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
AS_OF = FIRED_AT + timedelta(days=FOLLOW_UP_DAYS + 5)
NEVER_USED = {"kind": "inactivity", "days": 10}


def build_population(seed: int = 7, contacts: int = 240):
    """Contacts that fire one trigger with a 50% holdout, then act at random.

    Treated contacts use the product and complete a course more often than
    held-out ones; some events fall outside the follow-up window on purpose.
    """
    rng = random.Random(seed)
    course = make_course()
    people = []
    for index in range(contacts):
        account = make_account(external_id=f"HO-{seed}-{index}")
        people.append(make_contact(account, added_at=FIRED_AT - timedelta(days=60)))
    trigger = make_trigger(
        NEVER_USED, holdout_percent=50, email_template=make_template()
    )
    run_sweep(FIRED_AT, triggers=[trigger], queue_email=False)

    held = set(
        Firing.objects.filter(outcome="held_out").values_list("contact_id", flat=True)
    )
    for contact in people:
        treated = contact.pk not in held
        if rng.random() < (0.6 if treated else 0.35):
            day = rng.randint(1, FOLLOW_UP_DAYS)
            UsageEvent.objects.create(
                account=contact.account,
                contact=contact,
                name="Feature Used",
                occurred_at=FIRED_AT + timedelta(days=day, hours=-1),
            )
        if rng.random() < 0.2:
            # After the follow-up window: must not count.
            UsageEvent.objects.create(
                account=contact.account,
                contact=contact,
                name="Feature Used",
                occurred_at=FIRED_AT + timedelta(days=FOLLOW_UP_DAYS + 2),
            )
        if rng.random() < (0.4 if treated else 0.2):
            Enrollment.objects.create(
                contact=contact,
                course=course,
                status="completed",
                enrolled_at=FIRED_AT,
                completed_at=FIRED_AT + timedelta(days=rng.randint(1, 29)),
            )
        if rng.random() < (0.1 if treated else 0.25):
            ChurnEvent.objects.create(
                account=contact.account,
                external_id=f"CH-{seed}-{contact.pk}",
                churned_on=date(2024, 3, 1) + timedelta(days=rng.randint(1, 30)),
            )
    return trigger


def expected_frame(trigger) -> pd.DataFrame:
    """Compute each firing's outcomes in pandas from the raw rows."""
    firings = pd.DataFrame(
        list(
            Firing.objects.filter(trigger=trigger).values(
                "contact_id", "account_id", "outcome", "fired_at"
            )
        )
    )
    end = firings["fired_at"] + pd.Timedelta(days=FOLLOW_UP_DAYS)
    usage = pd.DataFrame(list(UsageEvent.objects.values("contact_id", "occurred_at")))
    merged = firings.assign(end=end).merge(usage, on="contact_id", how="left")
    merged["hit"] = (merged["occurred_at"] > merged["fired_at"]) & (
        merged["occurred_at"] <= merged["end"]
    )
    firings["active"] = firings["contact_id"].map(
        merged.groupby("contact_id")["hit"].any()
    )

    completions = pd.DataFrame(
        list(
            Enrollment.objects.filter(status="completed").values(
                "contact_id", "completed_at"
            )
        )
    )
    merged = firings.assign(end=end).merge(completions, on="contact_id", how="left")
    merged["hit"] = (merged["completed_at"] > merged["fired_at"]) & (
        merged["completed_at"] <= merged["end"]
    )
    firings["completed"] = firings["contact_id"].map(
        merged.groupby("contact_id")["hit"].any()
    )

    churns = pd.DataFrame(list(ChurnEvent.objects.values("account_id", "churned_on")))
    churns["churned_on"] = pd.to_datetime(churns["churned_on"]).dt.date
    merged = firings.assign(
        first_day=firings["fired_at"].dt.date, last_day=end.dt.date
    ).merge(churns, on="account_id", how="left")
    merged["hit"] = (merged["churned_on"] > merged["first_day"]) & (
        merged["churned_on"] <= merged["last_day"]
    )
    firings["churned"] = firings["account_id"].map(
        merged.groupby("account_id")["hit"].any()
    )
    return firings


def test_comparison_matches_pandas_and_scipy():
    trigger = build_population()

    [comparison] = holdout_comparison(as_of=AS_OF)

    frame = expected_frame(trigger)
    groups = frame.groupby("outcome")
    assert comparison.trigger_id == trigger.pk
    assert comparison.treated == groups.size()["acted"]
    assert comparison.control == groups.size()["held_out"]
    assert comparison.awaiting_follow_up == 0
    for metric in comparison.metrics:
        treated_events = int(groups[metric.key].sum()["acted"])
        control_events = int(groups[metric.key].sum()["held_out"])
        assert metric.treated.events == treated_events, metric.key
        assert metric.control.events == control_events, metric.key
        table = [
            [treated_events, comparison.treated - treated_events],
            [control_events, comparison.control - control_events],
        ]
        expected = stats.chi2_contingency(table, correction=False)
        assert min(expected.expected_freq.flatten()) >= 5
        assert metric.difference.p_value == pytest.approx(expected.pvalue, rel=1e-9)
        assert metric.difference.estimate == pytest.approx(
            treated_events / comparison.treated - control_events / comparison.control
        )


def test_firings_within_follow_up_left_out():
    build_population(seed=3, contacts=40)

    [comparison] = holdout_comparison(as_of=FIRED_AT + timedelta(days=10))

    assert comparison.treated == 0
    assert comparison.control == 0
    assert comparison.awaiting_follow_up == 40
    assert all(metric.difference.p_value is None for metric in comparison.metrics)


def test_only_first_firing_per_subject_counts():
    account = make_account()
    contacts = [make_contact(account) for _ in range(30)]
    trigger = make_trigger(
        NEVER_USED,
        occurrence="daily",
        holdout_percent=50,
        email_template=make_template(),
    )
    run_sweep(FIRED_AT, triggers=[trigger], queue_email=False)
    run_sweep(FIRED_AT + timedelta(days=1), triggers=[trigger], queue_email=False)

    [comparison] = holdout_comparison(as_of=AS_OF)

    assert Firing.objects.count() == 60
    assert comparison.treated + comparison.control == len(contacts)


def test_triggers_without_holdout_not_listed():
    make_contact()
    trigger = make_trigger(NEVER_USED, email_template=make_template())
    run_sweep(FIRED_AT, triggers=[trigger], queue_email=False)

    assert holdout_comparison(as_of=AS_OF) == []


def test_naive_as_of_rejected():
    with pytest.raises(ValueError, match="no time zone"):
        holdout_comparison(as_of=datetime(2024, 6, 1))  # noqa: DTZ001


# Offsets from the firing of one usage event each, around both ends of the
# follow-up (fired_at, fired_at + 30 days]. The days at the ends are only
# partly inside it, so these are the events a roll-up by day could miscount.
BOUNDARY_OFFSETS = (
    timedelta(hours=-11),  # the firing's day, before the firing
    timedelta(0),  # at the firing: not after it
    timedelta(minutes=1),  # the firing's day, after it
    timedelta(hours=11, minutes=59),  # last minute of the firing's day
    timedelta(days=15),  # a whole day inside
    timedelta(days=FOLLOW_UP_DAYS, hours=-12),  # start of the last day
    timedelta(days=FOLLOW_UP_DAYS),  # the end instant, included
    timedelta(days=FOLLOW_UP_DAYS, minutes=1),  # the last day, after the end
    timedelta(days=FOLLOW_UP_DAYS + 1),  # the day after the last
)


def fire_boundary_subjects(subject_type: str):
    """Fire one trigger for subjects with at most one event each near the ends.

    Each offset gets a treated and a held-out subject, and a few subjects
    have no event, so every group has some with and some without usage.
    """
    trigger = make_trigger(
        NEVER_USED,
        subject_type=subject_type,
        holdout_percent=50,
        email_template=make_template(),
    )
    offsets = [*BOUNDARY_OFFSETS, None, None]
    for index, offset in enumerate(offsets * 2):
        account = make_account(external_id=f"HB-{subject_type}-{index}")
        contact = make_contact(account, added_at=FIRED_AT - timedelta(days=60))
        Firing.objects.create(
            trigger=trigger,
            subject_type=subject_type,
            account=account,
            contact=contact if subject_type == "contact" else None,
            occurrence_key="once",
            fired_at=FIRED_AT,
            outcome="acted" if index < len(offsets) else "held_out",
        )
        if offset is not None:
            UsageEvent.objects.create(
                account=account,
                contact=contact,
                name="Feature Used",
                occurred_at=FIRED_AT + offset,
            )
    return trigger


def count_active_from_events(trigger) -> dict[str, int]:
    """Count subjects with a raw usage event in their follow-up, per outcome."""
    active = {"acted": 0, "held_out": 0}
    for firing in Firing.objects.filter(trigger=trigger):
        end = firing.fired_at + timedelta(days=FOLLOW_UP_DAYS)
        events = UsageEvent.objects.filter(account=firing.account_id)
        used = any(firing.fired_at < event.occurred_at <= end for event in events)
        active[firing.outcome] += used
    return active


@pytest.mark.parametrize("subject_type", ["contact", "account"])
def test_usage_at_window_ends_matches_events(subject_type):
    trigger = fire_boundary_subjects(subject_type)

    [comparison] = holdout_comparison(as_of=AS_OF)

    expected = count_active_from_events(trigger)
    # By the offsets' comments: the event 1 minute and 11:59 after the
    # firing, mid-way, at the start of the last day and at the end count.
    assert expected == {"acted": 5, "held_out": 5}
    [active] = [metric for metric in comparison.metrics if metric.key == "active"]
    assert active.treated.events == expected["acted"]
    assert active.control.events == expected["held_out"]
    assert comparison.treated == len(BOUNDARY_OFFSETS) + 2


def test_usage_read_from_roll_ups():
    fire_boundary_subjects("contact")
    fire_boundary_subjects("account")

    with CaptureQueriesContext(connection) as queries:
        holdout_comparison(as_of=AS_OF)

    contact_sql = queries.captured_queries[0]["sql"]
    account_sql = queries.captured_queries[1]["sql"]
    assert "customers_usageday" in contact_sql
    assert "metrics_accountday" in account_sql
    # Raw events are read only by time, for the two partial days.
    assert contact_sql.count('FROM "customers_usageevent"') == 2
    assert account_sql.count('FROM "customers_usageevent"') == 2
