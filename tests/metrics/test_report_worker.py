"""A real Celery worker sends a scheduled report queued through Redis, once."""

import time

import pytest
from django.db import connection

from config.celery import app as celery_app
from metrics.models import DeliveryStatus, ReportDelivery, ReportSchedule
from metrics.tasks import send_scheduled_reports
from tests.triggers.test_worker import (
    WAIT_SECONDS,
    start_worker,
    stop_worker,
)


@pytest.mark.worker
# The worker reads committed rows, so this test commits.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_worker_sends_report_once(tmp_path):
    if not celery_app.conf.broker_url.startswith("redis://"):
        pytest.skip("set CELERY_BROKER_URL to a Redis URL to run the worker test")
    if connection.vendor != "postgresql":
        pytest.skip("the worker test needs DATABASE_URL to point at PostgreSQL")
    # The autouse eager_celery fixture restores the setting afterwards.
    celery_app.conf.task_always_eager = False
    celery_app.control.purge()
    ReportSchedule.objects.create(
        name="Weekly learning report", recipients="lead@example.com"
    )

    worker = start_worker(tmp_path, celery_app.conf.task_default_queue)
    try:
        # Both runs publish to Redis; the second finds the delivery pending
        # or sent, and the claim lets one send through.
        send_scheduled_reports.apply()
        send_scheduled_reports.apply()
        delivery = ReportDelivery.objects.get()
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            delivery.refresh_from_db()
            if delivery.status == DeliveryStatus.SENT:
                break
            assert worker.poll() is None, (tmp_path / "worker.log").read_text()
            time.sleep(0.2)
        # Give a duplicate task time to arrive and find nothing to send.
        time.sleep(2)
    finally:
        stop_worker(worker)

    mail_files = list((tmp_path / "mail").glob("*.log"))
    assert delivery.status == DeliveryStatus.SENT, (tmp_path / "worker.log").read_text()
    assert delivery.attempts == 1
    assert len(mail_files) == 1
    message = mail_files[0].read_text()
    assert "Subject: Nudgepath report: Weekly learning report" in message
    assert 'filename="impact.csv"' in message
