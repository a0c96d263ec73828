"""Activating triggers with and without backfill, and deactivating them."""

from datetime import timedelta

import pytest

from conditions import ConditionError
from tests.factories import NOW, make_account, make_contact, make_event
from tests.triggers.factories import make_template, make_trigger
from triggers.activation import (
    activate_trigger,
    activation_choice,
    deactivate_trigger,
)
from triggers.models import Firing, OutboxEmail, Trigger
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

INACTIVE_10_DAYS = {"kind": "inactivity", "days": 10}


def draft(condition=INACTIVE_10_DAYS, **fields):
    return make_trigger(condition, is_active=False, **fields)


def firings(trigger):
    return {
        (firing.contact_id, firing.occurrence_key, firing.outcome)
        for firing in Firing.objects.filter(trigger=trigger)
    }


def test_activation_without_backfill_records_baseline():
    quiet = make_contact()
    busy = make_contact()
    make_event(busy, NOW - timedelta(days=2))
    trigger = draft(email_template=make_template())

    result = activate_trigger(trigger, backfill=False, at=NOW)

    assert result.activated
    assert result.matched == 1
    assert result.baseline_recorded == 1
    assert firings(trigger) == {(quiet.pk, "once", "baseline")}
    assert not OutboxEmail.objects.exists()
    trigger.refresh_from_db()
    assert trigger.is_active
    assert not trigger.backfill
    assert trigger.activated_at == NOW


def test_sweep_after_baseline_fires_new_matches_only():
    # busy's last event is 2 days old at activation and 11 days old 9 days
    # later, so busy starts matching then. quiet matched all along.
    quiet = make_contact()
    busy = make_contact()
    make_event(busy, NOW - timedelta(days=2))
    trigger = draft(email_template=make_template())
    activate_trigger(trigger, backfill=False, at=NOW)

    report = run_sweep(NOW + timedelta(days=9))

    assert report.fired == 1
    assert firings(trigger) == {
        (quiet.pk, "once", "baseline"),
        (busy.pk, "once", "acted"),
    }
    email = OutboxEmail.objects.get()
    assert email.contact_id == busy.pk


def test_activation_with_backfill_fires_current_matches():
    quiet = make_contact()
    busy = make_contact()
    make_event(busy, NOW - timedelta(days=2))
    trigger = draft(email_template=make_template())

    result = activate_trigger(trigger, backfill=True, at=NOW)
    assert not Firing.objects.exists()
    report = run_sweep(NOW)

    assert result.activated
    assert result.baseline_recorded == 0
    assert report.fired == 1
    assert firings(trigger) == {(quiet.pk, "once", "acted")}
    assert OutboxEmail.objects.get().contact_id == quiet.pk
    trigger.refresh_from_db()
    assert trigger.backfill


def test_activation_is_idempotent():
    make_contact()
    trigger = draft()

    first = activate_trigger(trigger, backfill=False, at=NOW)
    make_contact()
    second = activate_trigger(trigger, backfill=False, at=NOW + timedelta(days=1))

    assert first.activated
    assert not second.activated
    assert Firing.objects.filter(trigger=trigger).count() == 1
    trigger.refresh_from_db()
    assert trigger.activated_at == NOW


def test_reactivation_keeps_earlier_firings():
    fired = make_contact()
    trigger = make_trigger(INACTIVE_10_DAYS)
    run_sweep(NOW, triggers=[trigger])
    deactivate_trigger(trigger)
    newcomer = make_contact()

    result = activate_trigger(trigger, backfill=False, at=NOW + timedelta(hours=1))

    assert result.matched == 2
    assert result.baseline_recorded == 1
    assert firings(trigger) == {
        (fired.pk, "once", "acted"),
        (newcomer.pk, "once", "baseline"),
    }


def test_baseline_uses_daily_occurrence_key():
    # Under "once per day" the baseline covers the day of activation only,
    # so a subject that still matches the next day fires then.
    quiet = make_contact()
    trigger = draft(occurrence="daily")
    activate_trigger(trigger, backfill=False, at=NOW)

    same_day = run_sweep(NOW + timedelta(hours=6))
    next_day = run_sweep(NOW + timedelta(days=1))

    assert same_day.fired == 0
    assert next_day.fired == 1
    assert firings(trigger) == {
        (quiet.pk, "2024-06-15", "baseline"),
        (quiet.pk, "2024-06-16", "acted"),
    }


