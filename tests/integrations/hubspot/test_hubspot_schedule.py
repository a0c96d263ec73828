"""Scheduled syncs through beat, and the release of runs whose worker stopped."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from customers.models import Account
from integrations.hubspot.models import SyncKind, SyncRun, SyncStatus
from integrations.hubspot.services import (
    release_lost_runs,
    release_stuck_runs,
    start_scheduled_syncs,
)
from integrations.hubspot.sync import (
    RunReleased,
    _save_progress,
    claim_run,
    create_run,
    execute_run,
)
from integrations.hubspot.tasks import release_stuck_runs as release_task
from tests.integrations.hubspot.conftest import at

pytestmark = pytest.mark.django_db

schedule_migration = importlib.import_module(
    "integrations.migrations.0007_hubspot_schedule"
)
retry_migration = importlib.import_module(
    "integrations.migrations.0010_hubspot_webhook_retries"
)
learning_migration = importlib.import_module(
    "integrations.migrations.0013_hubspot_learning_push"
)


def test_beat_schedule_has_the_hubspot_tasks():
    # A committing test elsewhere may have flushed the table that the
    # migration filled; creating the missing entries again is what it does.
    for migration in (schedule_migration, retry_migration, learning_migration):
        migration.create_schedule(apps, schema_editor=None)
        migration.create_schedule(apps, schema_editor=None)

    assert PeriodicTask.objects.filter(name__startswith="hubspot-").count() == 5
    tasks = dict(
        PeriodicTask.objects.filter(name__startswith="hubspot-").values_list(
            "name", "task"
        )
    )

    assert tasks == {
        "hubspot-sync": "integrations.hubspot.tasks.sync_all_connections",
        "hubspot-write-back": "integrations.hubspot.tasks.push_crm_write_backs",
        "hubspot-release-stuck-runs": "integrations.hubspot.tasks.release_stuck_runs",
        "hubspot-retry-webhook-events": (
            "integrations.hubspot.tasks.retry_webhook_events"
        ),
        "hubspot-learning-push": "integrations.hubspot.tasks.push_learning_properties",
    }
    assert PeriodicTask.objects.get(name="hubspot-sync").interval.every == 15 * 60


def test_scheduled_sync_skips_a_busy_connection(
    connection, fake_hubspot, django_capture_on_commit_callbacks
):
    fake_hubspot.put("companies", "1", at(1), name="Acme")
    busy = create_run(connection, "company", SyncKind.INCREMENTAL)

    assert start_scheduled_syncs() == []

    busy.status = SyncStatus.SUCCEEDED
    busy.save(update_fields=["status"])
    with django_capture_on_commit_callbacks(execute=True):
        runs = start_scheduled_syncs()
    # Celery runs eagerly in these tests, so the queued runs have finished.
    assert [run.object_type for run in runs] == ["company", "contact"]
    assert Account.objects.filter(external_id="1").exists()


def stalled_run(connection, fake_hubspot, minutes_ago):
    """Return a run that a worker claimed and saved one page of, then left."""
    for number in range(1, 6):
        fake_hubspot.put("companies", str(number), at(number), name=f"C{number}")
    run = claim_run(create_run(connection, "company", SyncKind.FULL).pk)
    assert run is not None
    run.fetched = 2
    _save_progress(run, {"after": "2", "in_window": 2, "max_modified": 1})
    SyncRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    run.refresh_from_db()
    return run


def test_stuck_run_is_released_and_resumed(
    connection, fake_hubspot, settings, django_capture_on_commit_callbacks
):
    settings.NUDGEPATH_HUBSPOT_STUCK_RUN_MINUTES = 10
    settings.NUDGEPATH_HUBSPOT_PAGE_SIZE = 2
    stuck = stalled_run(connection, fake_hubspot, minutes_ago=11)

    with django_capture_on_commit_callbacks(execute=True):
        resumed = release_stuck_runs()

    stuck.refresh_from_db()
    assert stuck.status == SyncStatus.FAILED
    assert "no progress since" in stuck.last_error
    assert len(resumed) == 1
    again = SyncRun.objects.get(pk=resumed[0].pk)
    assert again.resumed_from == stuck
    assert again.status == SyncStatus.SUCCEEDED, again.last_error
    # The resumed run starts on the page after the saved cursor.
    assert fake_hubspot.searches("companies")[0].get("after") == "2"
    assert again.fetched == 3
    assert Account.objects.filter(external_id__in=["3", "4", "5"]).count() == 3


def test_run_with_recent_progress_stays(connection, fake_hubspot, settings):
    settings.NUDGEPATH_HUBSPOT_STUCK_RUN_MINUTES = 10
    running = stalled_run(connection, fake_hubspot, minutes_ago=9)

    assert release_stuck_runs() == []

    running.refresh_from_db()
    assert running.status == SyncStatus.RUNNING


def test_released_worker_stops_at_its_next_save(connection, fake_hubspot, settings):
    settings.NUDGEPATH_HUBSPOT_STUCK_RUN_MINUTES = 10
    stale = stalled_run(connection, fake_hubspot, minutes_ago=30)
    release_stuck_runs()

    with pytest.raises(RunReleased):
        _save_progress(stale, {"after": "4"})

    stale.refresh_from_db()
    assert stale.status == SyncStatus.FAILED
    assert stale.cursor["after"] == "2"


def test_released_run_keeps_the_releasers_error(connection, fake_hubspot, settings):
    settings.NUDGEPATH_HUBSPOT_STUCK_RUN_MINUTES = 10
    stale = stalled_run(connection, fake_hubspot, minutes_ago=30)
    release_stuck_runs()
    error = SyncRun.objects.get(pk=stale.pk).last_error

    # The old worker carries on from its stale row and stops at its first save.
    stale.status = SyncStatus.RUNNING
    finished = execute_run(stale)

    assert finished.pk == stale.pk
    assert SyncRun.objects.get(pk=stale.pk).last_error == error


def queued_runs(connection, minutes_ago):
    """Return a company and a contact run queued minutes_ago whose task was lost."""
    runs = [
        create_run(connection, kind, SyncKind.INCREMENTAL)
        for kind in ("company", "contact")
    ]
    SyncRun.objects.filter(pk__in=[run.pk for run in runs]).update(
        created_at=timezone.now() - timedelta(minutes=minutes_ago)
    )
    return runs


def test_lost_queued_runs_are_queued_again(
    connection, fake_hubspot, settings, django_capture_on_commit_callbacks
):
    settings.NUDGEPATH_HUBSPOT_QUEUED_RUN_MINUTES = 30
    fake_hubspot.put("companies", "1", at(1), name="Acme")
    fake_hubspot.put(
        "contacts", "501", at(2), email="ada@acme.example", associatedcompanyid="1"
    )
    lost = queued_runs(connection, minutes_ago=31)

    with django_capture_on_commit_callbacks(execute=True):
        release_task()

    for run in lost:
        run.refresh_from_db()
        assert run.status == SyncStatus.FAILED
        assert "never started" in run.last_error
    again = list(SyncRun.objects.filter(resumed_from__in=lost).order_by("pk"))
    assert [run.object_type for run in again] == ["company", "contact"]
    # Celery runs eagerly here: the company ran first, so the contact found it.
    assert [run.status for run in again] == [SyncStatus.SUCCEEDED] * 2
    assert Account.objects.get(external_id="1").contacts.count() == 1


def test_recently_queued_run_stays(connection, fake_hubspot, settings):
    settings.NUDGEPATH_HUBSPOT_QUEUED_RUN_MINUTES = 30
    runs = queued_runs(connection, minutes_ago=29)

    assert release_lost_runs() == []

    assert {
        run.status for run in SyncRun.objects.filter(pk__in=[r.pk for r in runs])
    } == {SyncStatus.QUEUED}


def test_queued_run_behind_a_running_one_stays(connection, fake_hubspot, settings):
    settings.NUDGEPATH_HUBSPOT_QUEUED_RUN_MINUTES = 30
    company, contact = queued_runs(connection, minutes_ago=60)
    # The task that runs both in order has reached the company run.
    assert claim_run(company.pk) is not None

    assert release_lost_runs() == []

    contact.refresh_from_db()
    assert contact.status == SyncStatus.QUEUED


def test_released_lost_run_unblocks_the_schedule(
    connection, fake_hubspot, settings, django_capture_on_commit_callbacks
):
    settings.NUDGEPATH_HUBSPOT_QUEUED_RUN_MINUTES = 30
    queued_runs(connection, minutes_ago=45)
    assert start_scheduled_syncs() == []

    with django_capture_on_commit_callbacks(execute=True):
        release_lost_runs()

    with django_capture_on_commit_callbacks(execute=True):
        runs = start_scheduled_syncs()
    assert [run.object_type for run in runs] == ["company", "contact"]


def test_run_claimed_meanwhile_is_not_released(connection, fake_hubspot):
    from integrations.hubspot.sync import release_queued_run

    (run, _) = queued_runs(connection, minutes_ago=60)
    stale = SyncRun.objects.get(pk=run.pk)
    claim_run(run.pk)

    assert release_queued_run(stale) is False
    assert SyncRun.objects.get(pk=run.pk).status == SyncStatus.RUNNING
