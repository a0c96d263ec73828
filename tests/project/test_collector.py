"""The first response freezes the process's long-lived objects, once."""

import gc

import pytest
from django.http import HttpRequest, HttpResponse

from config import collector


@pytest.fixture
def freezes(monkeypatch):
    """Record calls to gc.freeze instead of freezing the test process."""
    calls: list[str] = []
    monkeypatch.setattr(collector, "_frozen", False)
    monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
    return calls


def test_middleware_freezes_after_first_response(freezes):
    events = freezes

    def respond(request):
        events.append("response")
        return HttpResponse("page")

    middleware = collector.FreezeAfterFirstResponseMiddleware(respond)
    first = middleware(HttpRequest())
    second = middleware(HttpRequest())

    assert events == ["response", "freeze", "response"]
    assert first.content == b"page"
    assert second.content == b"page"


def test_freeze_runs_once_per_process(freezes):
    collector.freeze_long_lived_objects()
    collector.freeze_long_lived_objects()

    assert freezes == ["freeze"]


@pytest.mark.django_db
def test_served_request_freezes(client, freezes, settings):
    settings.CELERY_TASK_ALWAYS_EAGER = True

    client.get("/healthz")
    client.get("/healthz")

    assert freezes == ["freeze"]
