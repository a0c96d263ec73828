"""Scheduled reports: the period, one email per period, retries and the schedule."""

import importlib
import smtplib
import threading
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest
from django.apps import apps
from django.core import mail
from django.core.exceptions import ValidationError
from django.db import connection
from django.urls import reverse
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from courses.models import EnrollmentSource, EnrollmentStatus
from lifecycle.models import Stage
from metrics import reports
from metrics.changes import outcome_changes
from metrics.exports import (
    CHANGES_HEADER,
    IMPACT_HEADER,
    change_rows,
    csv_text,
    impact_rows,
)
from metrics.impact import impact_report
from metrics.models import (
    DeliveryStatus,
    ImpactSettings,
    ReportDelivery,
    ReportFrequency,
    ReportSchedule,
)
from metrics.scope import Scope
from metrics.stats import Verdict
from metrics.tasks import send_scheduled_reports
from tests.factories import make_contact
from tests.metrics.builders import make_course, make_enrollment
from tests.metrics.test_changes import draw_usage, save_usage

# A Wednesday: the last full week is 2024-06-03 to 2024-06-09 and the last
# full month is May 2024.
NOW = datetime(2024, 6, 12, 7, 30, tzinfo=UTC)


@pytest.mark.parametrize(
    ("frequency", "today", "start", "end"),
    [
        (ReportFrequency.WEEKLY, "2024-06-12", "2024-06-03", "2024-06-09"),
        (ReportFrequency.WEEKLY, "2024-06-10", "2024-06-03", "2024-06-09"),
        (ReportFrequency.WEEKLY, "2024-06-09", "2024-05-27", "2024-06-02"),
        (ReportFrequency.MONTHLY, "2024-03-01", "2024-02-01", "2024-02-29"),
        (ReportFrequency.MONTHLY, "2024-01-15", "2023-12-01", "2023-12-31"),
    ],
)
def test_last_full_period(frequency, today, start, end):
    period = reports.last_full_period(frequency, date.fromisoformat(today))

    assert period == (date.fromisoformat(start), date.fromisoformat(end))


def test_unknown_frequency_rejected():
    with pytest.raises(ValueError, match="report frequency 'daily' is invalid"):
        reports.last_full_period("daily", date(2024, 6, 12))


def make_schedule(**fields) -> ReportSchedule:
    defaults = {
        "name": "Weekly learning report",
        "frequency": ReportFrequency.WEEKLY,
        "recipients": "lead@example.com,\ncsm@example.com",
    }
    defaults.update(fields)
    return ReportSchedule.objects.create(**defaults)


def plant_automated_enrollments():
    """Enroll three learners by trigger in the week reported, one completed."""
    course = make_course((1, 1))
    for day, completed in ((3, True), (5, False), (9, False)):
        enrolled_at = datetime(2024, 6, day, 10, tzinfo=UTC)
        make_enrollment(
            make_contact(),
            course,
            EnrollmentStatus.COMPLETED if completed else EnrollmentStatus.ACTIVE,
            completed_at=enrolled_at + timedelta(hours=3) if completed else None,
            source=EnrollmentSource.AUTOMATIC,
            enrolled_at=enrolled_at,
        )
    # Outside the week: must not count.
    make_enrollment(
        make_contact(),
        course,
        source=EnrollmentSource.AUTOMATIC,
        enrolled_at=datetime(2024, 6, 10, 0, 0, tzinfo=UTC),
    )
    return course


def run_periodic_task(django_capture_on_commit_callbacks, monkeypatch, now=NOW):
    monkeypatch.setattr(timezone, "now", lambda: now)
    with django_capture_on_commit_callbacks(execute=True):
        return send_scheduled_reports()


@pytest.mark.django_db
def test_two_runs_send_one_email(
    django_capture_on_commit_callbacks, monkeypatch, mailoutbox
):
    schedule = make_schedule()

    run_periodic_task(django_capture_on_commit_callbacks, monkeypatch)
    run_periodic_task(django_capture_on_commit_callbacks, monkeypatch)

    delivery = ReportDelivery.objects.get()
    assert len(mailoutbox) == 1
    assert delivery.schedule == schedule
    assert delivery.period_start == date(2024, 6, 3)
    assert delivery.period_end == date(2024, 6, 9)
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.attempts == 1


@pytest.mark.django_db
def test_next_period_sends_again(
    django_capture_on_commit_callbacks, monkeypatch, mailoutbox
):
    make_schedule()

    run_periodic_task(django_capture_on_commit_callbacks, monkeypatch)
    run_periodic_task(
        django_capture_on_commit_callbacks, monkeypatch, NOW + timedelta(days=7)
    )

    starts = list(
        ReportDelivery.objects.order_by("period_start").values_list(
            "period_start", flat=True
        )
    )
    assert starts == [date(2024, 6, 3), date(2024, 6, 10)]
    assert len(mailoutbox) == 2


