"""Backtests: weekly counts against an independent replay, periods and CSV."""

import csv
import io
import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from customers.models import Contact
from tests.factories import NOW, make_contact, make_event
from tests.triggers.factories import make_trigger
from triggers.backtest import (
    BacktestPeriodError,
    backtest_csv,
    backtest_trigger,
    check_period,
    default_period,
)
from triggers.models import Firing

pytestmark = pytest.mark.django_db

START = date(2024, 3, 6)  # a Wednesday, so the first week is partial
END = date(2024, 5, 30)
TODAY = NOW.date()
QUIET_DAYS = 7


def expected_weeks(contacts, events, fired_before, start, end, step_days=1):
    """Replay the inactivity-spell trigger in plain Python, day by day.

    contacts maps id to added_at, events maps id to a list of event times,
    fired_before is a set of (contact id, key) pairs. A contact matches at t
    when it existed and had no event in (t - 7 days, t]. Its key is the date
    of its last event at or before t, or "never".
    """
    fired = set(fired_before)
    fired_subjects = {contact_id for contact_id, _ in fired}
    weeks: dict[date, Any] = defaultdict(
        lambda: {"days": 0, "matched": set(), "fire": 0, "new": 0}
    )
    day = start
    while day <= end:
        instant = datetime(day.year, day.month, day.day, tzinfo=UTC)
        week = weeks[day - timedelta(days=day.weekday())]
        week["days"] += 1
        for contact_id, added_at in contacts.items():
            if added_at > instant:
                continue
            seen = [when for when in events[contact_id] if when <= instant]
            recent = [when for when in seen if when > instant - timedelta(QUIET_DAYS)]
            if recent:
                continue
            key = max(seen).date().isoformat() if seen else "never"
            week["matched"].add(contact_id)
            if (contact_id, key) in fired:
                continue
            fired.add((contact_id, key))
            week["fire"] += 1
            if contact_id not in fired_subjects:
                fired_subjects.add(contact_id)
                week["new"] += 1
        day += timedelta(days=step_days)
    return [
        (monday, row["days"], len(row["matched"]), row["fire"], row["new"])
        for monday, row in sorted(weeks.items())
    ]


def build_history(seed=7):
    """Create contacts with bursts of usage and gaps, returning what was made."""
    rng = random.Random(seed)
    contacts: dict[int, datetime] = {}
    events: dict[int, list[datetime]] = {}
    first_day = datetime(2024, 2, 1, tzinfo=UTC)
    for number in range(8):
        # The last contact joins in the middle of the period.
        added_at = first_day if number < 7 else datetime(2024, 4, 10, 9, tzinfo=UTC)
        contact = make_contact(added_at=added_at)
        contacts[contact.pk] = added_at
        events[contact.pk] = []
        for offset in range(120):
            when = first_day + timedelta(days=offset, hours=rng.randrange(24))
            if when >= added_at and rng.random() < 0.15 * (number % 4):
                make_event(contact, when)
                events[contact.pk].append(when)
    return contacts, events


def weeks_of(result):
    return [
        (
            week.week_start,
            week.days_evaluated,
            week.matched,
            week.would_fire,
            week.new_subjects,
        )
        for week in result.weeks
    ]


def test_backtest_matches_independent_replay():
    contacts, events = build_history()
    trigger = make_trigger(
        {"kind": "inactivity", "days": QUIET_DAYS}, occurrence="inactivity_spell"
    )

    result = backtest_trigger(trigger, START, END, today=TODAY)

    expected = expected_weeks(contacts, events, set(), START, END)
    assert weeks_of(result) == expected
    assert result.would_fire == sum(row[3] for row in expected)
    assert result.would_fire > result.new_subjects > 0
    assert result.weeks[0].week_start == date(2024, 3, 4)
    assert result.weeks[0].days_evaluated == 5


def record_firing(trigger, contact_id, key, fired_at):
    Firing.objects.create(
        trigger=trigger,
        subject_type="contact",
        account_id=Contact.objects.get(pk=contact_id).account_id,
        contact_id=contact_id,
        occurrence_key=key,
        fired_at=fired_at,
    )


def test_backtest_counts_earlier_firings_as_fired():
    contacts, events = build_history(seed=11)
    trigger = make_trigger(
        {"kind": "inactivity", "days": QUIET_DAYS}, occurrence="inactivity_spell"
    )
    never_used = [pk for pk, times in events.items() if not times]
    assert len(never_used) >= 2
    record_firing(trigger, never_used[0], "never", datetime(2024, 3, 1, tzinfo=UTC))
    # A firing inside the period is ignored: the backtest decides that part.
    record_firing(trigger, never_used[1], "never", datetime(2024, 4, 1, tzinfo=UTC))

    result = backtest_trigger(trigger, START, END, today=TODAY)

    expected = expected_weeks(contacts, events, {(never_used[0], "never")}, START, END)
    assert weeks_of(result) == expected
    assert expected != expected_weeks(contacts, events, set(), START, END)


def test_backtest_weekly_step():
    contacts, events = build_history(seed=3)
    trigger = make_trigger(
        {"kind": "inactivity", "days": QUIET_DAYS}, occurrence="inactivity_spell"
    )

    with CaptureQueriesContext(connection) as queries:
        result = backtest_trigger(trigger, START, END, step="week", today=TODAY)

    expected = expected_weeks(contacts, events, set(), START, END, step_days=7)
    assert weeks_of(result) == expected
    assert all(week.days_evaluated == 1 for week in result.weeks)
    # One query for earlier firings, one per evaluated day.
    assert len(queries) == 1 + result.evaluations


