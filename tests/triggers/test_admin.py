"""Admin pages that CSMs use to manage triggers and watch the outbox."""

import pytest
from django.urls import reverse

from tests.factories import NOW, make_contact
from tests.triggers.factories import make_template, make_trigger
from triggers.models import OutboxEmail, Trigger
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "model", ["trigger", "emailtemplate", "firing", "outboxemail", "sweep"]
)
def test_changelist_pages_load(admin_client, model):
    make_contact()
    trigger = make_trigger(
        {"kind": "inactivity", "days": 10}, email_template=make_template()
    )
    run_sweep(NOW, triggers=[trigger])

    response = admin_client.get(reverse(f"admin:triggers_{model}_changelist"))

    assert response.status_code == 200


def test_trigger_list_describes_condition(admin_client):
    make_trigger({"kind": "inactivity", "days": 10})

    response = admin_client.get(reverse("admin:triggers_trigger_changelist"))

    assert "no usage events in the last 10 days" in response.content.decode()


def test_trigger_form_lists_condition_kinds(admin_client):
    response = admin_client.get(reverse("admin:triggers_trigger_add"))

    page = response.content.decode()
    assert "Condition kinds" in page
    assert "renewal_within" in page
    assert "Renewal within the next N days" in page


def test_trigger_form_shows_error_path(admin_client):
    response = admin_client.post(
        reverse("admin:triggers_trigger_add"),
        {
            "name": "Quiet contacts",
            "slug": "quiet",
            "subject_type": "contact",
            "condition": '{"all": [{"kind": "inactivity", "days": "ten"}]}',
            "occurrence": "once",
            "recipients": "champions",
            "is_active": "on",
        },
    )

    assert response.status_code == 200
    assert (
        "Invalid condition at $.all[0]: days=&#x27;ten&#x27; must be a whole number"
        in (response.content.decode())
    )
    assert not Trigger.objects.exists()


def test_outbox_retry_action(
    admin_client, django_capture_on_commit_callbacks, mailoutbox
):
    make_contact()
    trigger = make_trigger(
        {"kind": "inactivity", "days": 10}, email_template=make_template()
    )
    run_sweep(NOW, triggers=[trigger])
    email = OutboxEmail.objects.get()
    OutboxEmail.objects.filter(pk=email.pk).update(status="failed", attempts=6)

    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:triggers_outboxemail_changelist"),
            {"action": "retry", "_selected_action": [email.pk]},
            follow=True,
        )

    assert "Queued 1 failed emails for another try." in response.content.decode()
    email.refresh_from_db()
    assert email.status == "sent"
    assert len(mailoutbox) == 1


def test_trigger_form_missing_parameter_redisplays(admin_client):
    response = admin_client.post(
        reverse("admin:triggers_trigger_add"),
        {
            "name": "Quiet contacts",
            "slug": "quiet",
            "subject_type": "contact",
            "condition": '{"kind": "inactivity"}',
            "occurrence": "once",
            "recipients": "champions",
        },
    )

    assert response.status_code == 200
    assert "parameter &#x27;days&#x27; is missing" in response.content.decode()
    assert not Trigger.objects.exists()


def test_stored_invalid_condition_still_listed(admin_client):
    trigger = make_trigger({"kind": "inactivity", "days": 10})
    # A condition stored before validation, or made invalid by a later change.
    Trigger.objects.filter(pk=trigger.pk).update(condition={"kind": "inactivity"})

    listing = admin_client.get(reverse("admin:triggers_trigger_changelist"))
    change = admin_client.get(
        reverse("admin:triggers_trigger_change", args=[trigger.pk])
    )

    assert listing.status_code == 200
    assert change.status_code == 200
    assert "inactivity (invalid: parameter" in listing.content.decode()
