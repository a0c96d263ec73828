"""Journey steps, their pending runs, match episodes and webhook endpoints.

The rows that steps produce (CSM tasks, webhook calls, CRM write-backs)
are in triggers.models.actions.
"""

import secrets
from datetime import timedelta

from django.core.exceptions import ValidationError
from django.core.validators import URLValidator
from django.db import models

from conditions import ConditionError, validate
from triggers.models.programs import EmailTemplate, SubjectType, Trigger
from triggers.models.sweeps import Firing
from triggers.webhook_targets import check_secret, check_url


class StepAction(models.TextChoices):
    ENROLL = "enroll", "Enroll in a course"
    SEND_EMAIL = "send_email", "Send an email"
    CREATE_TASK = "create_task", "Create a task for the account's CSM"
    CALL_WEBHOOK = "call_webhook", "Call a webhook"
    SET_PROPERTY = "set_property", "Set a CRM property"
    WAIT_FOR_GOAL = "wait_for_goal", "Wait for a goal"


class PropertyObject(models.TextChoices):
    ACCOUNT = "account", "Account"
    CONTACT = "contact", "Contact"


def generate_webhook_secret() -> str:
    """Return 32 random bytes as hex, the default signing secret of an endpoint."""
    return secrets.token_hex(32)


class WebhookEndpoint(models.Model):
    """A URL that journey steps POST firings to, with the secret that signs them."""

    name = models.CharField(
        max_length=200, help_text="What receives the calls, for example 'Slack relay'."
    )
    url = models.URLField(
        max_length=500,
        validators=[URLValidator(schemes=["http", "https"])],
        help_text="The http or https URL each call is POSTed to.",
    )
    secret = models.CharField(
        max_length=128,
        default=generate_webhook_secret,
        help_text=(
            "Shared secret for the X-Nudgepath-Signature header: HMAC-SHA256 of "
            "'<timestamp>.<body>' in hex. The receiver keeps a copy to verify calls."
        ),
    )
    is_active = models.BooleanField(
        default=True,
        help_text="Inactive endpoints get no new calls; queued calls still go out.",
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When this row was created."
    )
    updated_at = models.DateTimeField(
        auto_now=True, help_text="When this row was last changed."
    )

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        # The URL field's own validator has already checked the form of the
        # URL; these add what may not be called (triggers.webhook_targets).
        errors = {}
        if self.url:
            try:
                check_url(self.url)
            except ValueError as exc:
                errors["url"] = str(exc)
        try:
            check_secret(self.secret)
        except ValueError as exc:
            errors["secret"] = str(exc)
        if errors:
            raise ValidationError(errors, code="invalid_webhook_endpoint")


# The maximum delay of a journey step, and the maximum wait for a goal. A
# journey reacts to a firing, so a longer pause is a mistake, and huge
# delays overflow the date arithmetic of the runner.
MAX_STEP_DELAY = timedelta(days=365)