def test_backtest_writes_nothing():
    make_contact()
    trigger = make_trigger({"kind": "inactivity", "days": QUIET_DAYS})

    result = backtest_trigger(trigger, START, END, today=TODAY)

    assert result.would_fire == 1
    assert not Firing.objects.exists()


def test_backtest_once_policy_fires_once():
    contact = make_contact()
    for day in (1, 6, 12):
        make_event(contact, datetime(2024, 4, day, 12, tzinfo=UTC))
    trigger = make_trigger({"kind": "inactivity", "days": QUIET_DAYS})

    result = backtest_trigger(trigger, START, END, today=TODAY)

    assert result.would_fire == 1
    assert result.new_subjects == 1
    assert result.weeks[0].would_fire == 1
    matched_weeks = [week.week_start for week in result.weeks if week.matched]
    # Busy from 1 April 12:00 until 7 days after 12 April 12:00, so no
    # midnight from 2 to 19 April matches, and the week of 8 April is empty.
    assert date(2024, 4, 1) in matched_weeks
    assert date(2024, 4, 8) not in matched_weeks
    assert date(2024, 4, 15) in matched_weeks


def test_backtest_csv_has_a_row_per_week():
    make_contact()
    trigger = make_trigger({"kind": "inactivity", "days": QUIET_DAYS})
    result = backtest_trigger(trigger, START, END, today=TODAY)

    rows = list(csv.reader(io.StringIO(backtest_csv(result))))

    assert rows[0] == [
        "week_start",
        "days_evaluated",
        "matched",
        "would_fire",
        "new_subjects",
    ]
    assert len(rows) == 1 + len(result.weeks)
    assert rows[1] == ["2024-03-04", "5", "1", "1", "1"]


@pytest.mark.parametrize(
    ("start", "end", "message"),
    [
        (date(2024, 5, 1), date(2024, 4, 1), "before the start date"),
        (date(2024, 5, 1), date(2024, 6, 16), "is in the future"),
        (date(2022, 6, 1), date(2024, 6, 2), "longer than 2 years"),
    ],
)
def test_check_period_rejects(start, end, message):
    with pytest.raises(BacktestPeriodError, match=message):
        check_period(start, end, today=TODAY)


def test_check_period_accepts_two_years():
    check_period(date(2022, 6, 15), date(2024, 6, 15), today=TODAY)
    check_period(date(2024, 2, 29), date(2026, 2, 28), today=date(2026, 3, 1))


def test_backtest_rejects_unknown_step():
    trigger = make_trigger({"kind": "inactivity", "days": QUIET_DAYS})

    with pytest.raises(BacktestPeriodError, match="step 'month' is invalid"):
        backtest_trigger(trigger, START, END, step="month", today=TODAY)


def test_default_period_is_twelve_weeks():
    start, end = default_period(TODAY)  # a Saturday

    assert end == TODAY
    assert start == date(2024, 3, 25)
    assert start.weekday() == 0
    assert (end - start).days // 7 + 1 == 12


def matching_by_day(contacts, events, start, end):
    """Return, per day, the contacts that match "no usage in 7 days" at 00:00 UTC."""
    days = {}
    day = start
    while day <= end:
        instant = datetime(day.year, day.month, day.day, tzinfo=UTC)
        days[day] = {
            contact_id
            for contact_id, added_at in contacts.items()
            if added_at <= instant
            and not any(
                instant - timedelta(QUIET_DAYS) < when <= instant
                for when in events[contact_id]
            )
        }
        day += timedelta(days=1)
    return days


def weekly_firings(firing_days):
    """Count firings per ISO week from a list of (day, contact id)."""
    counts: dict[date, int] = defaultdict(int)
    for day, _ in firing_days:
        counts[day - timedelta(days=day.weekday())] += 1
    return dict(counts)


def test_backtest_every_n_days_policy():
    contacts, events = build_history(seed=5)
    trigger = make_trigger(
        {"kind": "inactivity", "days": QUIET_DAYS},
        occurrence="every_n_days",
        reentry_days=10,
    )
    first_contact = min(contacts)
    record_firing(trigger, first_contact, "first", datetime(2024, 3, 1, tzinfo=UTC))

    result = backtest_trigger(trigger, START, END, today=TODAY)

    last_fired = {first_contact: datetime(2024, 3, 1, tzinfo=UTC)}
    firing_days = []
    for day, matching in matching_by_day(contacts, events, START, END).items():
        instant = datetime(day.year, day.month, day.day, tzinfo=UTC)
        for contact_id in sorted(matching):
            latest = last_fired.get(contact_id)
            if latest is None or (instant - latest).days >= 10:
                last_fired[contact_id] = instant
                firing_days.append((day, contact_id))
    expected = weekly_firings(firing_days)
    assert {
        week.week_start: week.would_fire for week in result.weeks if week.would_fire
    } == expected
    assert result.would_fire == len(firing_days)
    assert result.new_subjects == len(
        {contact_id for _, contact_id in firing_days} - {first_contact}
    )


def test_backtest_each_new_match_policy():
    contacts, events = build_history(seed=9)
    trigger = make_trigger(
        {"kind": "inactivity", "days": QUIET_DAYS}, occurrence="each_new_match"
    )

    result = backtest_trigger(trigger, START, END, today=TODAY)

    before: set[int] = set()
    firing_days = []
    for day, matching in matching_by_day(contacts, events, START, END).items():
        firing_days += [(day, contact_id) for contact_id in matching - before]
        before = matching
    expected = weekly_firings(firing_days)
    assert {
        week.week_start: week.would_fire for week in result.weeks if week.would_fire
    } == expected
    assert result.would_fire > len(contacts)
