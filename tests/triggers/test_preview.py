"""Trigger preview: match counts, samples with leaf values, and query counts."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conditions import ConditionError
from tests.factories import (
    NOW,
    make_account,
    make_contact,
    make_event,
    make_health,
    make_ticket,
)
from tests.triggers.factories import make_trigger
from triggers.models import Trigger
from triggers.preview import format_value, preview_trigger
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

BUSY_THEN_QUIET = {
    "all": [
        {"kind": "event_count", "days": 7, "op": ">=", "value": 2},
        {"kind": "inactivity", "days": 2},
    ]
}


def events_days_ago(contact, *days):
    for day in days:
        make_event(contact, NOW - timedelta(days=day))


def test_preview_counts_and_samples_matches():
    # Two or more events in the last 7 days, none in the last 2 (half-open
    # windows, so an event exactly 2 days old is outside the 2-day window).
    busy_quiet = make_contact()
    events_days_ago(busy_quiet, 3, 4, 5)
    recent = make_contact()
    events_days_ago(recent, 1, 6)
    too_few = make_contact()
    events_days_ago(too_few, 3)
    on_boundary = make_contact()
    events_days_ago(on_boundary, 2, 4)
    trigger = make_trigger(BUSY_THEN_QUIET)

    preview = preview_trigger(trigger, NOW)

    assert preview.matched == 2
    assert [subject.contact_id for subject in preview.sample] == [
        busy_quiet.pk,
        on_boundary.pk,
    ]
    assert [leaf.path for leaf in preview.leaves] == ["$.all[0]", "$.all[1]"]
    first, second = preview.sample
    assert first.label == busy_quiet.email
    assert first.account_name == busy_quiet.account.name
    assert first.leaves[0].holds
    assert first.leaves[0].value == "3"
    assert first.leaves[1].holds
    assert first.leaves[1].value == format_value(NOW - timedelta(days=3), NOW)
    assert "3 days ago" in first.leaves[1].value
    assert second.leaves[0].value == "2"
    assert "2 days ago" in second.leaves[1].value


def test_preview_shows_leaves_that_fail():
    # In an "any" group a subject matches on one leaf; the other leaf shows
    # as not holding, with its value all the same.
    healthy = make_account()
    make_health(healthy, NOW.date(), 80)
    struggling = make_account()
    make_health(struggling, NOW.date(), 50)
    make_ticket(struggling, NOW - timedelta(days=3))
    make_ticket(struggling, NOW - timedelta(days=2))
    unscored = make_account()
    trigger = make_trigger(
        {
            "any": [
                {"kind": "health_score", "op": ">", "value": 70},
                {"kind": "open_tickets", "op": ">=", "value": 1},
            ]
        },
        subject_type="account",
    )

    preview = preview_trigger(trigger, NOW)

    assert preview.matched == 2
    by_account = {subject.account_id: subject for subject in preview.sample}
    assert set(by_account) == {healthy.pk, struggling.pk}
    assert unscored.pk not in by_account
    assert by_account[healthy.pk].leaves[0].holds
    assert by_account[healthy.pk].leaves[0].value == "80"
    assert not by_account[healthy.pk].leaves[1].holds
    assert by_account[healthy.pk].leaves[1].value == "0"
    assert not by_account[struggling.pk].leaves[0].holds
    assert by_account[struggling.pk].leaves[0].value == "50"
    assert by_account[struggling.pk].leaves[1].holds
    assert by_account[struggling.pk].leaves[1].value == "2"
    assert by_account[struggling.pk].contact_id is None


def test_preview_leaf_under_not_is_shown_alone():
    # The leaf under "not" is shown as itself: for a contact that matches
    # "not inactive", the inactivity leaf does not hold.
    active = make_contact()
    events_days_ago(active, 1)
    make_contact()
    trigger = make_trigger({"not": {"kind": "inactivity", "days": 10}})

    preview = preview_trigger(trigger, NOW)

    assert preview.matched == 1
    assert preview.leaves[0].path == "$.not"
    assert preview.sample[0].contact_id == active.pk
    assert not preview.sample[0].leaves[0].holds
    assert "1 day ago" in preview.sample[0].leaves[0].value


def test_preview_sample_is_first_by_id():
    contacts = [make_contact() for _ in range(25)]
    trigger = make_trigger({"kind": "inactivity", "days": 10})

    preview = preview_trigger(trigger, NOW)

    assert preview.matched == 25
    expected = sorted(contact.pk for contact in contacts)[:20]
    assert [subject.contact_id for subject in preview.sample] == expected
    assert all(subject.leaves[0].value == "none" for subject in preview.sample)


def test_preview_counts_only_existing_subjects():
    make_contact()
    make_contact(added_at=NOW + timedelta(days=1))
    trigger = make_trigger({"kind": "inactivity", "days": 10})

    preview = preview_trigger(trigger, NOW)

    assert preview.matched == 1


def test_preview_marks_subjects_that_fired():
    fired = make_contact()
    trigger = make_trigger({"kind": "inactivity", "days": 10})
    run_sweep(NOW, triggers=[trigger])
    unfired = make_contact()

    preview = preview_trigger(trigger, NOW)

    flags = {subject.contact_id: subject.fired_before for subject in preview.sample}
    assert flags == {fired.pk: True, unfired.pk: False}
    assert preview.sample_would_fire == 1
    assert preview.sample[0].occurrence_key == "once"


def test_preview_writes_nothing():
    make_contact()
    trigger = make_trigger({"kind": "inactivity", "days": 10})

    preview_trigger(trigger, NOW)

    assert not trigger.firings.exists()


def test_preview_rejects_invalid_condition():
    make_contact()
    trigger = make_trigger({"kind": "inactivity", "days": 10})
    Trigger.objects.filter(pk=trigger.pk).update(
        condition={"kind": "inactivity", "days": "ten"}
    )
    trigger.refresh_from_db()

    with pytest.raises(ConditionError, match="days='ten' must be a whole number"):
        preview_trigger(trigger, NOW)


def preview_queries(contacts: int, expected_matched: int) -> int:
    for _ in range(contacts):
        account = make_account(renewal_date=NOW.date() + timedelta(days=30))
        contact = make_contact(account)
        events_days_ago(contact, 3, 4)
        make_health(contact.account, NOW.date(), 60)
    trigger = make_trigger(
        {
            "all": [
                BUSY_THEN_QUIET,
                {"kind": "health_score", "op": ">=", "value": 50},
                {"kind": "renewal_within", "days": 3650},
                {"not": {"kind": "open_tickets", "op": ">=", "value": 5}},
            ]
        },
        occurrence="inactivity_spell",
    )
    with CaptureQueriesContext(connection) as queries:
        preview = preview_trigger(trigger, NOW)
    assert preview.matched == expected_matched
    # Leaves in order: event count, inactivity, health, renewal, tickets.
    assert preview.sample[0].leaves[3].value == "2024-07-15 (in 30 days)"
    return len(queries)


def test_preview_queries_do_not_grow():
    few = preview_queries(3, expected_matched=3)
    # The first three contacts still match, so 33 in all.
    many = preview_queries(30, expected_matched=33)

    assert few == many


def test_preview_matching_queries_bounded():
    # Count, sample and firings: three queries for any population.
    for _ in range(30):
        make_contact()
    trigger = make_trigger({"kind": "inactivity", "days": 10})

    with CaptureQueriesContext(connection) as queries:
        preview = preview_trigger(trigger, NOW)

    assert preview.matched == 30
    assert len(preview.sample) == 20
    assert len(queries) == 3


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, "none"),
        (7, "7"),
        (NOW.date() + timedelta(days=30), "2024-07-15 (in 30 days)"),
        (NOW.date(), "2024-06-15 (today)"),
        (NOW - timedelta(days=1, hours=1), "2024-06-14 11:00 (1 day ago)"),
    ],
)
def test_format_value(value, expected):
    assert format_value(value, NOW) == expected


def test_preview_of_history_policies():
    contact = make_contact()
    every_week = make_trigger(
        {"kind": "inactivity", "days": 10}, occurrence="every_n_days", reentry_days=7
    )
    each_match = make_trigger(
        {"kind": "inactivity", "days": 10}, occurrence="each_new_match"
    )

    weekly = preview_trigger(every_week, NOW)
    episodes = preview_trigger(each_match, NOW)

    assert weekly.sample[0].contact_id == contact.pk
    assert weekly.sample[0].occurrence_key == "first"
    assert episodes.sample[0].occurrence_key == "since:2024-06-15T12:00:00+00:00"