class JourneyStep(models.Model):
    """One step of a trigger's journey: a delay, then an action or a wait for a goal.

    Steps run in order after the firing. A wait-for-goal step waits up to
    wait_days for its goal condition: once the goal is met the journey stops,
    otherwise the next step runs when the wait is over.
    """

    trigger = models.ForeignKey(
        Trigger,
        on_delete=models.CASCADE,
        related_name="steps",
        help_text="The trigger whose firings start this journey.",
    )
    order = models.PositiveSmallIntegerField(
        help_text="Position in the journey; steps run in ascending order."
    )
    action = models.CharField(
        max_length=20,
        choices=StepAction.choices,
        help_text="What the step does when it is due.",
    )
    delay = models.DurationField(
        default=timedelta(0),
        help_text=(
            "Time to wait after the previous step ran (after the firing, for "
            "the first step) before this step runs, as 'DD HH:MM:SS'. Not used "
            "by a wait-for-goal step, which waits 'wait days'."
        ),
    )
    goal = models.JSONField(
        null=True,
        blank=True,
        help_text=(
            "For a wait-for-goal step: a condition tree over the trigger's "
            'subject, for example {"kind": "course_started", "course": '
            '"getting-started"}. The journey stops as soon as it is met.'
        ),
    )
    wait_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text=(
            "For a wait-for-goal step: days to wait for the goal before the "
            "next step runs."
        ),
    )
    course = models.ForeignKey(
        "courses.Course",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="journey_steps",
        help_text="For an enroll step: the course to enroll each recipient in.",
    )
    email_template = models.ForeignKey(
        EmailTemplate,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="journey_steps",
        help_text="For a send-email step: the email to send each recipient.",
    )
    task_title = models.CharField(
        max_length=200,
        blank=True,
        help_text=(
            "For a create-task step: the task's title, for example 'Call the "
            "champion about the stalled onboarding'."
        ),
    )
    task_due_days = models.PositiveSmallIntegerField(
        default=3,
        help_text="For a create-task step: days from the step to the task's due date.",
    )
    webhook = models.ForeignKey(
        WebhookEndpoint,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="steps",
        help_text="For a call-webhook step: the endpoint that receives the firing.",
    )
    property_object = models.CharField(
        max_length=10,
        choices=PropertyObject.choices,
        blank=True,
        help_text=(
            "For a set-property step: whether the property is set on the account "
            "or on each recipient contact."
        ),
    )
    property_name = models.CharField(
        max_length=100,
        blank=True,
        help_text="For a set-property step: the CRM property's internal name.",
    )
    property_value = models.JSONField(
        null=True,
        blank=True,
        help_text=(
            'For a set-property step: the JSON value to write, for example "at '
            'risk", true or 3.'
        ),
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When this row was created."
    )
    updated_at = models.DateTimeField(
        auto_now=True, help_text="When this row was last changed."
    )

    class Meta:
        ordering = ["trigger", "order"]
        constraints = [
            # The runner finds the next step by order, so orders are unique.
            models.UniqueConstraint(
                fields=["trigger", "order"], name="one_journey_step_per_order"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.trigger} step {self.order}: {self.get_action_display()}"

    def clean(self) -> None:
        # An unknown action gets its "Select a valid choice" error from the
        # field; the checks here apply to the known ones only.
        required: dict[str, list[str]] = {
            StepAction.ENROLL: ["course"],
            StepAction.SEND_EMAIL: ["email_template"],
            StepAction.CREATE_TASK: ["task_title"],
            StepAction.CALL_WEBHOOK: ["webhook"],
            StepAction.SET_PROPERTY: ["property_object", "property_name"],
            StepAction.WAIT_FOR_GOAL: ["goal", "wait_days"],
        }
        missing = {
            name: f"Required for the action '{self.get_action_display()}'."
            for name in required.get(self.action, [])
            if getattr(self, name) in (None, "")
        }
        if missing:
            raise ValidationError(missing, code="required_for_action")
        timing = self.timing_errors()
        if timing:
            raise ValidationError(timing, code="step_timing_out_of_range")
        if self.action == StepAction.WAIT_FOR_GOAL:
            self._clean_goal()
        elif self.goal is not None:
            raise ValidationError(
                {"goal": "Only a wait-for-goal step has a goal; clear it."},
                code="goal_without_wait",
            )

    def timing_errors(self) -> dict[str, str]:
        """Return an error per field for a delay or wait outside 0 to 365 days.

        The runner also checks this before it schedules a step, because rows
        saved before the check existed, or written without clean(), may
        carry any value.
        """
        errors = {}
        limit = MAX_STEP_DELAY.days
        if self.delay is not None and self.delay < timedelta(0):
            errors["delay"] = (
                f"Step {self.order}: the delay {self.delay} is negative; use 0 or "
                "more, as 'DD HH:MM:SS'."
            )
        elif self.delay is not None and self.delay > MAX_STEP_DELAY:
            errors["delay"] = (
                f"Step {self.order}: the delay {self.delay} is longer than the "
                f"maximum of {limit} days; use {limit} days or less."
            )
        if self.wait_days is not None and self.wait_days > limit:
            errors["wait_days"] = (
                f"Step {self.order}: a wait of {self.wait_days} days is longer "
                f"than the maximum of {limit} days; use {limit} or less."
            )
        return errors

    def _clean_goal(self) -> None:
        if not self.wait_days:
            raise ValidationError(
                {"wait_days": "Wait at least 1 day for the goal."},
                code="invalid_wait_days",
            )
        try:
            validate(self.goal, self.trigger.subject_type)  # type: ignore[arg-type]
        except ConditionError as exc:
            raise ValidationError(
                {"goal": f"Invalid condition at {exc.path}: {exc.message}"},
                code="invalid_condition",
            ) from exc


class PendingStepStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DONE = "done", "Done"
    STOPPED = "stopped", "Stopped"
    FAILED = "failed", "Failed"


class PendingStep(models.Model):
    """One journey step for one firing, as a row so that it survives restarts.

    The runner claims due rows with SELECT ... FOR UPDATE SKIP LOCKED and
    runs the step's action in the same transaction that marks the row done,
    so each step runs once per firing.
    """

    firing = models.ForeignKey(
        Firing,
        on_delete=models.CASCADE,
        related_name="pending_steps",
        help_text="The firing whose journey this step belongs to.",
    )
    step = models.ForeignKey(
        JourneyStep,
        # The history of a step that ran stays readable; a step with
        # history cannot be deleted, only the trigger deactivated.
        on_delete=models.PROTECT,
        related_name="pending_steps",
        help_text="The step to run.",
    )
    due_at = models.DateTimeField(
        help_text=(
            "When the step runs; for a wait-for-goal step, when the wait ends "
            "without the goal."
        )
    )
    status = models.CharField(
        max_length=10,
        choices=PendingStepStatus.choices,
        default=PendingStepStatus.PENDING,
        help_text=(
            "Pending: waiting to run. Done: ran, and the next step is scheduled. "
            "Stopped: the journey ended here, see the note. Failed: the action "
            "raised an error, see the note."
        ),
    )
    note = models.TextField(
        blank=True,
        help_text="Why the journey stopped or failed here, for example 'Goal met'.",
    )
    finished_at = models.DateTimeField(
        null=True, blank=True, help_text="When the step ran, stopped or failed."
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When this row was written."
    )

    class Meta:
        ordering = ["due_at", "id"]
        constraints = [
            # Each step runs at most once per firing, however often the
            # previous step is retried.
            models.UniqueConstraint(
                fields=["firing", "step"], name="one_pending_step_per_firing_step"
            ),
        ]
        indexes = [
            # The runner selects pending rows per step, due ones first.
            models.Index(fields=["status", "step", "due_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.step} for firing {self.firing_id} ({self.status})"


class TriggerMatch(models.Model):
    """An episode in which a subject matched a trigger at consecutive sweeps.

    The 'each new match' policy keys firings by the episode's start, so a
    subject fires again only after a sweep where it did not match.
    """

    trigger = models.ForeignKey(
        Trigger,
        on_delete=models.CASCADE,
        related_name="matches",
        help_text="The trigger whose condition the subject matched.",
    )
    subject_type = models.CharField(
        max_length=10,
        choices=SubjectType.choices,
        help_text="Whether the subject is a contact or an account.",
    )
    account = models.ForeignKey(
        "customers.Account",
        on_delete=models.CASCADE,
        related_name="trigger_matches",
        help_text="The account, or the account of the contact.",
    )
    contact = models.ForeignKey(
        "customers.Contact",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="trigger_matches",
        help_text="The contact, for contact triggers; blank for account triggers.",
    )
    since = models.DateTimeField(
        help_text="The as-of instant of the first sweep of the episode."
    )
    last_seen = models.DateTimeField(
        help_text="The as-of instant of the latest sweep that saw the subject match."
    )
    ended_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=(
            "The as-of instant of the sweep that found the subject no longer "
            "matching; blank while the episode is open."
        ),
    )

    class Meta:
        ordering = ["-since", "-id"]
        constraints = [
            # One open episode per subject, so two concurrent sweeps agree on
            # its start, and so on the firing's key.
            models.UniqueConstraint(
                fields=["trigger", "contact"],
                condition=models.Q(subject_type="contact", ended_at__isnull=True),
                name="one_open_match_per_contact",
            ),
            models.UniqueConstraint(
                fields=["trigger", "account"],
                condition=models.Q(subject_type="account", ended_at__isnull=True),
                name="one_open_match_per_account",
            ),
        ]

    def __str__(self) -> str:
        subject = self.contact or self.account
        return f"{self.trigger} matched {subject} since {self.since:%Y-%m-%d %H:%M}"
