"""Holdouts: a stable, deterministic share of subjects gets no action."""

import os
import subprocess
import sys
from datetime import timedelta

import pytest
from scipy import stats

from courses.models import Enrollment
from tests.factories import NOW, make_account, make_contact
from tests.triggers.factories import make_course, make_template, make_trigger
from triggers.holdouts import holdout_bucket
from triggers.models import Firing, OutboxEmail
from triggers.services import run_sweep

NEVER_USED = {"kind": "inactivity", "days": 10}


def test_bucket_same_in_other_processes():
    subjects = range(1, 200)
    here = [holdout_bucket(7, "contact", subject) for subject in subjects]
    script = (
        "from triggers.holdouts import holdout_bucket;"
        "print([holdout_bucket(7, 'contact', s) for s in range(1, 200)])"
    )

    # Python's hash() changes with PYTHONHASHSEED; the bucket must not.
    for seed in ("1", "2"):
        output = subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert output.strip() == str(here)


def test_bucket_depends_on_trigger_and_subject_type():
    subjects = range(1, 500)
    contact_buckets = [holdout_bucket(1, "contact", s) for s in subjects]

    assert contact_buckets != [holdout_bucket(2, "contact", s) for s in subjects]
    assert contact_buckets != [holdout_bucket(1, "account", s) for s in subjects]
    assert all(0 <= bucket <= 99 for bucket in contact_buckets)


@pytest.mark.parametrize("percent", [5, 20, 50, 90])
def test_held_out_share_matches_binomial(percent):
    subjects = 20_000
    held_out = sum(
        holdout_bucket(11, "contact", subject) < percent
        for subject in range(1, subjects + 1)
    )

    # A 99.9% interval: a sound hash falls outside once in a thousand runs
    # of a random subject set, and these subjects are fixed.
    low, high = stats.binom.interval(0.999, subjects, percent / 100)
    assert low <= held_out <= high


def test_buckets_uniform_chi_square():
    counts = [0] * 100
    for subject in range(1, 50_001):
        counts[holdout_bucket(3, "account", subject)] += 1

    result = stats.chisquare(counts)

    assert result.pvalue > 0.001


@pytest.mark.django_db
def test_held_out_firings_get_no_action():
    account = make_account()
    contacts = [make_contact(account) for _ in range(300)]
    trigger = make_trigger(
        NEVER_USED,
        holdout_percent=30,
        enroll_course=make_course(),
        email_template=make_template(),
    )

    report = run_sweep(NOW, triggers=[trigger])

    held = set(
        Firing.objects.filter(outcome="held_out").values_list("contact_id", flat=True)
    )
    acted = set(
        Firing.objects.filter(outcome="acted").values_list("contact_id", flat=True)
    )
    expected_held = {
        contact.pk
        for contact in contacts
        if holdout_bucket(trigger.pk, "contact", contact.pk) < 30
    }
    assert held == expected_held
    assert acted == {contact.pk for contact in contacts} - expected_held
    assert report.fired == 300
    assert set(Enrollment.objects.values_list("contact_id", flat=True)) == acted
    assert set(OutboxEmail.objects.values_list("contact_id", flat=True)) == acted
    low, high = stats.binom.interval(0.999, 300, 0.3)
    assert low <= len(held) <= high
    note = Firing.objects.filter(outcome="held_out").first().note  # type: ignore[union-attr]
    assert note.startswith("Held out as control")


@pytest.mark.django_db
def test_subject_stays_in_group_across_occurrences():
    account = make_account()
    for _ in range(40):
        make_contact(account)
    trigger = make_trigger(
        NEVER_USED,
        occurrence="daily",
        holdout_percent=50,
        email_template=make_template(),
    )

    run_sweep(NOW, triggers=[trigger])
    run_sweep(NOW + timedelta(days=1), triggers=[trigger])

    outcomes: dict[int, set[str]] = {}
    for contact_id, outcome in Firing.objects.values_list("contact_id", "outcome"):
        outcomes.setdefault(contact_id, set()).add(outcome)
    assert Firing.objects.count() == 80
    assert all(len(seen) == 1 for seen in outcomes.values())


@pytest.mark.django_db
def test_account_holdout_keys_on_account():
    accounts = [make_account(plan="Enterprise") for _ in range(30)]
    for account in accounts:
        make_contact(account, is_champion=True)
    trigger = make_trigger(
        {"kind": "plan", "plans": ["Enterprise"]},
        subject_type="account",
        holdout_percent=40,
        email_template=make_template(),
    )

    run_sweep(NOW, triggers=[trigger])

    expected_held = {
        account.pk
        for account in accounts
        if holdout_bucket(trigger.pk, "account", account.pk) < 40
    }
    held = set(
        Firing.objects.filter(outcome="held_out").values_list("account_id", flat=True)
    )
    emailed = set(OutboxEmail.objects.values_list("firing__account_id", flat=True))
    assert held == expected_held
    assert emailed == {account.pk for account in accounts} - expected_held


@pytest.mark.django_db
def test_zero_holdout_acts_on_all():
    for _ in range(20):
        make_contact()
    trigger = make_trigger(NEVER_USED, email_template=make_template())

    run_sweep(NOW, triggers=[trigger])

    assert not Firing.objects.exclude(outcome="acted").exists()
    assert OutboxEmail.objects.count() == 20