@pytest.mark.django_db
def test_email_has_figures_and_csv(
    django_capture_on_commit_callbacks, monkeypatch, mailoutbox
):
    settings = ImpactSettings.load()
    settings.minutes_per_manual_session = 40
    settings.save()
    course = plant_automated_enrollments()
    make_schedule(include_outcomes=True)
    week = Scope(start=date(2024, 6, 3), end=date(2024, 6, 9))
    expected_impact = csv_text(IMPACT_HEADER, impact_rows(impact_report(week)))

    run_periodic_task(django_capture_on_commit_callbacks, monkeypatch)

    (message,) = mailoutbox
    attachments = {name: content for name, content, _ in message.attachments}
    # Three automated enrollments and one completion in the week, 40 minutes each.
    hours = 40 * (3 + 1) / 60
    assert message.subject == (
        "Nudgepath report: Weekly learning report, 2024-06-03 to 2024-06-09"
    )
    assert message.to == ["lead@example.com", "csm@example.com"]
    assert set(attachments) == {
        "engagement.csv",
        "scores.csv",
        "impact.csv",
        "outcomes.csv",
    }
    assert attachments["impact.csv"] == expected_impact
    assert f"CSM hours saved: {hours:.1f}" in message.body
    assert course.title in message.body
    assert "Enrolled 3, completed 1" in message.body
    assert "TRAINED AND UNTRAINED ACCOUNTS (as of 2024-06-09" in message.body


@pytest.mark.django_db
def test_sections_left_out(django_capture_on_commit_callbacks, monkeypatch, mailoutbox):
    make_schedule(include_engagement=False, include_impact=True)

    run_periodic_task(django_capture_on_commit_callbacks, monkeypatch)

    (message,) = mailoutbox
    assert [name for name, _, _ in message.attachments] == ["impact.csv"]
    assert "LEARNING ENGAGEMENT" not in message.body
    assert "INTERNAL IMPACT" in message.body


@pytest.mark.django_db
def test_inactive_schedule_sends_nothing(
    django_capture_on_commit_callbacks, monkeypatch, mailoutbox
):
    make_schedule(is_active=False)

    queued = run_periodic_task(django_capture_on_commit_callbacks, monkeypatch)

    assert queued == 0
    assert not ReportDelivery.objects.exists()
    assert mailoutbox == []


def make_delivery(**fields) -> ReportDelivery:
    defaults = {
        "schedule": make_schedule(),
        "period_start": date(2024, 6, 3),
        "period_end": date(2024, 6, 9),
    }
    defaults.update(fields)
    return ReportDelivery.objects.create(**defaults)


@pytest.mark.django_db
def test_send_twice_sends_once(mailoutbox):
    delivery = make_delivery()

    first = reports.send_delivery(delivery.pk)
    second = reports.send_delivery(delivery.pk)

    assert first is True
    assert second is False
    assert len(mailoutbox) == 1


def fail_sending(*args, **kwargs):
    raise smtplib.SMTPServerDisconnected("connection unexpectedly closed")


@pytest.mark.django_db
def test_mail_error_retried_then_failed(monkeypatch, mailoutbox):
    delivery = make_delivery()
    monkeypatch.setattr(mail.EmailMessage, "send", fail_sending)

    for attempt in range(1, reports.MAX_ATTEMPTS + 1):
        assert reports.send_delivery(delivery.pk) is False
        delivery.refresh_from_db()
        assert delivery.attempts == attempt
        assert "connection unexpectedly closed" in delivery.last_error

    assert delivery.status == DeliveryStatus.FAILED
    assert reports.send_delivery(delivery.pk) is False
    assert mailoutbox == []


@pytest.mark.django_db
def test_failed_send_retried_by_next_run(
    django_capture_on_commit_callbacks, monkeypatch, mailoutbox
):
    make_schedule()
    with monkeypatch.context() as failing:
        failing.setattr(mail.EmailMessage, "send", fail_sending)
        run_periodic_task(django_capture_on_commit_callbacks, failing)

    run_periodic_task(django_capture_on_commit_callbacks, monkeypatch)

    delivery = ReportDelivery.objects.get()
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.attempts == 2
    assert len(mailoutbox) == 1


@pytest.mark.django_db
def test_stuck_delivery_released_and_sent(mailoutbox):
    stuck = make_delivery(
        status=DeliveryStatus.SENDING,
        claimed_at=timezone.now() - reports.STUCK_AFTER - timedelta(minutes=1),
    )
    recent = make_delivery(
        schedule=stuck.schedule,
        period_start=date(2024, 6, 10),
        period_end=date(2024, 6, 16),
        status=DeliveryStatus.SENDING,
        claimed_at=timezone.now(),
    )

    released = reports.release_stuck_deliveries()

    assert released == 1
    assert reports.pending_delivery_ids(exclude=[]) == [stuck.pk]
    assert reports.send_delivery(stuck.pk) is True
    assert reports.send_delivery(recent.pk) is False
    assert len(mailoutbox) == 1


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_sends_send_once(mailoutbox):
    delivery = make_delivery()
    barrier = threading.Barrier(2)
    results = []

    def send():
        try:
            barrier.wait(timeout=10)
            results.append(reports.send_delivery(delivery.pk))
        finally:
            connection.close()

    threads = [threading.Thread(target=send) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    assert sorted(results) == [False, True]
    assert len(mailoutbox) == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("recipients", "message"),
    [
        ("", "This field cannot be blank"),
        (" , ;\n", "Enter at least one email address"),
        ("lead@example.com, not-an-address", "Invalid email address: not-an-address"),
    ],
)
def test_recipients_validated(recipients, message):
    schedule = ReportSchedule(name="Bad", recipients=recipients)

    with pytest.raises(ValidationError, match=message):
        schedule.full_clean()


