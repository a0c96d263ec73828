"""Sweeps: firings, occurrence keys, actions, transactions and query counts."""

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.conf import settings
from django.db import connection
from django.test.utils import CaptureQueriesContext

from conditions import EvaluationContext
from courses.models import Enrollment, SignInLink
from customers.models import Account
from tests.factories import NOW, make_account, make_contact, make_event, make_survey
from tests.triggers.factories import make_course, make_template, make_trigger
from triggers.evaluation import new_matching_subjects
from triggers.models import Firing, OutboxEmail, Sweep, Trigger
from triggers.services import (
    due_outbox_ids,
    replay,
    retry_failed_email,
    run_sweep,
    send_due_email,
    send_outbox_email,
)

pytestmark = pytest.mark.django_db

INACTIVE_10_DAYS = {"kind": "inactivity", "days": 10}


def keys(trigger):
    return sorted(
        Firing.objects.filter(trigger=trigger).values_list("occurrence_key", flat=True)
    )


def test_event_on_boundary_day_is_outside_window():
    # The window is (as_of - 10 days, as_of]: an event exactly 10 days old
    # no longer counts as usage, one a second younger does.
    on_boundary = make_contact()
    make_event(on_boundary, NOW - timedelta(days=10))
    inside = make_contact()
    make_event(inside, NOW - timedelta(days=10) + timedelta(seconds=1))
    trigger = make_trigger(INACTIVE_10_DAYS)

    run_sweep(NOW, triggers=[trigger])

    fired = set(
        Firing.objects.filter(trigger=trigger).values_list("contact_id", flat=True)
    )
    assert fired == {on_boundary.pk}


def test_contact_without_events_keys_never():
    silent = make_contact()
    trigger = make_trigger(INACTIVE_10_DAYS, occurrence="inactivity_spell")

    run_sweep(NOW, triggers=[trigger])

    firing = Firing.objects.get(trigger=trigger)
    assert firing.contact_id == silent.pk
    assert firing.occurrence_key == "never"


def test_account_without_renewal_date():
    undated = make_account(renewal_date=None)
    renewal_trigger = make_trigger(
        {"kind": "renewal_within", "days": 3650}, subject_type="account"
    )
    plan_trigger = make_trigger(
        {"kind": "plan", "plans": ["Basic"]},
        subject_type="account",
        occurrence="renewal_date",
    )

    run_sweep(NOW, triggers=[renewal_trigger, plan_trigger])

    assert not Firing.objects.filter(trigger=renewal_trigger).exists()
    firing = Firing.objects.get(trigger=plan_trigger)
    assert firing.account_id == undated.pk
    assert firing.occurrence_key == "none"


def test_non_utc_as_of_is_same_instant():
    # 05:00 in Tokyo on 16 June is 20:00 UTC on 15 June.
    as_of = datetime(2024, 6, 16, 5, 0, tzinfo=ZoneInfo("Asia/Tokyo"))
    existing = make_contact(added_at=datetime(2024, 6, 15, 19, 30, tzinfo=UTC))
    make_contact(added_at=datetime(2024, 6, 15, 20, 30, tzinfo=UTC))
    trigger = make_trigger(INACTIVE_10_DAYS, occurrence="daily")

    run_sweep(as_of, triggers=[trigger])

    firing = Firing.objects.get(trigger=trigger)
    assert firing.contact_id == existing.pk
    assert firing.fired_at == datetime(2024, 6, 15, 20, 0, tzinfo=UTC)
    # Days are those of the project's time zone, UTC.
    assert firing.occurrence_key == "2024-06-15"


def test_subjects_added_after_as_of_ignored():
    make_contact(added_at=NOW + timedelta(minutes=1))
    future_account = make_account(signup_date=NOW.date() + timedelta(days=1))
    contact_trigger = make_trigger(INACTIVE_10_DAYS)
    account_trigger = make_trigger(
        {"kind": "plan", "plans": ["Basic"]}, subject_type="account"
    )

    run_sweep(NOW, triggers=[contact_trigger, account_trigger])

    assert not Firing.objects.filter(trigger=contact_trigger).exists()
    assert not Firing.objects.filter(account=future_account).exists()


