"""Journeys: steps after a firing, goals, the pending-step runner and its actions."""

import threading
from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.db import connection
from django.utils import timezone

from courses.models import Enrollment
from tests.factories import NOW, make_account, make_contact, make_event
from tests.triggers.factories import make_course, make_step, make_template, make_trigger
from triggers.journeys import run_due_steps
from triggers.models import (
    CrmWriteBack,
    CsmTask,
    EmailTemplate,
    Firing,
    JourneyStep,
    OutboxEmail,
    PendingStep,
)
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

INACTIVE = {"kind": "inactivity", "days": 10}
DAY = timedelta(days=1)


def onboarding_journey():
    """Enroll at the firing, wait up to 7 days for a start, then remind once."""
    course = make_course(slug="getting-started")
    trigger = make_trigger(INACTIVE, enroll_course=course)
    wait = make_step(
        trigger,
        1,
        "wait_for_goal",
        goal={"kind": "course_started", "course": "getting-started"},
        wait_days=7,
    )
    reminder = make_step(
        trigger, 2, "send_email", email_template=make_template(subject="Reminder")
    )
    return trigger, wait, reminder


def reminders(reminder):
    return OutboxEmail.objects.filter(journey_step=reminder)


def test_journey_reminds_once_when_not_started():
    contact = make_contact()
    trigger, wait, reminder = onboarding_journey()

    run_sweep(NOW, triggers=[trigger])

    assert Enrollment.objects.filter(contact=contact).count() == 1
    waiting = PendingStep.objects.get(step=wait)
    assert waiting.status == "pending"
    assert waiting.due_at == NOW + 7 * DAY

    run_due_steps(NOW + 3 * DAY)
    assert PendingStep.objects.get(step=wait).status == "pending"
    assert not reminders(reminder).exists()

    run_due_steps(NOW + 7 * DAY)
    run_due_steps(NOW + 8 * DAY)
    run_due_steps(NOW + 30 * DAY)

    assert PendingStep.objects.get(step=wait).status == "done"
    assert PendingStep.objects.get(step=reminder).status == "done"
    assert reminders(reminder).count() == 1
    assert reminders(reminder).get().to_email == contact.email


def test_journey_stops_when_course_started():
    contact = make_contact()
    trigger, wait, reminder = onboarding_journey()
    run_sweep(NOW, triggers=[trigger])
    Enrollment.objects.filter(contact=contact).update(started_at=NOW + 2 * DAY)

    # Before the start the goal is not met, even looking from a later run.
    run_due_steps(NOW + DAY)
    assert PendingStep.objects.get(step=wait).status == "pending"

    run_due_steps(NOW + 3 * DAY)
    stopped = PendingStep.objects.get(step=wait)
    assert stopped.status == "stopped"
    assert stopped.note.startswith("Goal met")

    run_due_steps(NOW + 30 * DAY)
    assert not PendingStep.objects.filter(step=reminder).exists()
    assert not reminders(reminder).exists()


def test_goal_checked_per_subject():
    started = make_contact()
    idle = make_contact()
    trigger, wait, reminder = onboarding_journey()
    run_sweep(NOW, triggers=[trigger])
    Enrollment.objects.filter(contact=started).update(started_at=NOW + DAY)

    run_due_steps(NOW + 7 * DAY)

    assert set(reminders(reminder).values_list("contact_id", flat=True)) == {idle.pk}
    statuses = dict(
        PendingStep.objects.filter(step=wait).values_list(
            "firing__contact_id", "status"
        )
    )
    assert statuses == {started.pk: "stopped", idle.pk: "done"}


def test_trigger_without_steps_starts_no_journey():
    make_contact()
    course = make_course()
    trigger = make_trigger(INACTIVE, enroll_course=course)

    run_sweep(NOW, triggers=[trigger])

    assert Enrollment.objects.count() == 1
    assert not PendingStep.objects.exists()


