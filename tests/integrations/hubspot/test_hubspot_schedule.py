"""Scheduled syncs through beat, and the release of runs whose worker stopped."""

import importlib
from datetime import timedelta

import pytest
from django.apps import apps
from django.utils import timezone
from django_celery_beat.models import PeriodicTask

from customers.models import Account
from integrations.hubspot.models import SyncKind, SyncRun, SyncStatus
from integrations.hubspot.services import release_stuck_runs, start_scheduled_syncs
from integrations.hubspot.sync import (
    RunReleased,
    _save_progress,
    claim_run,
    create_run,
    execute_run,
)
from tests.integrations.hubspot.conftest import at

pytestmark = pytest.mark.django_db

schedule_migration = importlib.import_module(
    "integrations.migrations.0007_hubspot_schedule"
)


def test_beat_schedule_has_the_hubspot_tasks():
    # A committing test elsewhere may have flushed the table that the
    # migration filled; creating the missing entries again is what it does.
    schedule_migration.create_schedule(apps, schema_editor=None)
    schedule_migration.create_schedule(apps, schema_editor=None)

    assert PeriodicTask.objects.filter(name__startswith="hubspot-").count() == 3
    tasks = dict(
        PeriodicTask.objects.filter(name__startswith="hubspot-").values_list(
            "name", "task"
        )
    )

    assert tasks == {
        "hubspot-sync": "integrations.hubspot.tasks.sync_all_connections",
        "hubspot-write-back": "integrations.hubspot.tasks.push_crm_write_backs",
        "hubspot-release-stuck-runs": "integrations.hubspot.tasks.release_stuck_runs",
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
