"""Journeys: the ordered steps a trigger takes after a firing, run from rows.

A firing of a trigger with steps gets a PendingStep row for its first step,
due after the step's delay. The runner (run_due_steps, every minute from
beat, and once inside the sweep for the firings it just inserted) takes
the due rows of one step at a time with SELECT ... FOR UPDATE SKIP LOCKED,
runs the step's action for all of them, marks them done and inserts the
row of the next step, all in one transaction. A step's action therefore
runs once per firing even with several runners, and a restart loses
nothing because the schedule is in the database, not in Celery.

At every run, a wait-for-goal step evaluates its goal condition for the
subjects of all its waiting rows in one query. A subject that meets the
goal stops its journey there. One that has not met it when the wait is
over moves on to the next step.

The trigger's own course and email run at the firing as before; the steps
follow them. A trigger without steps has no journey.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import cast

from django.db import transaction
from django.db.models import Q, QuerySet
from django.utils import timezone

from conditions import (
    ConditionError,
    EvaluationContext,
    MissingReferenceError,
    Subject,
    compile_condition,
    validate,
)
from courses.models import Course, EnrollmentSource
from courses.services import (
    course_path,
    create_sign_in_urls,
    enroll_many,
    restore_trigger_enrollments,
)
from customers.models import Account, Contact
from triggers.actions import recipients_of
from triggers.crm_properties import set_properties
from triggers.csm_tasks import create_tasks
from triggers.models import (
    Firing,
    FiringOutcome,
    JourneyStep,
    OutboxEmail,
    PendingStep,
    PendingStepStatus,
    PropertyObject,
    StepAction,
    SubjectType,
    Trigger,
)
from triggers.outbox import queue_send_after_commit
from triggers.rendering import compile_template, render_body, render_subject
from triggers.webhooks import enqueue_deliveries

logger = logging.getLogger(__name__)

# Pending rows of one step handled per transaction; the rest wait for the
# next pass.
STEP_BATCH_SIZE = 500
# Passes per run. A pass runs every step that is due once, so a chain of
# steps without delay advances one step per pass.
MAX_PASSES = 20


@dataclass(frozen=True)
class StepReport:
    """Pending steps that a run finished: ran (done), stopped and failed."""

    ran: int = 0
    stopped: int = 0
    failed: int = 0

    def __add__(self, other: "StepReport") -> "StepReport":
        return StepReport(
            ran=self.ran + other.ran,
            stopped=self.stopped + other.stopped,
            failed=self.failed + other.failed,
        )

    @property
    def finished(self) -> int:
        return self.ran + self.stopped + self.failed


def start_journeys(
    trigger: Trigger,
    firings: Sequence[Firing],
    as_of: datetime,
    skip_reason: str = "",
) -> StepReport:
    """Schedule the first step for each new firing acted on, and run what is due.

    Must run in the sweep's transaction, after the firings are inserted.
    Held-out and baseline firings start no journey. With a skip_reason (a
    replay before the delivery horizon) the first step is recorded as
    stopped with that reason, so replayed history starts no late journey.
    """
    acted = [firing for firing in firings if firing.outcome == FiringOutcome.ACTED]
    if not acted:
        return StepReport()
    first = trigger.steps.order_by("order").first()
    if first is None:
        return StepReport()

    if skip_reason:
        PendingStep.objects.bulk_create(
            [
                PendingStep(
                    firing=firing,
                    step=first,
                    due_at=as_of,
                    status=PendingStepStatus.STOPPED,
                    note=skip_reason,
                    finished_at=as_of,
                )
                for firing in acted
            ],
            ignore_conflicts=True,
        )
        return StepReport(stopped=len(acted))
    failed = _schedule(first, acted, as_of)
    report = run_due_steps(as_of, firing_ids=[firing.pk for firing in acted])
    return report + StepReport(failed=failed)


def run_due_steps(
    now: datetime | None = None,
    *,
    firing_ids: Sequence[int] | None = None,
    batch_size: int = STEP_BATCH_SIZE,
) -> StepReport:
    """Run the due steps, step by step, until none is left; return the counts.

    now defaults to the current time; goals are evaluated as of it. Without
    firing_ids only the steps of active triggers run, so switching a
    trigger off pauses its journeys. With firing_ids only those firings'
    steps run, whatever the trigger's state, which is how a sweep runs the
    steps that are due at once.
    """
    now = now or timezone.now()
    report = StepReport()
    for _ in range(MAX_PASSES):
        passed = _run_pass(now, firing_ids, batch_size)
        report += passed
        if not passed.finished:
            break
    if report.finished:
        logger.info(
            "Journey steps as of %s: %s ran, %s stopped, %s failed",
            now.isoformat(),
            report.ran,
            report.stopped,
            report.failed,
        )
    return report


def _run_pass(
    now: datetime, firing_ids: Sequence[int] | None, batch_size: int
) -> StepReport:
    candidates = _candidates(now, firing_ids)
    step_ids = set(candidates.values_list("step_id", flat=True).distinct())
    steps = (
        JourneyStep.objects.filter(pk__in=step_ids)
        .select_related("trigger", "course", "email_template", "webhook")
        .order_by("trigger_id", "order")
    )
    report = StepReport()
    for step in steps:
        report += run_step(step, now, firing_ids, batch_size)
    return report


def _candidates(
    now: datetime, firing_ids: Sequence[int] | None
) -> QuerySet[PendingStep]:
    """Select pending rows that are due, and waiting rows whose goal may be met."""
    rows = PendingStep.objects.filter(status=PendingStepStatus.PENDING).filter(
        Q(due_at__lte=now) | Q(step__action=StepAction.WAIT_FOR_GOAL)
    )
    if firing_ids is not None:
        return rows.filter(firing_id__in=firing_ids)
    return rows.filter(step__trigger__is_active=True)


def run_step(
    step: JourneyStep,
    now: datetime,
    firing_ids: Sequence[int] | None = None,
    batch_size: int = STEP_BATCH_SIZE,
) -> StepReport:
    """Run one step for a batch of its pending rows, in one transaction.

    Rows another runner holds are skipped, not waited for (SKIP LOCKED),
    and a row is changed only while its lock is held, so each row is
    finished by exactly one runner.
    """
    with transaction.atomic():
        rows_query = PendingStep.objects.select_for_update(
            skip_locked=True, of=("self",)
        ).filter(step=step, status=PendingStepStatus.PENDING)
        if step.action != StepAction.WAIT_FOR_GOAL:
            rows_query = rows_query.filter(due_at__lte=now)
        if firing_ids is not None:
            rows_query = rows_query.filter(firing_id__in=firing_ids)
        rows = list(
            rows_query.select_related("firing__account", "firing__contact").order_by(
                "due_at", "pk"
            )[:batch_size]
        )
        if not rows:
            return StepReport()
        if step.action == StepAction.WAIT_FOR_GOAL:
            return _check_goal(step, rows, now)
        return _run_action(step, rows, now)


def _check_goal(
    step: JourneyStep, rows: list[PendingStep], now: datetime
) -> StepReport:
    unresolved = _unresolved_goal(step)
    if unresolved:
        _finish(rows, PendingStepStatus.FAILED, now, unresolved)
        return StepReport(failed=len(rows))
    met = goal_met(step, [row.firing for row in rows], now)
    stopped = [row for row in rows if row.firing_id in met]
    expired = [row for row in rows if row.firing_id not in met and row.due_at <= now]
    _finish(
        stopped, PendingStepStatus.STOPPED, now, f"Goal met as of {now:%Y-%m-%d %H:%M}."
    )
    _finish(
        expired,
        PendingStepStatus.DONE,
        now,
        f"Goal not met within {step.wait_days} days.",
    )
    failed = _schedule_next(step, [row.firing for row in expired], now)
    return StepReport(ran=len(expired), stopped=len(stopped), failed=failed)


def _unresolved_goal(step: JourneyStep) -> str:
    """Return why the step's goal cannot be evaluated, or "" when it can.

    A goal that names a deleted course or stage would match no subject, so
    its subjects would wait out the whole wait for nothing. Like a sweep does
    for a condition (triggers.evaluation._disable_if_unresolved), such a
    goal switches its trigger off with the reason. Any other invalid goal
    fails the rows and leaves the trigger as it is, as a sweep leaves a
    trigger whose condition fails.
    """
    trigger = step.trigger
    try:
        validate(step.goal, cast(Subject, trigger.subject_type))
    except MissingReferenceError as exc:
        reason = (
            f"The goal of journey step {step.order} names something that no "
            f"longer exists: {exc}"
        )
        Trigger.objects.filter(pk=trigger.pk).update(
            is_active=False, disabled_reason=reason
        )
        trigger.is_active = False
        trigger.disabled_reason = reason
        logger.warning(
            "Disabled trigger %s and failed the waiting rows of step %s: %s",
            trigger.slug,
            step.pk,
            reason,
        )
        return reason
    except ConditionError as exc:
        reason = f"The goal of journey step {step.order} is invalid: {exc}"
        logger.warning(
            "Failed the waiting rows of step %s of trigger %s: %s",
            step.pk,
            trigger.slug,
            reason,
        )
        return reason
    return ""


def goal_met(step: JourneyStep, firings: Sequence[Firing], now: datetime) -> set[int]:
    """Return the ids of the firings whose subject meets the step's goal as of now.

    One query for all the firings: the goal compiles to one filter over the
    trigger's subject model, applied to their subjects.
    """
    subject = cast(Subject, step.trigger.subject_type)
    condition = compile_condition(step.goal, EvaluationContext(subject, now))
    if subject == SubjectType.CONTACT:
        by_subject = {firing.contact_id: firing.pk for firing in firings}
        model: type[Contact] | type[Account] = Contact
    else:
        by_subject = {firing.account_id: firing.pk for firing in firings}
        model = Account
    matching = model.objects.filter(pk__in=list(by_subject)).filter(condition)
    return {by_subject[pk] for pk in matching.values_list("pk", flat=True)}


def _run_action(
    step: JourneyStep, rows: list[PendingStep], now: datetime
) -> StepReport:
    firings = [row.firing for row in rows]
    try:
        # A savepoint, so a failing action leaves no half-written rows and
        # the rows can still be marked failed.
        with transaction.atomic():
            perform(step, firings, now)
    except Exception as exc:
        # One broken step (a template that no longer renders, a deleted
        # course) must not stop the other steps of the run.
        logger.exception(
            "Journey step %s of trigger %s failed for %s firings",
            step.pk,
            step.trigger.slug,
            len(rows),
        )
        _finish(rows, PendingStepStatus.FAILED, now, f"{type(exc).__name__}: {exc}")
        return StepReport(failed=len(rows))
    _finish(rows, PendingStepStatus.DONE, now, "")
    failed = _schedule_next(step, firings, now)
    return StepReport(ran=len(rows), failed=failed)


def perform(step: JourneyStep, firings: Sequence[Firing], now: datetime) -> None:
    """Take the step's action for the firings, in the caller's transaction."""
    trigger = step.trigger
    if step.action == StepAction.CREATE_TASK:
        create_tasks(step, firings, now)
        return
    if step.action == StepAction.CALL_WEBHOOK:
        enqueue_deliveries(step, firings)
        return

    recipients = journey_recipients(trigger, firings, now)
    if step.action == StepAction.ENROLL and step.course is not None:
        # NOTE: enrolling in a learning path waits for the learning-path
        # model; a path step would enroll in the path's first course here.
        pairs = [(contact.pk, step.course.pk) for _, contact in recipients]
        restore_trigger_enrollments(trigger.origin, pairs, at=now)
        enroll_many(
            pairs, source=EnrollmentSource.AUTOMATIC, origin=trigger.origin, at=now
        )
    elif step.action == StepAction.SEND_EMAIL:
        write_emails(step, recipients)
    elif step.action == StepAction.SET_PROPERTY:
        contact_recipients = (
            recipients if step.property_object == PropertyObject.CONTACT else []
        )
        set_properties(step, firings, contact_recipients)


def journey_recipients(
    trigger: Trigger, firings: Sequence[Firing], as_of: datetime
) -> list[tuple[Firing, Contact]]:
    """Pair each firing with the contacts its steps act on.

    The same contacts as the trigger's own actions reach (see
    triggers.actions.recipients_of), associated contacts included, so a
    journey follows everyone the firing enrolled or emailed.
    """
    return [
        (recipient.firing, recipient.contact)
        for recipient in recipients_of(trigger, firings, as_of)
    ]


def write_emails(step: JourneyStep, recipients: list[tuple[Firing, Contact]]) -> int:
    """Render the step's email for each recipient into the outbox; return rows written.

    The rows go through the same sender, delivery rules and suppression
    checks as the trigger's own email. The template's course is the
    journey's: the trigger's course, or that of the latest enroll step
    before this one.
    """
    template = step.email_template
    if template is None or not recipients:
        return 0
    course = journey_course(step)
    subject_template = compile_template(template.subject, "subject")
    body_template = compile_template(template.body, "body")
    contacts = [contact for _, contact in recipients]
    sign_in_urls = create_sign_in_urls(contacts, course_path(course) if course else "")

    emails = []
    for firing, contact in recipients:
        context = {
            "contact": contact,
            "account": contact.account,
            "course": course,
            "sign_in_url": sign_in_urls[contact.pk],
        }
        emails.append(
            OutboxEmail(
                firing=firing,
                contact=contact,
                template=template,
                journey_step=step,
                to_email=contact.email,
                subject=render_subject(subject_template, context),
                body_text=render_body(body_template, context),
            )
        )
    # The unique (firing, step, contact) constraint keeps a second write out.
    OutboxEmail.objects.bulk_create(emails, ignore_conflicts=True)
    written = list(
        OutboxEmail.objects.filter(
            journey_step=step, firing__in={firing.pk for firing, _ in recipients}
        ).values_list("pk", flat=True)
    )
    queue_send_after_commit(written)
    return len(written)


def journey_course(step: JourneyStep) -> Course | None:
    """Return the course a step's email is about, or None."""
    earlier = (
        JourneyStep.objects.filter(
            trigger_id=step.trigger_id,
            order__lt=step.order,
            action=StepAction.ENROLL,
            course__isnull=False,
        )
        .select_related("course")
        .order_by("-order")
        .first()
    )
    if earlier is not None:
        return earlier.course
    return step.trigger.enroll_course


