"""Journey steps in the trigger form: delays, actions, goals as text, task days."""

from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from tests.triggers.factories import make_course, make_template, make_trigger
from triggers.models import JourneyStep, Trigger

MAX_STEP_DELAY = timedelta(days=365)

pytestmark = pytest.mark.django_db

ADD_URL = "admin:triggers_trigger_add"


def page_text(response):
    return " ".join(response.content.decode().split()).replace("&#x27;", "'")


def trigger_with_step(admin_client, subject_type="contact", **step):
    """Return the add form's data for a trigger with one journey step."""
    page = admin_client.get(reverse(ADD_URL))
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        prefix = inline.formset.prefix
        data[f"{prefix}-TOTAL_FORMS"] = "0"
        data[f"{prefix}-INITIAL_FORMS"] = "0"
    data.update(
        {
            "name": "Journey",
            "slug": "journey",
            "subject_type": subject_type,
            "condition": "inactive(last 10 days)",
            "occurrence": "once",
            "recipients": "champions",
            "holdout_percent": "0",
            "steps-TOTAL_FORMS": "1",
            "steps-0-order": "1",
            "steps-0-delay": "0",
            "steps-0-task_due_days": "3",
        }
    )
    data.update({f"steps-0-{name}": value for name, value in step.items()})
    return data


def step_errors(response, field):
    formset = response.context["inline_admin_formsets"][0].formset
    return formset.forms[0].errors.get(field, [])


# -- delays ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("delay", "words"),
    [
        (timedelta(days=-1), "-1 day"),
        (timedelta(seconds=-1), "negative"),
        (MAX_STEP_DELAY + timedelta(seconds=1), "365 days, 0:00:01"),
        (timedelta(days=999999999), "999999999 days"),
    ],
)
def test_step_clean_rejects_delay_out_of_range(delay, words):
    trigger = make_trigger({"kind": "inactivity", "days": 10})
    step = JourneyStep(
        trigger=trigger,
        order=2,
        action="send_email",
        email_template=make_template(),
        delay=delay,
    )

    with pytest.raises(ValidationError) as error:
        step.full_clean()

    messages = error.value.message_dict["delay"]
    assert len(messages) == 1
    assert "Step 2" in messages[0]
    assert words in messages[0]


@pytest.mark.parametrize("delay", [timedelta(0), MAX_STEP_DELAY])
def test_step_clean_accepts_delay_bounds(delay):
    trigger = make_trigger({"kind": "inactivity", "days": 10})
    step = JourneyStep(
        trigger=trigger,
        order=1,
        action="send_email",
        email_template=make_template(),
        delay=delay,
    )

    step.full_clean()


def test_step_clean_rejects_long_wait():
    trigger = make_trigger({"kind": "inactivity", "days": 10})
    step = JourneyStep(
        trigger=trigger,
        order=1,
        action="wait_for_goal",
        goal={"kind": "course_started"},
        wait_days=MAX_STEP_DELAY.days + 1,
    )

    with pytest.raises(ValidationError) as error:
        step.full_clean()

    assert "366" in error.value.message_dict["wait_days"][0]


@pytest.mark.parametrize(
    ("delay", "words"),
    [("-1 00:00:00", "negative"), ("999999999 00:00:00", "999999999")],
)
def test_inline_rejects_delay_out_of_range(admin_client, delay, words):
    template = make_template()
    data = trigger_with_step(
        admin_client, action="send_email", email_template=template.pk, delay=delay
    )

    response = admin_client.post(reverse(ADD_URL), data)

    assert response.status_code == 200
    errors = step_errors(response, "delay")
    assert len(errors) == 1
    assert words in errors[0]
    assert not Trigger.objects.exists()


# -- unknown action -----------------------------------------------------------------


def test_inline_rejects_unknown_action(admin_client):
    data = trigger_with_step(admin_client, action="launch_rockets")

    response = admin_client.post(reverse(ADD_URL), data)

    assert response.status_code == 200
    assert "Select a valid choice" in step_errors(response, "action")[0]
    assert not Trigger.objects.exists()