def test_naive_as_of_rejected():
    with pytest.raises(ValueError, match="has no time zone"):
        run_sweep(datetime(2024, 6, 15, 12, 0))  # noqa: DTZ001


def test_sweep_twice_same_as_once(django_capture_on_commit_callbacks, mailoutbox):
    account = make_account()
    contacts = [make_contact(account) for _ in range(3)]
    trigger = make_trigger(
        INACTIVE_10_DAYS, enroll_course=make_course(), email_template=make_template()
    )

    with django_capture_on_commit_callbacks(execute=True):
        first = run_sweep(NOW)
    firings = list(
        Firing.objects.values_list("trigger_id", "contact_id", "occurrence_key")
    )
    with django_capture_on_commit_callbacks(execute=True):
        second = run_sweep(NOW)

    assert (first.fired, first.enrollments, first.emails_queued) == (3, 3, 3)
    assert (second.matched, second.fired, second.enrollments, second.emails_queued) == (
        3,
        0,
        0,
        0,
    )
    assert (
        list(Firing.objects.values_list("trigger_id", "contact_id", "occurrence_key"))
        == firings
    )
    assert Enrollment.objects.count() == 3
    assert OutboxEmail.objects.count() == 3
    assert len(mailoutbox) == 3
    assert Firing.objects.filter(trigger=trigger).count() == len(contacts)


def test_inactivity_spell_fires_again_after_usage():
    contact = make_contact()
    make_event(contact, NOW - timedelta(days=20))
    trigger = make_trigger(INACTIVE_10_DAYS, occurrence="inactivity_spell")

    run_sweep(NOW, triggers=[trigger])
    run_sweep(NOW + timedelta(days=1), triggers=[trigger])
    make_event(contact, NOW + timedelta(days=2))
    run_sweep(NOW + timedelta(days=5), triggers=[trigger])
    run_sweep(NOW + timedelta(days=15), triggers=[trigger])

    assert keys(trigger) == ["2024-05-26", "2024-06-17"]


def test_renewal_date_policy_fires_per_date():
    account = make_account(renewal_date=NOW.date() + timedelta(days=30))
    trigger = make_trigger(
        {"kind": "renewal_within", "days": 60},
        subject_type="account",
        occurrence="renewal_date",
    )

    run_sweep(NOW, triggers=[trigger])
    run_sweep(NOW + timedelta(days=1), triggers=[trigger])
    Account.objects.filter(pk=account.pk).update(renewal_date=date(2024, 7, 25))
    run_sweep(NOW + timedelta(days=2), triggers=[trigger])

    assert keys(trigger) == ["2024-07-15", "2024-07-25"]


def test_survey_response_policy_fires_per_response():
    contact = make_contact()
    first = make_survey(contact, NOW - timedelta(hours=2), 10)
    trigger = make_trigger(
        {"kind": "survey_score", "survey": "nps", "min": 9, "max": 10, "days": 1},
        occurrence="survey_response",
    )

    run_sweep(NOW, triggers=[trigger])
    second = make_survey(contact, NOW + timedelta(hours=1), 9)
    make_survey(contact, NOW + timedelta(hours=2), 3)
    run_sweep(NOW + timedelta(hours=3), triggers=[trigger])

    assert keys(trigger) == sorted([f"response:{first.pk}", f"response:{second.pk}"])


def test_daily_policy_fires_once_a_day():
    make_contact()
    trigger = make_trigger(INACTIVE_10_DAYS, occurrence="daily")

    run_sweep(NOW, triggers=[trigger])
    run_sweep(NOW + timedelta(hours=1), triggers=[trigger])
    run_sweep(NOW + timedelta(days=1), triggers=[trigger])

    assert keys(trigger) == ["2024-06-15", "2024-06-16"]


