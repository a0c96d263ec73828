"""The periodic schedule in the database, and the sweep's fan-out per trigger."""

import importlib
from datetime import timedelta

import pytest
from celery.exceptions import Retry
from django.apps import apps
from django.conf import settings
from django.utils import timezone
from django_celery_beat.models import IntervalSchedule, PeriodicTask

from tests.factories import NOW, make_contact
from tests.triggers.factories import make_template, make_trigger
from triggers import scheduling, tasks
from triggers.models import Firing, OutboxEmail, Sweep, Trigger

schedule_migration = importlib.import_module(
    "triggers.migrations.0004_periodic_schedule"
)

EXPECTED_TASKS = {
    "lifecycle-refresh": "lifecycle.tasks.refresh_lifecycle",
    "trigger-sweep": "triggers.tasks.run_sweep",
    "send-pending-email": "triggers.tasks.send_pending_email",
}


def fresh_schedule():
    PeriodicTask.objects.filter(name__in=EXPECTED_TASKS).delete()
    schedule_migration.create_schedule(apps, schema_editor=None)


def test_beat_reads_schedule_from_database():
    assert settings.CELERY_BEAT_SCHEDULER == (
        "django_celery_beat.schedulers:DatabaseScheduler"
    )
    # A schedule in the settings would be copied over the stored one each
    # time beat starts, undoing edits made in the admin.
    assert not getattr(settings, "CELERY_BEAT_SCHEDULE", None)


@pytest.mark.django_db
def test_schedule_entries_created():
    fresh_schedule()

    stored = {
        task.name: task for task in PeriodicTask.objects.filter(name__in=EXPECTED_TASKS)
    }
    assert {name: task.task for name, task in stored.items()} == EXPECTED_TASKS
    for name, entry in settings.NUDGEPATH_PERIODIC_TASKS.items():
        assert stored[name].interval.every == entry["seconds"]
        assert stored[name].interval.period == IntervalSchedule.SECONDS
        assert stored[name].enabled


@pytest.mark.django_db
def test_schedule_sweep_interval_default_is_15_minutes():
    fresh_schedule()

    sweep = PeriodicTask.objects.get(name="trigger-sweep")
    refresh = PeriodicTask.objects.get(name="lifecycle-refresh")
    send = PeriodicTask.objects.get(name="send-pending-email")

    # The defaults apply unless NUDGEPATH_SWEEP_SECONDS and
    # NUDGEPATH_LIFECYCLE_SECONDS are set.
    assert (
        sweep.interval.every
        == settings.NUDGEPATH_PERIODIC_TASKS["trigger-sweep"]["seconds"]
    )
    assert send.interval.every == 60
    assert refresh.interval.every >= 60


@pytest.mark.django_db
def test_schedule_creation_is_idempotent():
    fresh_schedule()
    schedule_migration.create_schedule(apps, schema_editor=None)

    assert PeriodicTask.objects.filter(name__in=EXPECTED_TASKS).count() == 3


@pytest.mark.django_db
def test_schedule_keeps_edited_interval():
    fresh_schedule()
    sweep = PeriodicTask.objects.get(name="trigger-sweep")
    sweep.interval = IntervalSchedule.objects.create(every=300, period="seconds")
    sweep.save()

    schedule_migration.create_schedule(apps, schema_editor=None)

    sweep.refresh_from_db()
    assert sweep.interval.every == 300


@pytest.mark.django_db
def test_schedule_reverse_deletes_entries():
    fresh_schedule()
    other = PeriodicTask.objects.create(
        name="operator-job",
        task="triggers.tasks.send_pending_email",
        interval=IntervalSchedule.objects.create(every=120, period="seconds"),
    )

    schedule_migration.delete_schedule(apps, schema_editor=None)

    assert not PeriodicTask.objects.filter(name__in=EXPECTED_TASKS).exists()
    assert PeriodicTask.objects.filter(pk=other.pk).exists()


@pytest.mark.django_db
def test_admin_lists_periodic_tasks(admin_client):
    fresh_schedule()

    response = admin_client.get("/admin/django_celery_beat/periodictask/")

    assert response.status_code == 200
    assert b"trigger-sweep" in response.content


