"""GET /healthz reports the database and the broker."""

import pytest

from config.celery import app as celery_app

pytestmark = pytest.mark.django_db


def test_healthz_reports_database_and_broker(client, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = False

    response = client.get("/healthz")

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok"
    assert body["database"]["ok"] is True
    assert body["database"]["vendor"] == "postgresql"
    assert body["broker"]["ok"] is True


def test_healthz_unavailable_when_broker_down(client, settings, monkeypatch):
    settings.CELERY_TASK_ALWAYS_EAGER = False
    # Nothing listens on port 1, so the broker connection is refused.
    for key in ("broker_url", "broker_write_url"):
        monkeypatch.setattr(celery_app.conf, key, "redis://127.0.0.1:1/0")

    response = client.get("/healthz")

    assert response.status_code == 503
    assert response.json()["broker"]["ok"] is False
    assert response.json()["database"]["ok"] is True