def test_account_trigger_acts_on_champions():
    account = make_account(plan="Pro")
    champion = make_contact(account, is_champion=True)
    make_contact(account)
    make_contact(account, is_champion=True, added_at=NOW + timedelta(days=1))
    course = make_course()
    trigger = make_trigger(
        {"kind": "plan", "plans": ["Pro"]},
        subject_type="account",
        recipients="champions",
        enroll_course=course,
        email_template=make_template(),
    )

    run_sweep(NOW, triggers=[trigger])

    assert set(Enrollment.objects.values_list("contact_id", flat=True)) == {champion.pk}
    assert set(OutboxEmail.objects.values_list("contact_id", flat=True)) == {
        champion.pk
    }


def test_account_trigger_acts_on_all_contacts():
    account = make_account(plan="Pro")
    members = {make_contact(account).pk, make_contact(account, is_champion=True).pk}
    trigger = make_trigger(
        {"kind": "plan", "plans": ["Pro"]},
        subject_type="account",
        recipients="all_contacts",
        email_template=make_template(),
    )

    report = run_sweep(NOW, triggers=[trigger])

    assert report.fired == 1
    assert report.emails_queued == 2
    assert set(OutboxEmail.objects.values_list("contact_id", flat=True)) == members
    assert OutboxEmail.objects.values("firing").distinct().count() == 1


def test_actions_enroll_and_render_email():
    contact = make_contact(first_name="Ada", account=make_account(name="Acme & Co"))
    course = make_course(slug="getting-started", title="Getting started")
    template = make_template(
        subject="Welcome, {{ contact.first_name }}",
        body="{{ account.name }}: {{ course.title }} at {{ sign_in_url }}",
    )
    trigger = make_trigger(
        INACTIVE_10_DAYS, slug="welcome", enroll_course=course, email_template=template
    )

    run_sweep(NOW, triggers=[trigger])

    enrollment = Enrollment.objects.get(contact=contact)
    assert enrollment.course == course
    assert enrollment.source == "automatic"
    assert enrollment.origin == "trigger:welcome"
    assert enrollment.enrolled_at == NOW
    email = OutboxEmail.objects.get(contact=contact)
    assert email.subject == "Welcome, Ada"
    assert email.to_email == contact.email
    assert email.status == "pending"
    # Plain text: no HTML escaping of the ampersand.
    assert email.body_text.startswith("Acme & Co: Getting started at ")
    assert f"{settings.SITE_URL}/learn/sign-in/" in email.body_text
    link = SignInLink.objects.get(contact=contact)
    assert link.next_path == "/learn/courses/getting-started/"


def test_email_without_course_links_portal():
    contact = make_contact()
    trigger = make_trigger(INACTIVE_10_DAYS, email_template=make_template())

    report = run_sweep(NOW, triggers=[trigger])

    assert report.enrollments == 0
    assert OutboxEmail.objects.filter(contact=contact).count() == 1
    assert SignInLink.objects.get(contact=contact).next_path == "/learn/"


def test_failed_actions_leave_no_firing(monkeypatch):
    make_contact()
    broken = make_trigger(
        INACTIVE_10_DAYS, enroll_course=make_course(), email_template=make_template()
    )
    healthy = make_trigger(INACTIVE_10_DAYS)

    def fail(*args, **kwargs):
        raise RuntimeError("sign-in links unavailable")

    monkeypatch.setattr("triggers.actions.create_sign_in_urls", fail)
    report = run_sweep(NOW, triggers=[broken, healthy])

    assert not Firing.objects.filter(trigger=broken).exists()
    assert not Enrollment.objects.exists()
    assert not OutboxEmail.objects.exists()
    assert Firing.objects.filter(trigger=healthy).count() == 1
    assert report.failures == ((broken.slug, "sign-in links unavailable"),)
    sweep = Sweep.objects.get(pk=report.sweep_ids[0])
    assert sweep.errors == [
        {"trigger": broken.slug, "error": "sign-in links unavailable"}
    ]
    assert sweep.fired == 1