@pytest.mark.django_db
def test_report_needs_a_section():
    schedule = ReportSchedule(
        name="Empty",
        recipients="lead@example.com",
        include_engagement=False,
        include_impact=False,
        include_outcomes=False,
    )

    with pytest.raises(ValidationError, match="at least one section"):
        schedule.full_clean()


@pytest.mark.django_db
def test_periodic_task_seeded_once():
    migration = importlib.import_module("metrics.migrations.0003_report_schedule_task")
    PeriodicTask.objects.filter(name=migration.TASK_NAME).delete()

    migration.create_schedule(apps, schema_editor=None)
    migration.create_schedule(apps, schema_editor=None)

    task = PeriodicTask.objects.get(name=migration.TASK_NAME)
    assert task.task == "metrics.tasks.send_scheduled_reports"
    assert task.interval is not None
    assert task.interval.every == 3600
    assert task.interval.period == "seconds"


@pytest.mark.django_db
def test_admin_creates_schedule(admin_client):
    adoption = Stage.objects.get(slug="adoption")

    form = admin_client.get(reverse("admin:metrics_reportschedule_add"))
    response = admin_client.post(
        reverse("admin:metrics_reportschedule_add"),
        {
            "name": "Monthly for the CS leads",
            "frequency": ReportFrequency.MONTHLY,
            "recipients": "lead@example.com; second@example.com",
            "is_active": "on",
            "include_impact": "on",
            "plan": "Pro",
            "stage": adoption.pk,
            "deliveries-TOTAL_FORMS": "0",
            "deliveries-INITIAL_FORMS": "0",
        },
    )

    schedule = ReportSchedule.objects.get()
    assert form.status_code == 200
    assert response.status_code == 302
    assert schedule.recipient_list == ["lead@example.com", "second@example.com"]
    assert schedule.include_impact
    assert not schedule.include_engagement
    assert schedule.stage == adoption


@pytest.mark.django_db
def test_admin_rejects_bad_recipient(admin_client):
    response = admin_client.post(
        reverse("admin:metrics_reportschedule_add"),
        {
            "name": "Bad",
            "frequency": ReportFrequency.WEEKLY,
            "recipients": "lead@example",
            "include_impact": "on",
            "deliveries-TOTAL_FORMS": "0",
            "deliveries-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 200
    assert "Invalid email address: lead@example" in response.content.decode()
    assert not ReportSchedule.objects.exists()


@pytest.mark.django_db
def test_delivery_list_readable(admin_client):
    make_delivery(status=DeliveryStatus.FAILED, last_error="connection refused")

    response = admin_client.get(reverse("admin:metrics_reportdelivery_changelist"))

    assert response.status_code == 200
    assert "Weekly learning report" in response.content.decode()


@pytest.mark.django_db
def test_email_has_changes_around_training(
    django_capture_on_commit_callbacks, monkeypatch, mailoutbox
):
    # Training days fall in March and April 2024, so every 30-day window
    # after training ended before the reported week, 2024-06-03 to 06-09.
    course = make_course((1,))
    planted = draw_usage(np.random.default_rng(11), 40, 40, effect=2.0)
    save_usage(planted, course)
    make_schedule(include_engagement=False, include_impact=False, include_changes=True)
    expected = outcome_changes(as_of=date(2024, 6, 9))

    run_periodic_task(django_capture_on_commit_callbacks, monkeypatch)

    (message,) = mailoutbox
    attachments = {name: content for name, content, _ in message.attachments}
    assert set(attachments) == {"changes.csv"}
    assert attachments["changes.csv"] == csv_text(CHANGES_HEADER, change_rows(expected))
    assert expected.contacts.trained_count == 40
    assert expected.usage.verdict == Verdict.SIGNIFICANT
    assert "CHANGES AROUND TRAINING (as of 2024-06-09" in message.body
    usage_line = next(
        line for line in message.body.splitlines() if "Product usage" in line
    )
    assert "Difference at the 5% level" in usage_line
    assert "Expansion (upgrade or more seats)" in message.body


@pytest.mark.django_db
def test_schedule_with_changes_only_is_valid():
    schedule = make_schedule(
        include_engagement=False,
        include_impact=False,
        include_outcomes=False,
        include_changes=True,
    )

    schedule.full_clean()
