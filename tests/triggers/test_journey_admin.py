"""Admin pages for journeys: steps inline, CSM tasks, webhook calls, pending steps."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.urls import reverse

from tests.factories import NOW, make_account, make_contact
from tests.triggers.factories import make_step, make_trigger
from triggers.models import CsmTask, WebhookDelivery, WebhookEndpoint
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

INACTIVE = {"kind": "inactivity", "days": 10}


@pytest.mark.parametrize(
    "model",
    ["csmtask", "webhookendpoint", "webhookdelivery", "pendingstep", "crmwriteback"],
)
def test_journey_changelists_load(admin_client, model):
    make_contact()
    endpoint = WebhookEndpoint.objects.create(name="e", url="http://127.0.0.1:9/")
    trigger = make_trigger(INACTIVE)
    make_step(trigger, 1, "call_webhook", webhook=endpoint)
    make_step(trigger, 2, "create_task", task_title="Call")
    run_sweep(NOW, triggers=[trigger])

    response = admin_client.get(reverse(f"admin:triggers_{model}_changelist"))

    assert response.status_code == 200


def test_trigger_page_shows_steps_inline(admin_client):
    trigger = make_trigger(INACTIVE)
    make_step(trigger, 1, "create_task", task_title="Call the champion")

    response = admin_client.get(
        reverse("admin:triggers_trigger_change", args=[trigger.pk])
    )

    page = response.content.decode()
    assert "Journey steps" in page
    assert "Call the champion" in page


def test_my_open_tasks_filter(admin_client, admin_user):
    other = User.objects.create_user("other-csm")
    mine = make_contact(make_account(owner=admin_user))
    theirs = make_contact(make_account(owner=other))
    trigger = make_trigger(INACTIVE)
    make_step(trigger, 1, "create_task", task_title="Follow up")
    run_sweep(NOW, triggers=[trigger])
    assert CsmTask.objects.count() == 2

    response = admin_client.get(
        reverse("admin:triggers_csmtask_changelist"), {"tasks": "mine"}
    )

    shown = list(response.context["cl"].result_list)
    assert [task.account_id for task in shown] == [mine.account_id]
    assert theirs.account_id != mine.account_id


def test_overdue_filter(admin_client):
    make_contact()
    trigger = make_trigger(INACTIVE)
    make_step(trigger, 1, "create_task", task_title="Follow up", task_due_days=1)
    # NOW is in 2024, so the task is long overdue today.
    run_sweep(NOW, triggers=[trigger])
    fresh = CsmTask.objects.create(
        account=make_account(),
        title="Later",
        due_on=NOW.date() + timedelta(days=36500),
    )

    response = admin_client.get(
        reverse("admin:triggers_csmtask_changelist"), {"tasks": "overdue"}
    )

    shown = {task.pk for task in response.context["cl"].result_list}
    assert fresh.pk not in shown
    assert shown == set(
        CsmTask.objects.exclude(pk=fresh.pk).values_list("pk", flat=True)
    )


def test_retry_action_requeues_failed_calls(admin_client):
    make_contact()
    endpoint = WebhookEndpoint.objects.create(name="e", url="http://127.0.0.1:9/")
    trigger = make_trigger(INACTIVE)
    make_step(trigger, 1, "call_webhook", webhook=endpoint)
    run_sweep(NOW, triggers=[trigger])
    delivery = WebhookDelivery.objects.get()
    WebhookDelivery.objects.filter(pk=delivery.pk).update(status="failed", attempts=8)

    admin_client.post(
        reverse("admin:triggers_webhookdelivery_changelist"),
        {"action": "retry", "_selected_action": [delivery.pk]},
    )

    delivery.refresh_from_db()
    assert delivery.attempts == 0
    # The retry is queued after commit, which a test transaction never
    # reaches, so the row waits as pending.
    assert delivery.status == "pending"