def test_step_clean_rejects_unknown_action():
    trigger = make_trigger({"kind": "inactivity", "days": 10})
    step = JourneyStep(trigger=trigger, order=1, action="launch_rockets")

    with pytest.raises(ValidationError) as error:
        step.full_clean()

    assert "action" in error.value.message_dict


# -- goal as condition text -----------------------------------------------------------


def test_inline_goal_text_saved_as_tree(admin_client):
    course = make_course(slug="getting-started")
    data = trigger_with_step(
        admin_client,
        action="wait_for_goal",
        goal='started("getting-started")',
        wait_days="7",
    )

    response = admin_client.post(reverse(ADD_URL), data)

    assert response.status_code == 302
    step = JourneyStep.objects.get()
    assert step.goal == {"kind": "course_started", "course": course.slug}


def test_inline_goal_json_still_accepted(admin_client):
    make_course(slug="getting-started")
    data = trigger_with_step(
        admin_client,
        action="wait_for_goal",
        goal='{"kind": "course_started", "course": "getting-started"}',
        wait_days="7",
    )

    response = admin_client.post(reverse(ADD_URL), data)

    assert response.status_code == 302
    assert JourneyStep.objects.get().goal == {
        "kind": "course_started",
        "course": "getting-started",
    }


def test_inline_goal_syntax_error_once(admin_client):
    data = trigger_with_step(
        admin_client,
        action="wait_for_goal",
        goal="inactive(last ten days)",
        wait_days="7",
    )

    response = admin_client.post(reverse(ADD_URL), data)

    errors = step_errors(response, "goal")
    assert len(errors) == 1
    assert errors[0].startswith("Line 1, column 15:")
    assert not Trigger.objects.exists()


def test_inline_goal_checked_against_subject(admin_client):
    # A contact field is valid in a contact trigger's goal, not in an
    # account trigger's, so the goal follows the trigger's subject type.
    data = trigger_with_step(
        admin_client,
        subject_type="account",
        action="wait_for_goal",
        goal='contact.first_name == "Ada"',
        wait_days="7",
    )

    response = admin_client.post(reverse(ADD_URL), data)

    errors = step_errors(response, "goal")
    assert len(errors) == 1
    assert "contact.first_name is a contact field" in errors[0]
    assert not Trigger.objects.exists()


def test_change_page_shows_goal_as_text(admin_client):
    make_course(slug="getting-started")
    trigger = make_trigger({"kind": "inactivity", "days": 10})
    JourneyStep.objects.create(
        trigger=trigger,
        order=1,
        action="wait_for_goal",
        goal={"kind": "course_started", "course": "getting-started"},
        wait_days=7,
    )

    response = admin_client.get(
        reverse("admin:triggers_trigger_change", args=[trigger.pk])
    )

    assert 'started("getting-started")' in page_text(response)


def test_add_page_goal_is_blank_not_null(admin_client):
    response = admin_client.get(reverse(ADD_URL))
    empty_form = response.context["inline_admin_formsets"][0].formset.empty_form

    assert empty_form["goal"].value() in (None, "")
    assert ">null</textarea>" not in response.content.decode()


# -- task due days --------------------------------------------------------------------


def test_inline_email_step_needs_no_task_days(admin_client):
    template = make_template()
    data = trigger_with_step(
        admin_client,
        action="send_email",
        email_template=template.pk,
        task_due_days="",
    )

    response = admin_client.post(reverse(ADD_URL), data)

    assert response.status_code == 302
    assert JourneyStep.objects.get().email_template == template


def test_inline_task_step_needs_task_days(admin_client):
    data = trigger_with_step(
        admin_client, action="create_task", task_title="Call", task_due_days=""
    )

    response = admin_client.post(reverse(ADD_URL), data)

    errors = step_errors(response, "task_due_days")
    assert len(errors) == 1
    assert "Create a task" in errors[0]
    assert not Trigger.objects.exists()
