"""The dashboard's sections computed at the same time on their own connections."""

import re
import threading

import pytest
from django.db import connections, transaction
from django.urls import reverse

import metrics.views
from customers.models import Account
from metrics.facts import refresh_facts
from metrics.side_by_side import can_run_side_by_side, reports_side_by_side, start
from tests.factories import make_account
from tests.metrics.test_views import AS_OF, add_cohort

# The other threads read only committed rows, so these tests commit theirs.
pytestmark = pytest.mark.django_db(transaction=True, serialized_rollback=True)

DASHBOARD = reverse("metrics:dashboard")


def test_report_runs_on_another_thread_and_connection():
    make_account(name="Committed before the report")

    def report():
        return (
            threading.current_thread().name,
            id(connections["default"]),
            list(Account.objects.values_list("name", flat=True)),
        )

    with reports_side_by_side():
        thread, report_connection, names = start(report).result()

    assert thread.startswith("dashboard-report")
    assert report_connection != id(connections["default"])
    assert names == ["Committed before the report"]


def test_report_runs_in_turn_inside_a_transaction():
    with reports_side_by_side(), transaction.atomic():
        make_account(name="Not committed")
        assert not can_run_side_by_side()

        names = start(
            lambda: list(Account.objects.values_list("name", flat=True))
        ).result()

    assert names == ["Not committed"]


def test_report_on_the_pool_computes_what_it_starts():
    def outer():
        inner = start(lambda: threading.current_thread().name)
        return threading.current_thread().name, inner.result()

    with reports_side_by_side():
        outer_thread, inner_thread = start(outer).result()

    assert outer_thread.startswith("dashboard-report")
    assert inner_thread == outer_thread


def test_report_runs_in_turn_outside_the_dashboard():
    # As in the scheduled report task: nothing asked for threads.
    assert not can_run_side_by_side()

    thread = start(lambda: threading.current_thread().name).result()

    assert thread == threading.current_thread().name


def test_report_error_reaches_the_caller():
    def failing():
        raise ValueError("the report failed")

    with reports_side_by_side():
        pending = start(failing)

    with pytest.raises(ValueError, match="the report failed"):
        pending.result()


def strip_tokens(page: str) -> str:
    return re.sub(r'name="csrfmiddlewaretoken" value="[^"]*"', "", page)


def test_dashboard_side_by_side_equals_in_turn(client, django_user_model, monkeypatch):
    course = add_cohort(40, seed=12)
    refresh_facts()
    client.force_login(
        django_user_model.objects.create_user(username="manager", is_staff=True)
    )
    threads = []
    impact_report = metrics.views.impact_report

    def recorded_impact_report(*args, **kwargs):
        threads.append(threading.current_thread().name)
        return impact_report(*args, **kwargs)

    monkeypatch.setattr(metrics.views, "impact_report", recorded_impact_report)
    query = {"as_of": AS_OF.isoformat(), "course": course.pk}

    side_by_side = client.get(DASHBOARD, query)
    with transaction.atomic():
        in_turn = client.get(DASHBOARD, query)

    assert side_by_side.status_code == in_turn.status_code == 200
    assert threads[0].startswith("dashboard-report")
    assert threads[1] == threading.current_thread().name
    assert strip_tokens(side_by_side.text) == strip_tokens(in_turn.text)
