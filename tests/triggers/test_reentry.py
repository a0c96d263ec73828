"""Re-entry policies: at most once every N days, and each new match after a gap."""

from datetime import UTC, timedelta

import pytest
from django.core.exceptions import ValidationError

from tests.factories import NOW, make_account, make_contact, make_event
from tests.triggers.factories import make_trigger
from triggers.models import Firing, TriggerMatch
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

# Matches a contact with no usage in the last 10 days.
INACTIVE = {"kind": "inactivity", "days": 10}
DAY = timedelta(days=1)


def firings(trigger):
    return list(
        Firing.objects.filter(trigger=trigger)
        .order_by("fired_at")
        .values_list("fired_at", "occurrence_key")
    )


def test_every_n_days_once_per_window():
    make_contact()
    trigger = make_trigger(INACTIVE, occurrence="every_n_days", reentry_days=7)

    for day in (0, 3, 6, 7, 10, 13, 14):
        run_sweep(NOW + day * DAY, triggers=[trigger])

    # Day 0 fires. Days 3 and 6 are within 7 days of it. Day 7 is exactly
    # 7 days later, so it fires, and so does day 14 after days 10 and 13.
    # Each key names the firing before it.
    rows = firings(trigger)
    assert [fired_at for fired_at, _ in rows] == [NOW, NOW + 7 * DAY, NOW + 14 * DAY]
    ids = list(
        Firing.objects.filter(trigger=trigger)
        .order_by("fired_at")
        .values_list("pk", flat=True)
    )
    assert [key for _, key in rows] == ["first", f"after:{ids[0]}", f"after:{ids[1]}"]


def test_every_n_days_same_instant_twice():
    make_contact()
    trigger = make_trigger(INACTIVE, occurrence="every_n_days", reentry_days=7)

    run_sweep(NOW, triggers=[trigger])
    run_sweep(NOW + 8 * DAY, triggers=[trigger])
    run_sweep(NOW + 8 * DAY, triggers=[trigger])

    assert len(firings(trigger)) == 2


def test_every_n_days_for_accounts():
    make_account()
    trigger = make_trigger(
        {"kind": "plan", "plans": ["Basic"]},
        subject_type="account",
        occurrence="every_n_days",
        reentry_days=30,
    )

    for day in (0, 29, 30, 59, 60):
        run_sweep(NOW + day * DAY, triggers=[trigger])

    assert [fired_at for fired_at, _ in firings(trigger)] == [
        NOW,
        NOW + 30 * DAY,
        NOW + 60 * DAY,
    ]


def test_every_n_days_needs_days():
    with pytest.raises(ValidationError) as caught:
        make_trigger(INACTIVE, occurrence="every_n_days")

    assert "reentry_days" in caught.value.message_dict


def test_each_new_match_fires_after_gap():
    contact = make_contact()
    trigger = make_trigger(INACTIVE, occurrence="each_new_match")

    run_sweep(NOW, triggers=[trigger])  # matches: episode 1 starts
    run_sweep(NOW + DAY, triggers=[trigger])  # still matches: same episode
    make_event(contact, NOW + DAY + timedelta(hours=1))
    run_sweep(NOW + 2 * DAY, triggers=[trigger])  # used the product: ends
    run_sweep(NOW + 5 * DAY, triggers=[trigger])  # event 3.9 days old: no match
    # The event is 10 days and 23 hours old at day 12, outside the window.
    run_sweep(NOW + 12 * DAY, triggers=[trigger])  # matches: episode 2 starts
    run_sweep(NOW + 13 * DAY, triggers=[trigger])

    assert firings(trigger) == [
        (NOW, f"since:{NOW.astimezone(UTC).isoformat()}"),
        (NOW + 12 * DAY, f"since:{(NOW + 12 * DAY).isoformat()}"),
    ]
    episodes = list(
        TriggerMatch.objects.filter(trigger=trigger)
        .order_by("since")
        .values_list("since", "last_seen", "ended_at")
    )
    assert episodes == [
        (NOW, NOW + DAY, NOW + 2 * DAY),
        (NOW + 12 * DAY, NOW + 13 * DAY, None),
    ]


def test_each_new_match_scoped_sweep_leaves_other_accounts():
    inside = make_contact()
    outside = make_contact()
    trigger = make_trigger(INACTIVE, occurrence="each_new_match")
    run_sweep(NOW, triggers=[trigger])
    make_event(outside, NOW + DAY)

    # A sweep scoped to inside's account does not see outside stop matching.
    run_sweep(NOW + 2 * DAY, triggers=[trigger], account_ids=[inside.account_id])

    open_episodes = set(
        TriggerMatch.objects.filter(trigger=trigger, ended_at=None).values_list(
            "contact_id", flat=True
        )
    )
    assert open_episodes == {inside.pk, outside.pk}


def test_once_policy_unchanged():
    make_contact()
    trigger = make_trigger(INACTIVE, occurrence="once")

    for day in (0, 7, 30):
        run_sweep(NOW + day * DAY, triggers=[trigger])

    assert firings(trigger) == [(NOW, "once")]
    assert not TriggerMatch.objects.exists()
