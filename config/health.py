"""GET /healthz: the state of the database and the Celery broker."""

import logging
import time

from django.conf import settings
from django.db import connection
from django.http import HttpRequest, JsonResponse

from config.celery import app as celery_app

logger = logging.getLogger(__name__)

BROKER_TIMEOUT_SECONDS = 2


def _check_database() -> dict[str, object]:
    started = time.monotonic()
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except Exception as exc:  # Any driver error means "down" here.
        logger.warning("Health check: database unreachable: %s", exc)
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "vendor": connection.vendor, "ms": _elapsed_ms(started)}


def _check_broker() -> dict[str, object]:
    if settings.CELERY_TASK_ALWAYS_EAGER:
        return {"ok": True, "mode": "eager (tasks run in the web process)"}
    started = time.monotonic()
    try:
        with celery_app.connection_for_write() as broker:
            broker.ensure_connection(max_retries=1, timeout=BROKER_TIMEOUT_SECONDS)
    except Exception as exc:  # kombu raises many transport-specific errors.
        logger.warning("Health check: broker unreachable: %s", exc)
        return {"ok": False, "error": str(exc)}
    return {"ok": True, "transport": broker.transport_cls, "ms": _elapsed_ms(started)}


def _elapsed_ms(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def healthz(request: HttpRequest) -> JsonResponse:
    """Return 200 when the database and broker respond, 503 otherwise."""
    database = _check_database()
    broker = _check_broker()
    healthy = bool(database["ok"] and broker["ok"])
    return JsonResponse(
        {
            "status": "ok" if healthy else "unavailable",
            "database": database,
            "broker": broker,
        },
        status=200 if healthy else 503,
    )
