"""Journey steps that cannot run: a goal that no longer resolves, a bad delay."""

import logging
from datetime import timedelta

import pytest
from django.urls import reverse

from courses.models import Course
from tests.factories import NOW, make_contact
from tests.triggers.factories import make_course, make_step, make_template, make_trigger
from triggers.journeys import run_due_steps
from triggers.models import JourneyStep, OutboxEmail, PendingStep, Trigger
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

INACTIVE = {"kind": "inactivity", "days": 10}
DAY = timedelta(days=1)


def goal_journey(goal_course):
    """Wait up to 7 days for goal_course to start, then send a reminder."""
    trigger = make_trigger(INACTIVE)
    wait = make_step(
        trigger,
        1,
        "wait_for_goal",
        goal={"kind": "course_started", "course": goal_course.slug},
        wait_days=7,
    )
    reminder = make_step(trigger, 2, "send_email", email_template=make_template())
    return trigger, wait, reminder


def test_goal_with_deleted_course_fails_rows(caplog):
    make_contact()
    make_contact()
    doomed = make_course(slug="doomed")
    trigger, wait, reminder = goal_journey(doomed)
    run_sweep(NOW, triggers=[trigger])
    assert PendingStep.objects.filter(step=wait, status="pending").count() == 2
    Course.objects.filter(pk=doomed.pk).delete()

    with caplog.at_level(logging.WARNING, logger="triggers.journeys"):
        report = run_due_steps(NOW + DAY)

    assert report.failed == 2
    rows = PendingStep.objects.filter(step=wait)
    assert set(rows.values_list("status", flat=True)) == {"failed"}
    for row in rows:
        assert "course 'doomed' does not exist" in row.note
        assert row.finished_at == NOW + DAY
    assert not PendingStep.objects.filter(step=reminder).exists()
    assert not OutboxEmail.objects.filter(journey_step=reminder).exists()
    assert trigger.slug in caplog.text
    assert "course 'doomed' does not exist" in caplog.text


def test_goal_with_deleted_course_disables_trigger():
    make_contact()
    doomed = make_course(slug="doomed")
    trigger, _, _ = goal_journey(doomed)
    run_sweep(NOW, triggers=[trigger])
    Course.objects.filter(pk=doomed.pk).delete()

    run_due_steps(NOW + DAY)

    trigger.refresh_from_db()
    assert trigger.is_active is False
    assert "step 1" in trigger.disabled_reason
    assert "course 'doomed' does not exist" in trigger.disabled_reason


def test_invalid_goal_fails_rows_keeps_trigger():
    make_contact()
    course = make_course()
    trigger, wait, _ = goal_journey(course)
    run_sweep(NOW, triggers=[trigger])
    JourneyStep.objects.filter(pk=wait.pk).update(goal={"kind": "no_such_kind"})

    report = run_due_steps(NOW + DAY)

    row = PendingStep.objects.get(step=wait)
    assert report.failed == 1
    assert row.status == "failed"
    assert "unknown condition kind 'no_such_kind'" in row.note
    trigger.refresh_from_db()
    assert trigger.is_active is True
    assert trigger.disabled_reason == ""


def test_failed_goal_note_shown_in_admin(admin_client):
    make_contact()
    doomed = make_course(slug="doomed")
    trigger, _, _ = goal_journey(doomed)
    run_sweep(NOW, triggers=[trigger])
    Course.objects.filter(pk=doomed.pk).delete()
    run_due_steps(NOW + DAY)

    response = admin_client.get(reverse("admin:triggers_pendingstep_changelist"))
    trigger_page = admin_client.get(
        reverse("admin:triggers_trigger_change", args=[trigger.pk])
    )

    text = response.content.decode().replace("&#x27;", "'")
    assert "course 'doomed' does not exist" in text
    assert "course 'doomed' does not exist" in trigger_page.content.decode().replace(
        "&#x27;", "'"
    )


@pytest.mark.parametrize(
    ("delay", "words"),
    [
        (timedelta(days=999999999), "999999999 days"),
        (timedelta(days=-1), "negative"),
    ],
)
def test_bad_stored_delay_fails_step_not_sweep(delay, words):
    make_contact()
    trigger = make_trigger(INACTIVE)
    # Saved without clean(), like a row written before delays were checked.
    step = JourneyStep.objects.create(
        trigger=trigger,
        order=1,
        action="send_email",
        email_template=make_template(),
        delay=delay,
    )

    report = run_sweep(NOW, triggers=[trigger])

    assert report.failures == ()
    assert report.fired == 1
    row = PendingStep.objects.get(step=step)
    assert row.status == "failed"
    assert "Step 1" in row.note
    assert words in row.note
    assert not OutboxEmail.objects.filter(journey_step=step).exists()


def test_bad_delay_of_later_step_fails_that_step():
    make_contact()
    trigger = make_trigger(INACTIVE)
    first = make_step(trigger, 1, "create_task", task_title="Call")
    second = JourneyStep.objects.create(
        trigger=trigger,
        order=2,
        action="send_email",
        email_template=make_template(),
        delay=timedelta(days=999999999),
    )

    report = run_sweep(NOW, triggers=[trigger])

    assert report.failures == ()
    assert PendingStep.objects.get(step=first).status == "done"
    assert PendingStep.objects.get(step=second).status == "failed"
    assert Trigger.objects.get(pk=trigger.pk).is_active is True