def test_invalid_stored_condition_reported():
    make_contact()
    broken = make_trigger(INACTIVE_10_DAYS)
    Trigger.objects.filter(pk=broken.pk).update(condition={"kind": "no_such_kind"})
    make_trigger(INACTIVE_10_DAYS)

    report = run_sweep(NOW)

    assert report.triggers_evaluated == 2
    assert report.fired == 1
    assert report.failures[0][0] == broken.slug
    assert "unknown condition kind 'no_such_kind'" in report.failures[0][1]


def test_emails_queued_only_after_commit(
    django_capture_on_commit_callbacks, mailoutbox
):
    make_contact()
    make_trigger(INACTIVE_10_DAYS, email_template=make_template())

    with django_capture_on_commit_callbacks() as callbacks:
        run_sweep(NOW)
        assert mailoutbox == []

    assert len(callbacks) == 1
    callbacks[0]()
    assert len(mailoutbox) == 1
    assert OutboxEmail.objects.get().status == "sent"


def test_sweep_records_counts():
    make_contact()
    make_contact()
    make_trigger(INACTIVE_10_DAYS, email_template=make_template())

    report = run_sweep(NOW)

    sweep = Sweep.objects.get(pk=report.sweep_ids[0])
    assert sweep.as_of == NOW
    assert sweep.finished_at is not None
    assert (sweep.triggers_evaluated, sweep.matched, sweep.fired) == (1, 2, 2)
    assert (sweep.enrollments, sweep.emails_queued) == (0, 2)
    assert set(Firing.objects.values_list("sweep_id", flat=True)) == {sweep.pk}


def test_inactive_triggers_skipped_by_default():
    make_contact()
    inactive = make_trigger(INACTIVE_10_DAYS, is_active=False)

    assert run_sweep(NOW).triggers_evaluated == 0
    assert run_sweep(NOW, triggers=[inactive]).fired == 1


def test_replay_fires_on_the_right_day():
    contact = make_contact()
    make_event(contact, datetime(2024, 6, 1, 10, 0, tzinfo=UTC))
    trigger = make_trigger(INACTIVE_10_DAYS, occurrence="inactivity_spell")

    report = replay(datetime(2024, 6, 5, tzinfo=UTC), datetime(2024, 6, 15, tzinfo=UTC))

    # No usage in (as_of - 10 days, as_of] first holds at 2024-06-11 10:00;
    # the first midnight sweep after that is 2024-06-12.
    assert report.sweeps == 11
    assert report.fired == 1
    firing = Firing.objects.get(trigger=trigger)
    assert firing.fired_at == datetime(2024, 6, 12, tzinfo=UTC)
    assert firing.occurrence_key == "2024-06-01"


def test_replay_rejects_end_before_start():
    with pytest.raises(ValueError, match="before its start"):
        replay(datetime(2024, 6, 5, tzinfo=UTC), datetime(2024, 6, 1, tzinfo=UTC))


def sweep_queries(contact_count, **actions):
    account = make_account()
    for _ in range(contact_count):
        make_contact(account)
    trigger = make_trigger(INACTIVE_10_DAYS, occurrence="inactivity_spell", **actions)
    with CaptureQueriesContext(connection) as queries:
        report = run_sweep(NOW, triggers=[trigger])
    assert report.fired == contact_count
    if "enroll_course" in actions:
        assert report.enrollments == contact_count
    if "email_template" in actions:
        assert report.emails_queued == contact_count
    account.delete()
    return len(queries)


def test_sweep_queries_independent_of_contacts():
    assert sweep_queries(5) == sweep_queries(50)


def test_action_queries_independent_of_firings():
    def with_actions(contact_count):
        return sweep_queries(
            contact_count, enroll_course=make_course(), email_template=make_template()
        )

    assert with_actions(5) == with_actions(50)


def test_skipped_action_queries_independent_of_firings():
    def skipped(contact_count):
        account = make_account()
        for _ in range(contact_count):
            make_contact(account)
        trigger = make_trigger(INACTIVE_10_DAYS, email_template=make_template())
        with CaptureQueriesContext(connection) as queries:
            report = run_sweep(
                NOW, triggers=[trigger], deliver_after=NOW + timedelta(days=1)
            )
        assert report.emails_skipped == contact_count
        account.delete()
        return len(queries)

    assert skipped(5) == skipped(50)