def test_pending_steps_survive_restart():
    make_contact()
    trigger = make_trigger(INACTIVE)
    step = make_step(
        trigger,
        1,
        "send_email",
        email_template=make_template(),
        delay=timedelta(days=2),
    )
    run_sweep(NOW, triggers=[trigger])

    # Nothing in memory carries the schedule: the row alone stores the due time.
    row = PendingStep.objects.get(step=step)
    assert row.status == "pending"
    assert row.due_at == NOW + 2 * DAY
    assert run_due_steps(NOW + DAY).finished == 0

    report = run_due_steps(NOW + 2 * DAY)

    assert report.ran == 1
    assert OutboxEmail.objects.filter(journey_step=step).count() == 1
    assert run_due_steps(NOW + 3 * DAY).finished == 0
    assert OutboxEmail.objects.filter(journey_step=step).count() == 1


def test_inactive_trigger_pauses_journey():
    make_contact()
    trigger = make_trigger(INACTIVE)
    step = make_step(
        trigger, 1, "create_task", task_title="Call", delay=timedelta(days=1)
    )
    run_sweep(NOW, triggers=[trigger])
    trigger.is_active = False
    trigger.save()

    run_due_steps(NOW + 2 * DAY)
    assert PendingStep.objects.get(step=step).status == "pending"

    trigger.is_active = True
    trigger.save()
    run_due_steps(NOW + 2 * DAY)
    assert PendingStep.objects.get(step=step).status == "done"


def test_replayed_history_starts_no_journey():
    make_contact()
    trigger = make_trigger(INACTIVE)
    step = make_step(trigger, 1, "create_task", task_title="Call")

    run_sweep(NOW, triggers=[trigger], deliver_after=NOW + DAY)

    row = PendingStep.objects.get(step=step)
    assert row.status == "stopped"
    assert "delivery horizon" in row.note
    assert not CsmTask.objects.exists()


def test_create_task_for_account_owner():
    csm = User.objects.create_user("csm", "csm@example.com")
    account = make_account(owner=csm)
    contact = make_contact(account)
    trigger = make_trigger(INACTIVE, name="Quiet learner")
    step = make_step(
        trigger, 1, "create_task", task_title="Call the learner", task_due_days=5
    )

    run_sweep(NOW, triggers=[trigger])

    task = CsmTask.objects.get()
    assert task.account == account
    assert task.owner == csm
    assert task.title == "Call the learner"
    assert task.due_on == timezone.localdate(NOW) + timedelta(days=5)
    assert task.status == "open"
    assert task.firing == Firing.objects.get(contact=contact)
    assert task.step == step


def test_enroll_step_records_trigger_origin():
    contact = make_contact()
    course = make_course()
    trigger = make_trigger(INACTIVE, slug="quiet-learners")
    make_step(trigger, 1, "enroll", course=course, delay=timedelta(hours=1))

    run_sweep(NOW, triggers=[trigger])
    assert not Enrollment.objects.exists()
    run_due_steps(NOW + timedelta(hours=1))

    enrollment = Enrollment.objects.get()
    assert enrollment.contact == contact
    assert enrollment.course == course
    assert enrollment.source == "automatic"
    assert enrollment.origin == "trigger:quiet-learners"
    assert enrollment.enrolled_at == NOW + timedelta(hours=1)


def test_set_account_property():
    account = make_account(properties={"tier": "gold"})
    trigger = make_trigger(INACTIVE, subject_type="account")
    step = make_step(
        trigger,
        1,
        "set_property",
        property_object="account",
        property_name="onboarding_risk",
        property_value="high",
    )

    run_sweep(NOW, triggers=[trigger])

    account.refresh_from_db()
    assert account.properties == {"tier": "gold", "onboarding_risk": "high"}
    row = CrmWriteBack.objects.get()
    assert row.object_type == "account"
    assert row.account == account
    assert row.contact is None
    assert row.property_name == "onboarding_risk"
    assert row.value == "high"
    assert row.status == "pending"
    assert row.step == step