def test_account_trigger_baseline():
    account = make_account(renewal_date=NOW.date() + timedelta(days=30))
    make_account(renewal_date=NOW.date() + timedelta(days=200))
    trigger = draft(
        {"kind": "renewal_within", "days": 60},
        subject_type="account",
        occurrence="renewal_date",
    )

    activate_trigger(trigger, backfill=False, at=NOW)

    firing = Firing.objects.get(trigger=trigger)
    assert firing.account_id == account.pk
    assert firing.contact_id is None
    assert firing.occurrence_key == "2024-07-15"
    assert firing.outcome == "baseline"
    assert firing.fired_at == NOW


def test_activation_clears_disabled_reason():
    trigger = draft()
    Trigger.objects.filter(pk=trigger.pk).update(disabled_reason="Course deleted.")

    activate_trigger(trigger, backfill=True, at=NOW)

    trigger.refresh_from_db()
    assert trigger.disabled_reason == ""
    assert trigger.is_active


def test_activation_rejects_invalid_condition():
    make_contact()
    trigger = draft()
    Trigger.objects.filter(pk=trigger.pk).update(condition={"kind": "nope"})

    with pytest.raises(ConditionError, match="unknown condition kind 'nope'"):
        activate_trigger(trigger, backfill=False, at=NOW)

    trigger.refresh_from_db()
    assert not trigger.is_active
    assert not Firing.objects.exists()


def test_activation_rejects_naive_time():
    trigger = draft()

    with pytest.raises(ValueError, match="has no time zone"):
        activate_trigger(trigger, backfill=False, at=NOW.replace(tzinfo=None))


def test_failed_activation_writes_nothing(monkeypatch):
    make_contact()
    trigger = draft()

    def fail(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr(Trigger, "save", fail)
    with pytest.raises(RuntimeError):
        activate_trigger(trigger, backfill=False, at=NOW)

    assert not Firing.objects.exists()
    assert not Trigger.objects.get(pk=trigger.pk).is_active


def test_deactivation_flips_flag_only():
    make_contact()
    trigger = draft()
    activate_trigger(trigger, backfill=False, at=NOW)

    assert deactivate_trigger(trigger)
    assert not deactivate_trigger(trigger)

    trigger.refresh_from_db()
    assert not trigger.is_active
    assert Firing.objects.filter(trigger=trigger).count() == 1


def test_activation_choice_counts():
    fired = make_contact()
    trigger = make_trigger(INACTIVE_10_DAYS)
    run_sweep(NOW, triggers=[trigger])
    make_contact()
    busy = make_contact()
    make_event(busy, NOW - timedelta(days=1))

    choice = activation_choice(trigger, NOW)

    assert Firing.objects.get(trigger=trigger).contact_id == fired.pk
    assert choice.matched == 2
    assert choice.backfill_targets == 1


def test_baseline_opens_match_episodes():
    # Under "each new match" the baseline covers the episode open at
    # activation. The contact fires once it stops matching and matches again.
    contact = make_contact()
    trigger = draft(occurrence="each_new_match")
    activate_trigger(trigger, backfill=False, at=NOW)

    next_day = run_sweep(NOW + timedelta(days=1))
    make_event(contact, NOW + timedelta(days=1, hours=1))
    busy = run_sweep(NOW + timedelta(days=2))
    quiet_again = run_sweep(NOW + timedelta(days=12))

    assert next_day.fired == 0
    assert busy.fired == 0
    assert quiet_again.fired == 1
    outcomes = sorted(
        Firing.objects.filter(trigger=trigger).values_list("outcome", flat=True)
    )
    assert outcomes == ["acted", "baseline"]


def test_baseline_counts_for_every_n_days():
    make_contact()
    trigger = draft(occurrence="every_n_days", reentry_days=7)
    activate_trigger(trigger, backfill=False, at=NOW)

    within = run_sweep(NOW + timedelta(days=6))
    after = run_sweep(NOW + timedelta(days=7))

    assert within.fired == 0
    assert after.fired == 1