def _due_at(step: JourneyStep, start: datetime) -> datetime:
    if step.action == StepAction.WAIT_FOR_GOAL:
        return start + timedelta(days=step.wait_days or 0)
    return start + step.delay


def _schedule(step: JourneyStep, firings: Sequence[Firing], start: datetime) -> int:
    """Insert the step's row for each firing, due after its delay from start.

    A delay or wait outside the allowed range, saved before the range was
    checked, would overflow the due date and fail the whole sweep. Such a
    step's rows are written as failed instead, with the reason. Returns how
    many rows were written failed.
    """
    reason = " ".join(step.timing_errors().values())
    if not reason:
        rows = [
            PendingStep(firing=firing, step=step, due_at=_due_at(step, start))
            for firing in firings
        ]
        PendingStep.objects.bulk_create(rows, ignore_conflicts=True)
        return 0

    logger.warning(
        "Journey step %s of trigger %s failed for %s firings: %s",
        step.pk,
        step.trigger.slug,
        len(firings),
        reason,
    )
    rows = [
        PendingStep(
            firing=firing,
            step=step,
            due_at=start,
            status=PendingStepStatus.FAILED,
            note=reason,
            finished_at=start,
        )
        for firing in firings
    ]
    PendingStep.objects.bulk_create(rows, ignore_conflicts=True)
    return len(rows)


def _finish(rows: list[PendingStep], status: str, now: datetime, note: str) -> None:
    if rows:
        PendingStep.objects.filter(pk__in=[row.pk for row in rows]).update(
            status=status, finished_at=now, note=note
        )


def _schedule_next(step: JourneyStep, firings: Sequence[Firing], now: datetime) -> int:
    """Insert the next step's row for each firing, due after its delay from now.

    Returns how many rows were written failed because of the step's delay.
    """
    following = (
        JourneyStep.objects.filter(trigger_id=step.trigger_id, order__gt=step.order)
        .order_by("order")
        .first()
    )
    if following is None or not firings:
        return 0
    return _schedule(following, firings, now)
