"""A sync run whose Celery worker is killed is released and resumed by another."""

import time
from datetime import timedelta

import pytest
from django.db import connection as db_connection
from django.utils import timezone

from config.celery import app as celery_app
from customers.models import Account
from integrations.hubspot.models import SyncKind, SyncRun, SyncStatus
from integrations.hubspot.services import release_stuck_runs
from integrations.hubspot.sync import create_run
from integrations.hubspot.tasks import run_sync
from tests.integrations.hubspot.conftest import at
from tests.triggers.test_worker import start_worker, stop_worker

WAIT_SECONDS = 60


def wait_for(check, worker, log):
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if check():
            return
        assert worker.poll() is None, log.read_text()
        time.sleep(0.2)
    raise AssertionError(f"timed out; worker log:\n{log.read_text()}")


@pytest.mark.worker
# The workers read committed rows, so this test commits.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_killed_worker_run_is_resumed(tmp_path, monkeypatch, connection, fake_hubspot):
    if not celery_app.conf.broker_url.startswith("redis://"):
        pytest.skip("set CELERY_BROKER_URL to a Redis URL to run the worker test")
    if db_connection.vendor != "postgresql":
        pytest.skip("the worker test needs DATABASE_URL to point at PostgreSQL")
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    # The workers read these from their environment: two companies a page.
    monkeypatch.setenv("NUDGEPATH_HUBSPOT_PAGE_SIZE", "2")
    for number in range(1, 7):
        fake_hubspot.put("companies", str(number), at(number), name=f"C{number}")
    # The second page never comes back while the first worker runs.
    fake_hubspot.hold_from = 2
    run = create_run(connection, "company", SyncKind.FULL)
    log = tmp_path / "worker.log"

    worker = start_worker(tmp_path, celery_app.conf.task_default_queue)
    try:
        run_sync.delay([run.pk])
        wait_for(
            lambda: (
                SyncRun.objects.get(pk=run.pk).fetched == 2
                and len(fake_hubspot.searches("companies")) == 2
            ),
            worker,
            log,
        )
        worker.kill()
        worker.wait()
    finally:
        stop_worker(worker)
    fake_hubspot.hold_from = None
    fake_hubspot.release.set()
    # Ten minutes pass without progress.
    SyncRun.objects.filter(pk=run.pk).update(
        heartbeat_at=timezone.now() - timedelta(minutes=11)
    )

    (tmp_path / "second").mkdir()
    second = start_worker(tmp_path / "second", celery_app.conf.task_default_queue)
    try:
        resumed = release_stuck_runs()
        assert len(resumed) == 1
        wait_for(
            lambda: (
                SyncRun.objects.get(pk=resumed[0].pk).status
                in (SyncStatus.SUCCEEDED, SyncStatus.FAILED)
            ),
            second,
            tmp_path / "second" / "worker.log",
        )
    finally:
        stop_worker(second)

    stuck = SyncRun.objects.get(pk=run.pk)
    assert stuck.status == SyncStatus.FAILED
    assert "no progress since" in stuck.last_error
    again = SyncRun.objects.get(pk=resumed[0].pk)
    assert again.status == SyncStatus.SUCCEEDED, again.last_error
    assert again.resumed_from_id == run.pk
    # The new run starts at the saved page token, not from the beginning.
    assert fake_hubspot.searches("companies")[2].get("after") == "2"
    assert (
        Account.objects.filter(external_id__in=[str(n) for n in range(1, 7)]).count()
        == 6
    )