# -- delivery horizon and held emails -------------------------------------------

HORIZON = NOW + timedelta(days=7)


def test_emails_before_horizon_skipped(django_capture_on_commit_callbacks, mailoutbox):
    contacts = [make_contact(), make_contact()]
    course = make_course(slug="refresher")
    trigger = make_trigger(
        INACTIVE_10_DAYS, enroll_course=course, email_template=make_template()
    )

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = run_sweep(NOW, triggers=[trigger], deliver_after=HORIZON)

    assert callbacks == []
    assert mailoutbox == []
    assert (report.fired, report.enrollments) == (2, 2)
    assert (report.emails_queued, report.emails_skipped) == (0, 2)
    emails = OutboxEmail.objects.order_by("contact_id")
    assert [email.contact_id for email in emails] == [c.pk for c in contacts]
    for email in emails:
        assert email.status == "skipped"
        assert email.attempts == 0
        assert email.sent_at is None
        assert "older than the delivery horizon" in email.skip_reason
        assert NOW.isoformat() in email.skip_reason
        assert HORIZON.isoformat() in email.skip_reason
        # No single-use link is made for an email that is never sent.
        assert f"{settings.SITE_URL}/learn/sign-in/\n" in email.body_text
    assert not SignInLink.objects.exists()
    sweep = Sweep.objects.get(pk=report.sweep_ids[0])
    assert (sweep.emails_queued, sweep.emails_skipped) == (0, 2)


def test_skipped_email_never_sent(mailoutbox):
    make_contact()
    trigger = make_trigger(INACTIVE_10_DAYS, email_template=make_template())
    run_sweep(NOW, triggers=[trigger], deliver_after=HORIZON)
    email = OutboxEmail.objects.get()

    assert send_outbox_email(email.pk) is False
    assert due_outbox_ids() == []
    assert retry_failed_email([email.pk]) == 0
    assert send_due_email() == 0

    email.refresh_from_db()
    assert email.status == "skipped"
    assert email.attempts == 0
    assert mailoutbox == []


def test_emails_at_horizon_delivered(django_capture_on_commit_callbacks, mailoutbox):
    make_contact()
    trigger = make_trigger(INACTIVE_10_DAYS, email_template=make_template())

    with django_capture_on_commit_callbacks(execute=True):
        report = run_sweep(NOW, triggers=[trigger], deliver_after=NOW)

    assert (report.emails_queued, report.emails_skipped) == (1, 0)
    assert OutboxEmail.objects.get().status == "sent"
    assert len(mailoutbox) == 1


def test_held_emails_wait_for_send_due(django_capture_on_commit_callbacks, mailoutbox):
    contacts = [make_contact(), make_contact(), make_contact()]
    trigger = make_trigger(INACTIVE_10_DAYS, email_template=make_template())

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = run_sweep(NOW, triggers=[trigger], queue_email=False)

    assert callbacks == []
    assert mailoutbox == []
    assert report.emails_queued == 3
    assert set(OutboxEmail.objects.values_list("status", flat=True)) == {"pending"}
    assert SignInLink.objects.count() == 3

    assert send_due_email() == 3
    assert sorted(message.to[0] for message in mailoutbox) == sorted(
        contact.email for contact in contacts
    )
    assert set(OutboxEmail.objects.values_list("status", flat=True)) == {"sent"}