@pytest.mark.django_db
def test_sweep_fans_out_one_task_per_active_trigger():
    make_contact()
    first = make_trigger({"kind": "inactivity", "days": 10})
    second = make_trigger({"kind": "contact_count", "op": ">=", "value": 1})
    make_trigger({"kind": "inactivity", "days": 10}, is_active=False)

    queued = tasks.run_sweep.delay(NOW.isoformat()).get()

    assert queued == 2
    sweeps = Sweep.objects.order_by("pk")
    assert [sweep.as_of for sweep in sweeps] == [NOW, NOW]
    assert [sweep.triggers_evaluated for sweep in sweeps] == [1, 1]
    assert set(Firing.objects.values_list("trigger_id", flat=True)) == {
        first.pk,
        second.pk,
    }


@pytest.mark.django_db
def test_sweep_twice_same_instant_fires_once():
    make_contact()
    trigger = make_trigger(
        {"kind": "inactivity", "days": 10}, email_template=make_template()
    )

    tasks.run_sweep.delay(NOW.isoformat())
    tasks.run_sweep.delay(NOW.isoformat())

    assert Firing.objects.filter(trigger=trigger).count() == 1
    assert OutboxEmail.objects.count() == 1


@pytest.mark.django_db
def test_failing_trigger_does_not_stop_others(caplog):
    make_contact()
    broken = make_trigger({"kind": "inactivity", "days": 10})
    # A condition stored before validation existed, which fails every time.
    Trigger.objects.filter(pk=broken.pk).update(condition={"kind": "no_such_kind"})
    healthy = make_trigger({"kind": "inactivity", "days": 10})

    tasks.run_sweep.delay(NOW.isoformat())

    # Eager tasks do not retry; a worker would (see the next test).
    assert Sweep.objects.filter(errors__0__trigger=broken.slug).count() == 1
    assert Firing.objects.filter(trigger=healthy).count() == 1
    assert "giving up" in caplog.text


@pytest.mark.django_db
def test_failing_trigger_retried_alone(monkeypatch):
    make_contact()
    broken = make_trigger({"kind": "inactivity", "days": 10})
    Trigger.objects.filter(pk=broken.pk).update(condition={"kind": "no_such_kind"})
    healthy = make_trigger({"kind": "inactivity", "days": 10})
    retries = []

    def record_retry(**options):
        retries.append(options)
        return Retry("retry requested", when=options["countdown"])

    monkeypatch.setattr(tasks.evaluate_triggers, "retry", record_retry)

    # Called directly, the task runs as a worker runs it, not eagerly.
    with pytest.raises(Retry):
        tasks.evaluate_triggers([broken.pk, healthy.pk], NOW.isoformat())

    assert retries == [{"args": ([broken.pk], NOW.isoformat(), None), "countdown": 10}]
    assert Firing.objects.filter(trigger=healthy).count() == 1


@pytest.mark.django_db
def test_deactivated_trigger_skipped_by_queued_task():
    make_contact()
    trigger = make_trigger({"kind": "inactivity", "days": 10}, is_active=False)

    result = tasks.evaluate_triggers.delay([trigger.pk], NOW.isoformat()).get()

    assert result["fired"] == 0
    assert not Sweep.objects.exists()


def test_retry_countdown_doubles_to_five_minutes():
    assert [scheduling.retry_countdown(n) for n in range(7)] == [
        10,
        20,
        40,
        80,
        160,
        300,
        300,
    ]


def test_parse_instant_rejects_naive():
    with pytest.raises(ValueError, match="has no time zone"):
        scheduling.parse_instant("2024-06-15T12:00:00")


@pytest.mark.django_db
def test_scheduled_sweep_prunes_old_quiet_sweeps(settings):
    settings.NUDGEPATH_SWEEP_RETENTION_DAYS = 30
    now = timezone.now()
    old_quiet = Sweep.objects.create(as_of=now, started_at=now - timedelta(days=31))
    old_fired = Sweep.objects.create(
        as_of=now, started_at=now - timedelta(days=31), fired=1
    )
    old_failed = Sweep.objects.create(
        as_of=now,
        started_at=now - timedelta(days=31),
        errors=[{"trigger": "broken", "error": "boom"}],
    )
    recent_quiet = Sweep.objects.create(as_of=now, started_at=now - timedelta(days=29))

    tasks.run_sweep.delay().get()

    remaining = set(Sweep.objects.values_list("pk", flat=True))
    assert old_quiet.pk not in remaining
    assert {old_fired.pk, old_failed.pk, recent_quiet.pk} <= remaining