def test_set_contact_property_on_champions():
    account = make_account()
    champion = make_contact(account, is_champion=True)
    other = make_contact(account)
    trigger = make_trigger(INACTIVE, subject_type="account", recipients="champions")
    make_step(
        trigger,
        1,
        "set_property",
        property_object="contact",
        property_name="needs_training",
        property_value=True,
    )

    run_sweep(NOW, triggers=[trigger])

    champion.refresh_from_db()
    other.refresh_from_db()
    assert champion.properties == {"needs_training": True}
    assert other.properties == {}
    assert list(CrmWriteBack.objects.values_list("contact_id", flat=True)) == [
        champion.pk
    ]


def test_account_journey_reaches_associated_contacts():
    # A person associated with the firing account, whose own account is
    # another, gets the journey's steps like the trigger's own actions.
    account = make_account()
    own = make_contact(account)
    associated = make_contact()
    associated.associated_accounts.add(account)
    trigger = make_trigger(INACTIVE, subject_type="account", recipients="all_contacts")
    make_step(
        trigger,
        1,
        "set_property",
        property_object="contact",
        property_name="needs_training",
        property_value=True,
    )

    run_sweep(NOW, triggers=[trigger], account_ids=[account.pk])

    written = set(CrmWriteBack.objects.values_list("contact_id", flat=True))
    assert written == {own.pk, associated.pk}


def test_failing_step_is_marked_failed():
    make_contact()
    trigger = make_trigger(INACTIVE)
    step = make_step(trigger, 1, "send_email", email_template=make_template())
    after = make_step(trigger, 2, "create_task", task_title="Call")
    # A template broken after it was saved, as an old row could be.
    assert step.email_template_id is not None
    EmailTemplate.objects.filter(pk=step.email_template_id).update(body="{% if %}")

    run_sweep(NOW, triggers=[trigger])

    row = PendingStep.objects.get(step=step)
    assert row.status == "failed"
    assert row.note
    assert not OutboxEmail.objects.exists()
    assert not PendingStep.objects.filter(step=after).exists()


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"action": "wait_for_goal", "wait_days": 3}, "goal", "Required"),
        (
            {"action": "wait_for_goal", "wait_days": 3, "goal": {"kind": "nope"}},
            "goal",
            "unknown condition kind 'nope'",
        ),
        (
            {"action": "wait_for_goal", "goal": {"kind": "course_started"}},
            "wait_days",
            "Required",
        ),
        ({"action": "send_email"}, "email_template", "Required"),
        (
            {"action": "create_task", "task_title": "x", "goal": INACTIVE},
            "goal",
            "Only a wait-for-goal step",
        ),
    ],
)
def test_step_validation(fields, field, words):
    trigger = make_trigger(INACTIVE)

    with pytest.raises(ValidationError) as caught:
        JourneyStep(trigger=trigger, order=1, **fields).full_clean()

    messages = " ".join(caught.value.message_dict.get(field, []))
    assert words in messages


# The runners' threads need committed rows, so this test commits.
# serialized_rollback restores the rows that data migrations seed after the
# flush, without recreating content types under new ids.
@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_concurrent_runners_run_each_step_once():
    for _ in range(30):
        make_contact()
    trigger = make_trigger(INACTIVE)
    step = make_step(
        trigger, 1, "create_task", task_title="Call", delay=timedelta(days=1)
    )
    run_sweep(NOW, triggers=[trigger])
    assert PendingStep.objects.filter(step=step, status="pending").count() == 30

    barrier = threading.Barrier(2)
    reports = []
    errors = []

    def runner():
        try:
            barrier.wait()
            # Small batches, so the two runners interleave.
            reports.append(run_due_steps(NOW + 2 * DAY, batch_size=4))
        except Exception as exc:  # reported below, in the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []
    assert sum(report.ran for report in reports) == 30
    assert CsmTask.objects.count() == 30
    assert PendingStep.objects.filter(step=step, status="done").count() == 30


def test_sweep_after_usage_keeps_journey():
    # A subject that stops matching keeps its journey: the goal, not the
    # trigger's condition, ends it.
    contact = make_contact()
    trigger, _, reminder = onboarding_journey()
    run_sweep(NOW, triggers=[trigger])
    make_event(contact, NOW + DAY)
    run_sweep(NOW + 2 * DAY, triggers=[trigger])

    run_due_steps(NOW + 7 * DAY)

    assert reminders(reminder).count() == 1