def test_replay_skips_emails_before_horizon(
    django_capture_on_commit_callbacks, mailoutbox
):
    early = make_contact()
    make_event(early, datetime(2024, 6, 1, 10, 0, tzinfo=UTC))
    late = make_contact()
    make_event(late, datetime(2024, 6, 1, 10, 0, tzinfo=UTC))
    make_event(late, datetime(2024, 6, 8, 10, 0, tzinfo=UTC))
    make_trigger(
        INACTIVE_10_DAYS,
        occurrence="inactivity_spell",
        email_template=make_template(),
    )

    with django_capture_on_commit_callbacks(execute=True):
        report = replay(
            datetime(2024, 6, 5, tzinfo=UTC),
            datetime(2024, 6, 25, tzinfo=UTC),
            deliver_after=datetime(2024, 6, 15, tzinfo=UTC),
        )

    # The first sweep with no usage in the 10 days before it is 2024-06-12
    # for the early contact, before the horizon, and 2024-06-19 for the late
    # one, after it.
    assert (report.emails_skipped, report.emails_queued) == (1, 1)
    assert OutboxEmail.objects.get(contact=early).status == "skipped"
    assert OutboxEmail.objects.get(contact=late).status == "sent"
    assert [message.to for message in mailoutbox] == [[late.email]]


def test_naive_deliver_after_rejected():
    with pytest.raises(ValueError, match=r"deliver_after .* has no time zone"):
        run_sweep(NOW, deliver_after=datetime(2024, 6, 15))  # noqa: DTZ001


def test_account_scope_limits_subjects():
    # Both accounts have a silent contact; a sweep scoped to one account
    # fires for that account's contact alone, for contact and account triggers.
    scoped = make_contact()
    other = make_contact()
    contact_trigger = make_trigger(INACTIVE_10_DAYS)
    account_trigger = make_trigger(INACTIVE_10_DAYS, subject_type="account")

    run_sweep(
        NOW,
        triggers=[contact_trigger, account_trigger],
        account_ids=[scoped.account_id],
    )

    contact_firings = Firing.objects.filter(trigger=contact_trigger)
    account_firings = Firing.objects.filter(trigger=account_trigger)
    assert set(contact_firings.values_list("contact_id", flat=True)) == {scoped.pk}
    assert set(account_firings.values_list("account_id", flat=True)) == {
        scoped.account_id
    }
    assert other.account_id != scoped.account_id


def test_once_trigger_fetches_only_new_subjects():
    # Three contacts fire at the first sweep and a fourth is created after
    # it. The second sweep counts all four as matched but fetches the fourth only.
    fired_first = [make_contact() for _ in range(3)]
    trigger = make_trigger(INACTIVE_10_DAYS)
    run_sweep(NOW, triggers=[trigger])
    newcomer = make_contact()
    later = NOW + timedelta(days=1)
    context = EvaluationContext("contact", later)

    matched, new = new_matching_subjects(trigger, context)
    with CaptureQueriesContext(connection) as queries:
        new_matching_subjects(trigger, context)
    report = run_sweep(later, triggers=[trigger])

    assert len(queries) == 1
    assert (matched, new) == (4, [(newcomer.pk, newcomer.account_id, "once")])
    assert (report.matched, report.fired) == (4, 1)
    fired = set(
        Firing.objects.filter(trigger=trigger).values_list("contact_id", flat=True)
    )
    assert fired == {contact.pk for contact in [*fired_first, newcomer]}


def test_daily_trigger_counts_matches_when_none_is_new():
    contacts = [make_contact() for _ in range(2)]
    trigger = make_trigger(INACTIVE_10_DAYS, occurrence="daily")
    run_sweep(NOW, triggers=[trigger])

    matched, new = new_matching_subjects(
        trigger, EvaluationContext("contact", NOW + timedelta(hours=1))
    )
    next_day = run_sweep(NOW + timedelta(days=1), triggers=[trigger])

    assert (matched, new) == (len(contacts), [])
    assert (next_day.matched, next_day.fired) == (len(contacts), len(contacts))


def test_account_once_trigger_fetches_only_new_subjects():
    make_account()
    trigger = make_trigger({"kind": "plan", "plans": ["Basic"]}, subject_type="account")
    run_sweep(NOW, triggers=[trigger])
    second = make_account()

    matched, new = new_matching_subjects(trigger, EvaluationContext("account", NOW))

    assert (matched, new) == (2, [(None, second.pk, "once")])
