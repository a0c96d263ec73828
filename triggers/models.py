"""Triggers, their firings, email templates, the email outbox and sweeps."""

import secrets
from datetime import time, timedelta
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, URLValidator
from django.db import models
from django.utils import timezone

from conditions import ConditionError, validate
from customers.time_zones import validate_time_zone_name
from triggers.rendering import TEMPLATE_VARIABLES, compile_template
from triggers.webhook_targets import check_secret, check_url

VARIABLES_HELP = ", ".join(TEMPLATE_VARIABLES)


# Sending days are stored as Python's date.weekday() numbers, 0 to 6.
WEEKDAY_NAMES = (
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
)


def default_send_weekdays() -> list[int]:
    """Monday to Friday."""
    return [0, 1, 2, 3, 4]


class EmailTemplate(models.Model):
    """Subject and body of an email that triggers send, in Django template text."""

    slug = models.SlugField(
        unique=True, help_text="Short unique name used by the demo set-up and exports."
    )
    name = models.CharField(
        max_length=200, help_text="What the email is for, as CSMs call it."
    )
    subject = models.CharField(
        max_length=300,
        help_text=(
            "One line of template text. Available variables: "
            f"{VARIABLES_HELP}, for example {{{{ contact.first_name }}}}."
        ),
    )
    body = models.TextField(
        help_text=(
            "Plain-text body in Django template language. Available variables: "
            f"{VARIABLES_HELP}. Put {{{{ sign_in_url }}}} where the link to the "
            "course (or to the learning portal when the trigger enrolls in no "
            "course) should go."
        )
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

    def save(self, *args: Any, **kwargs: Any) -> None:
        # Checked here as well as in forms, so no code path stores a template
        # that would fail when a trigger fires.
        self.clean()
        super().save(*args, **kwargs)

    def clean(self) -> None:
        if "\n" in self.subject or "\r" in self.subject:
            raise ValidationError({"subject": "The subject must be a single line."})
        compile_template(self.subject, "subject")
        compile_template(self.body, "body")


class SubjectType(models.TextChoices):
    CONTACT = "contact", "Contact"
    ACCOUNT = "account", "Account"


class Occurrence(models.TextChoices):
    """When a subject that still matches may fire the same trigger again."""

    ONCE = "once", "Once per subject"
    RENEWAL_DATE = "renewal_date", "Once per renewal date"
    INACTIVITY_SPELL = "inactivity_spell", "Once per inactivity spell"
    SURVEY_RESPONSE = "survey_response", "Once per survey response"
    DAILY = "daily", "Once per day"
    EVERY_N_DAYS = "every_n_days", "At most once every N days"
    EACH_NEW_MATCH = "each_new_match", "Each time the subject starts matching again"


class Recipients(models.TextChoices):
    CHAMPIONS = "champions", "The account's champions"
    ALL_CONTACTS = "all_contacts", "All contacts of the account"


class Trigger(models.Model):
    """A condition over contacts or accounts, plus the actions taken when it fires."""

    slug = models.SlugField(
        unique=True,
        help_text="Short unique name; enrollments record it as trigger:<slug>.",
    )
    name = models.CharField(
        max_length=200, help_text="Name shown in lists and reports."
    )
    description = models.TextField(
        blank=True, help_text="Why this trigger exists and what it should achieve."
    )
    subject_type = models.CharField(
        max_length=10,
        choices=SubjectType.choices,
        default=SubjectType.CONTACT,
        help_text="Whether the condition is evaluated per contact or per account.",
    )
    condition = models.JSONField(
        help_text=(
            'A condition tree, for example {"kind": "inactivity", "days": 10} or '
            '{"all": [{"kind": "renewal_within", "days": 90}, '
            '{"kind": "health_score", "op": ">", "value": 70}]}.'
        )
    )
    occurrence = models.CharField(
        max_length=20,
        choices=Occurrence.choices,
        default=Occurrence.ONCE,
        help_text=(
            "When a subject that still matches fires again: never (once per "
            "subject), for each new renewal date, after each new spell of "
            "inactivity, for each new survey response, once each day, at most "
            "once every N days, or each time it starts matching again after "
            "a sweep where it did not match."
        ),
    )
    reentry_days = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        help_text=(
            "For 'at most once every N days': N, the least number of days "
            "between two firings for the same subject."
        ),
    )
    unenroll_when_unmatched = models.BooleanField(
        default=False,
        help_text=(
            "At each sweep, unenroll from active courses the contacts this "
            "trigger enrolled whose subject no longer matches. Enrollments made "
            "by hand or by another trigger, and completed ones, are never touched."
        ),
    )
    is_active = models.BooleanField(
        default=True,
        help_text="Only active triggers are evaluated by the scheduled sweep.",
    )
    backfill = models.BooleanField(
        default=True,
        help_text=(
            "On activation, act on the subjects that already match. Off: record "
            "them as a baseline and act only on those who start matching later."
        ),
    )
    activated_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the trigger was last switched on.",
    )
    disabled_reason = models.TextField(
        blank=True,
        help_text=(
            "Why the engine switched this trigger off, for example a course its "
            "condition names was deleted; cleared when a CSM turns it back on."
        ),
    )
    holdout_percent = models.PositiveSmallIntegerField(
        default=0,
        validators=[MaxValueValidator(90)],
        help_text=(
            "Share of matching subjects held out as a control group: their "
            "firing is recorded with no action, so metrics can compare them "
            "with the treated. 0 for none; at most 90."
        ),
    )
    enroll_course = models.ForeignKey(
        "courses.Course",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="triggers",
        help_text="Course to enroll each recipient in; blank for no enrollment.",
    )
    email_template = models.ForeignKey(
        EmailTemplate,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="triggers",
        help_text="Email to send each recipient; blank for no email.",
    )
    recipients = models.CharField(
        max_length=20,
        choices=Recipients.choices,
        default=Recipients.CHAMPIONS,
        help_text=(
            "For account triggers: who is enrolled and emailed. An account without "
            "champions gets no actions under 'champions'. Contact triggers always "
            "act on the contact itself."
        ),
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

    def save(self, *args: Any, **kwargs: Any) -> None:
        # A trigger created or switched on outside the activation page (the
        # demo set-up, a script) still records when it became active.
        if self.is_active and self.activated_at is None:
            self.activated_at = timezone.now()
            if kwargs.get("update_fields") is not None:
                kwargs["update_fields"] = {*kwargs["update_fields"], "activated_at"}
        super().save(*args, **kwargs)

    def clean(self) -> None:
        try:
            validate(self.condition, self.subject_type)  # type: ignore[arg-type]
        except ConditionError as exc:
            raise ValidationError(
                {"condition": f"Invalid condition at {exc.path}: {exc.message}"},
                code="invalid_condition",
            ) from exc
        if self.occurrence == Occurrence.EVERY_N_DAYS and not self.reentry_days:
            raise ValidationError(
                {
                    "reentry_days": (
                        "Set the number of days (1 or more) for 'at most once "
                        "every N days'."
                    )
                },
                code="missing_reentry_days",
            )

    @property
    def origin(self) -> str:
        """The enrollment origin recorded for this trigger's enrollments."""
        return f"trigger:{self.slug}"


class Sweep(models.Model):
    """One evaluation of a set of triggers as of one instant, with its counts."""

    as_of = models.DateTimeField(
        help_text="The instant the conditions were evaluated at."
    )
    started_at = models.DateTimeField(help_text="When the sweep started running.")
    finished_at = models.DateTimeField(
        null=True, blank=True, help_text="When the sweep finished; blank while running."
    )
    triggers_evaluated = models.PositiveIntegerField(
        default=0, help_text="Triggers whose condition was evaluated."
    )
    matched = models.PositiveIntegerField(
        default=0,
        help_text="Subjects that matched, including those that had fired before.",
    )
    fired = models.PositiveIntegerField(default=0, help_text="New firings.")
    enrollments = models.PositiveIntegerField(default=0, help_text="New enrollments.")
    emails_queued = models.PositiveIntegerField(
        default=0, help_text="Emails written to the outbox to be sent."
    )
    emails_skipped = models.PositiveIntegerField(
        default=0,
        help_text=(
            "Emails written to the outbox as skipped, never to be sent, because "
            "their firing is older than the sweep's delivery horizon."
        ),
    )
    errors = models.JSONField(
        default=list,
        blank=True,
        help_text="Triggers that failed in this sweep, with the error of each.",
    )

    class Meta:
        ordering = ["-started_at"]

    def __str__(self) -> str:
        return f"Sweep {self.pk} as of {self.as_of:%Y-%m-%d %H:%M}"


class BacktestStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class BacktestStep(models.TextChoices):
    DAY = "day", "Every day"
    WEEK = "week", "Every seventh day"


class BacktestRun(models.Model):
    """One requested backtest of a trigger over a past period, and its weekly rows.

    A CSM requests it from the admin, and a worker computes it with
    triggers.backtest.backtest_trigger. The rows keep the result as it was
    when computed, because later data or an edited condition may change it.
    """

    trigger = models.ForeignKey(
        Trigger,
        on_delete=models.CASCADE,
        related_name="backtest_runs",
        help_text="The trigger whose condition is replayed.",
    )
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The staff user who requested the backtest.",
    )
    start = models.DateField(help_text="First day of the period, included.")
    end = models.DateField(help_text="Last day of the period, included.")
    step = models.CharField(
        max_length=10,
        choices=BacktestStep.choices,
        default=BacktestStep.DAY,
        help_text="How often the condition is evaluated, at 00:00 of the day.",
    )
    status = models.CharField(
        max_length=10,
        choices=BacktestStatus.choices,
        default=BacktestStatus.QUEUED,
        help_text=(
            "Queued: waiting for a worker. Running: a worker is computing it. "
            "Done: the rows are stored. Failed: see the error."
        ),
    )
    rows = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "One object per ISO week: week_start, days_evaluated, matched, "
            "would_fire and new_subjects; empty until done."
        ),
    )
    error = models.TextField(
        blank=True, help_text="Why the backtest failed; blank unless failed."
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When the backtest was requested."
    )
    started_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker last started computing it."
    )
    finished_at = models.DateTimeField(
        null=True, blank=True, help_text="When it finished, done or failed."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            # The backtest page lists a trigger's latest runs.
            models.Index(fields=["trigger", "-created_at"]),
        ]

    def __str__(self) -> str:
        return (
            f"Backtest {self.pk} of {self.trigger_id} from {self.start} to "
            f"{self.end} ({self.status})"
        )

    @property
    def is_finished(self) -> bool:
        return self.status in (BacktestStatus.DONE, BacktestStatus.FAILED)


class FiringOutcome(models.TextChoices):
    ACTED = "acted", "Acted"
    HELD_OUT = "held_out", "Held out"
    BASELINE = "baseline", "Baseline"


class Firing(models.Model):
    """A trigger fired for one subject and one occurrence."""

    trigger = models.ForeignKey(
        Trigger,
        # Firings are the history that metrics compare; deactivate a trigger
        # instead of deleting it.
        on_delete=models.PROTECT,
        related_name="firings",
        help_text="The trigger that fired.",
    )
    subject_type = models.CharField(
        max_length=10,
        choices=SubjectType.choices,
        help_text="Whether the trigger fired for a contact or for an account.",
    )
    account = models.ForeignKey(
        "customers.Account",
        on_delete=models.CASCADE,
        related_name="firings",
        help_text="The account, or the account of the contact.",
    )
    contact = models.ForeignKey(
        "customers.Contact",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="firings",
        help_text="The contact, for contact triggers; blank for account triggers.",
    )
    occurrence_key = models.CharField(
        max_length=64,
        help_text=(
            "Identifies the occurrence under the trigger's policy: 'once', a "
            "renewal date, the date of the last usage before the inactivity "
            "spell, a survey response id, or the day."
        ),
    )
    fired_at = models.DateTimeField(help_text="The sweep's as-of instant.")
    outcome = models.CharField(
        max_length=10,
        choices=FiringOutcome.choices,
        default=FiringOutcome.ACTED,
        help_text=(
            "Acted: the trigger's actions ran. Held out: in the control group, "
            "recorded with no action. Baseline: already matched when the "
            "trigger was activated without backfill, so no action."
        ),
    )
    note = models.TextField(
        blank=True,
        help_text=(
            "Why an action was held back, for example the contact unsubscribed."
        ),
    )
    sweep = models.ForeignKey(
        Sweep,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="firings",
        help_text="The sweep that inserted this firing.",
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When this row was written."
    )

    class Meta:
        ordering = ["-fired_at", "-id"]
        constraints = [
            # The database, not a check before insert, guarantees that a
            # subject fires a trigger at most once per occurrence, and sweeps
            # insert with ON CONFLICT DO NOTHING. There is one constraint per
            # subject type because contact is NULL for accounts, and NULLs
            # never conflict in a plain unique constraint.
            models.UniqueConstraint(
                fields=["trigger", "contact", "occurrence_key"],
                condition=models.Q(subject_type="contact"),
                name="firing_once_per_contact_occurrence",
            ),
            models.UniqueConstraint(
                fields=["trigger", "account", "occurrence_key"],
                condition=models.Q(subject_type="account"),
                name="firing_once_per_account_occurrence",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(subject_type="contact", contact__isnull=False)
                    | models.Q(subject_type="account", contact__isnull=True)
                ),
                name="firing_contact_matches_subject_type",
            ),
        ]
        indexes = [
            # Metrics and the admin list a trigger's firings by time.
            models.Index(fields=["trigger", "fired_at"]),
        ]

    def __str__(self) -> str:
        subject = self.contact or self.account
        return f"{self.trigger} for {subject} ({self.occurrence_key})"


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SKIPPED = "skipped", "Skipped"


class OutboxEmail(models.Model):
    """An email decided by a firing, written in the same transaction, sent later."""

    firing = models.ForeignKey(
        Firing,
        on_delete=models.CASCADE,
        related_name="emails",
        help_text="The firing whose actions wrote this email.",
    )
    contact = models.ForeignKey(
        "customers.Contact",
        on_delete=models.CASCADE,
        related_name="outbox_emails",
        help_text="The recipient.",
    )
    template = models.ForeignKey(
        EmailTemplate,
        on_delete=models.PROTECT,
        related_name="outbox_emails",
        help_text="The template the subject and body were rendered from.",
    )
    to_email = models.EmailField(
        help_text="The address at the time the email was written."
    )
    subject = models.CharField(max_length=300, help_text="The rendered subject.")
    body_text = models.TextField(help_text="The rendered plain-text body.")
    status = models.CharField(
        max_length=10,
        choices=OutboxStatus.choices,
        default=OutboxStatus.PENDING,
        help_text=(
            "Pending: waiting to be sent or retried. Sending: claimed by a worker. "
            "Sent: accepted by the mail server. Failed: gave up after the last "
            "attempt. Skipped: written but never sent, see the skip reason."
        ),
    )
    skip_reason = models.TextField(
        blank=True,
        help_text=(
            "Why a skipped email is not sent, for example a replayed firing older "
            "than the delivery horizon."
        ),
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a worker claimed this email for sending."
    )
    last_error = models.TextField(
        blank=True, help_text="The error of the last failed attempt."
    )
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=(
            "Earliest time of the next attempt after a failure; blank means at once."
        ),
    )
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker last claimed this email."
    )
    sent_at = models.DateTimeField(
        null=True, blank=True, help_text="When the mail server accepted the email."
    )
    message_id = models.CharField(
        max_length=255,
        blank=True,
        help_text="The Message-ID header, the same on every attempt of this email.",
    )
    journey_step = models.ForeignKey(
        "JourneyStep",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="outbox_emails",
        help_text=(
            "The journey step that wrote this email; blank for the trigger's "
            "own email at the firing."
        ),
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When the sweep wrote this email."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "outbox email"
        constraints = [
            # A firing writes at most one email per contact, even if its
            # actions run twice, and each journey step one more. Two
            # constraints because NULLs never conflict in a plain one.
            models.UniqueConstraint(
                fields=["firing", "contact"],
                condition=models.Q(journey_step__isnull=True),
                name="one_email_per_firing_contact",
            ),
            models.UniqueConstraint(
                fields=["firing", "journey_step", "contact"],
                condition=models.Q(journey_step__isnull=False),
                name="one_email_per_firing_step_contact",
            ),
        ]
        indexes = [
            # The periodic send job selects due pending rows and stuck sending rows.
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["status", "claimed_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.subject} to {self.to_email} ({self.status})"


class DeliveryRules(models.Model):
    """Site-wide limits on lifecycle email: a frequency cap and quiet hours.

    One row, edited in the admin. They apply to every trigger's email, not to
    sign-in links a contact asks for.
    """

    cap_emails = models.PositiveSmallIntegerField(
        default=3,
        help_text=(
            "At most this many lifecycle emails per contact in the cap window, "
            "across all triggers; 0 for no cap."
        ),
    )
    cap_window_days = models.PositiveSmallIntegerField(
        default=7, help_text="Length of the cap window in days."
    )
    max_deferral_days = models.PositiveSmallIntegerField(
        default=14,
        help_text=(
            "An email the cap or quiet hours hold back longer than this is "
            "dropped, with the reason recorded, instead of sent late."
        ),
    )
    send_from = models.TimeField(
        default=time(9, 0),
        help_text="Start of the sending window in the recipient's local time.",
    )
    send_until = models.TimeField(
        default=time(17, 0),
        help_text="End of the sending window in the recipient's local time.",
    )
    send_weekdays = models.JSONField(
        default=default_send_weekdays,
        help_text="Days email may go out, 0 for Monday to 6 for Sunday.",
    )
    default_time_zone = models.CharField(
        max_length=64,
        default="UTC",
        help_text=(
            "IANA time zone for recipients whose contact and account have none."
        ),
    )
    quiet_hours_enabled = models.BooleanField(
        default=True,
        help_text="Hold email outside the sending window until it opens.",
    )
    updated_at = models.DateTimeField(
        auto_now=True, help_text="When these rules were last changed."
    )

    class Meta:
        verbose_name = "delivery rules"
        verbose_name_plural = "delivery rules"

    def __str__(self) -> str:
        return "Delivery rules"

    def clean(self) -> None:
        """Reject values that cannot work, naming each field; sort the sending days."""
        errors: dict[str, str] = {}
        weekdays_error = _weekdays_error(self.send_weekdays)
        if weekdays_error:
            errors["send_weekdays"] = weekdays_error
        else:
            self.send_weekdays = sorted(self.send_weekdays)

        # An end earlier than the start is a window that crosses midnight.
        if self.send_from == self.send_until:
            errors["send_until"] = (
                f"The sending window starts and ends at {self.send_from:%H:%M}: set "
                "a different end, earlier than the start for a window that "
                "crosses midnight, or turn quiet hours off to send at any time."
            )
        if self.cap_emails and not self.cap_window_days:
            errors["cap_window_days"] = (
                "A cap needs a window of at least 1 day; set the days, or set the "
                "cap to 0 for no cap."
            )
        try:
            if not self.default_time_zone:
                raise ValidationError("The default time zone is required, such as UTC.")
            validate_time_zone_name(self.default_time_zone)
        except ValidationError as exc:
            errors["default_time_zone"] = " ".join(exc.messages)

        if errors:
            raise ValidationError(errors)


def _weekdays_error(weekdays: Any) -> str:
    """Return why a send_weekdays value is invalid, or "" when it is valid."""
    if not isinstance(weekdays, list) or not weekdays:
        return (
            f"Invalid sending days {weekdays!r}: choose at least one day, as a list "
            "of numbers from 0 (Monday) to 6 (Sunday), for example [0, 1, 2, 3, 4]."
        )
    invalid = [day for day in weekdays if type(day) is not int or not 0 <= day <= 6]
    if invalid:
        return (
            f"Invalid sending days {weekdays!r}: {invalid!r} are not day numbers. "
            "Use numbers from 0 (Monday) to 6 (Sunday)."
        )
    repeated = sorted({day for day in weekdays if weekdays.count(day) > 1})
    if repeated:
        names = ", ".join(WEEKDAY_NAMES[day] for day in repeated)
        return (
            f"Invalid sending days {weekdays!r}: {names} listed more than once. "
            "List each day once."
        )
    return ""


# Journeys, the actions they take and re-entry. A trigger's own course and
# email run at the firing; its journey steps run after, in order, from
# PendingStep rows (triggers.journeys).


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


class CsmTaskStatus(models.TextChoices):
    OPEN = "open", "Open"
    DONE = "done", "Done"


class CsmTask(models.Model):
    """A to-do for the CSM who owns an account, created by a journey step."""

    account = models.ForeignKey(
        "customers.Account",
        on_delete=models.CASCADE,
        related_name="csm_tasks",
        help_text="The account the task is about.",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="csm_tasks",
        help_text="The CSM who should do it: the account's owner when it was created.",
    )
    title = models.CharField(max_length=200, help_text="What to do.")
    details = models.TextField(
        blank=True, help_text="Why the task exists: the trigger and its subject."
    )
    due_on = models.DateField(help_text="The day the task should be done by.")
    status = models.CharField(
        max_length=10,
        choices=CsmTaskStatus.choices,
        default=CsmTaskStatus.OPEN,
        help_text="Open until the CSM marks it done.",
    )
    firing = models.ForeignKey(
        Firing,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="csm_tasks",
        help_text="The firing whose journey created the task.",
    )
    step = models.ForeignKey(
        JourneyStep,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="csm_tasks",
        help_text="The journey step that created the task.",
    )
    completed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the task was marked done."
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When this row was created."
    )
    updated_at = models.DateTimeField(
        auto_now=True, help_text="When this row was last changed."
    )

    class Meta:
        ordering = ["due_on", "id"]
        verbose_name = "CSM task"
        constraints = [
            # A journey step creates one task per firing.
            models.UniqueConstraint(
                fields=["firing", "step"],
                condition=models.Q(firing__isnull=False, step__isnull=False),
                name="one_csm_task_per_firing_step",
            ),
        ]
        indexes = [
            # The admin's "my open tasks" and "overdue" filters.
            models.Index(fields=["owner", "status", "due_on"]),
        ]

    def __str__(self) -> str:
        return f"{self.title} ({self.account}, due {self.due_on})"


class WebhookStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One webhook call decided by a journey step, sent later from this outbox."""

    endpoint = models.ForeignKey(
        WebhookEndpoint,
        on_delete=models.PROTECT,
        related_name="deliveries",
        help_text="The endpoint the call goes to.",
    )
    firing = models.ForeignKey(
        Firing,
        on_delete=models.CASCADE,
        related_name="webhook_deliveries",
        help_text="The firing the call describes.",
    )
    step = models.ForeignKey(
        JourneyStep,
        on_delete=models.PROTECT,
        related_name="webhook_deliveries",
        help_text="The journey step that decided the call.",
    )
    idempotency_key = models.CharField(
        max_length=64,
        unique=True,
        help_text=(
            "Sent as the Idempotency-Key header, the same on every attempt, so "
            "the receiver can drop a repeated call."
        ),
    )
    body = models.TextField(
        help_text="The JSON body, stored as sent so every attempt signs the same bytes."
    )
    status = models.CharField(
        max_length=10,
        choices=WebhookStatus.choices,
        default=WebhookStatus.PENDING,
        help_text=(
            "Pending: waiting to be sent or retried. Sending: claimed by a "
            "worker. Delivered: the endpoint answered 2xx. Failed: gave up "
            "after the last attempt."
        ),
    )
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a worker claimed this call for sending."
    )
    response_status = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="HTTP status of the last response, if any."
    )
    last_error = models.TextField(
        blank=True, help_text="The error of the last failed attempt."
    )
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="Earliest time of the next attempt; blank means at once.",
    )
    claimed_at = models.DateTimeField(
        null=True, blank=True, help_text="When a worker last claimed this call."
    )
    delivered_at = models.DateTimeField(
        null=True, blank=True, help_text="When the endpoint accepted the call."
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When the journey step wrote this call."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # One call per firing and step, even if the step's action runs twice.
            models.UniqueConstraint(
                fields=["firing", "step"], name="one_webhook_per_firing_step"
            ),
        ]
        indexes = [
            # The periodic job selects due pending rows and stuck sending rows.
            models.Index(fields=["status", "next_attempt_at"]),
            models.Index(fields=["status", "claimed_at"]),
        ]

    def __str__(self) -> str:
        return f"Webhook {self.pk} to {self.endpoint} ({self.status})"


class CrmWriteBackStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    PUSHED = "pushed", "Pushed"
    FAILED = "failed", "Failed"


class CrmWriteBack(models.Model):
    """A property value that a journey set and the CRM integration has to push.

    The value is applied to the account's or contact's properties at once;
    this row remembers that the CRM does not have it yet.
    """

    object_type = models.CharField(
        max_length=10,
        choices=PropertyObject.choices,
        help_text="Whether the property belongs to the account or to a contact.",
    )
    account = models.ForeignKey(
        "customers.Account",
        on_delete=models.CASCADE,
        related_name="crm_write_backs",
        help_text="The account, or the account of the contact.",
    )
    contact = models.ForeignKey(
        "customers.Contact",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="crm_write_backs",
        help_text="The contact, for contact properties; blank for account ones.",
    )
    property_name = models.CharField(
        max_length=100, help_text="The CRM property's internal name."
    )
    value = models.JSONField(null=True, help_text="The value to write, as JSON.")
    status = models.CharField(
        max_length=10,
        choices=CrmWriteBackStatus.choices,
        default=CrmWriteBackStatus.PENDING,
        help_text=(
            "Pending: the CRM integration has not pushed it yet. Pushed: the "
            "CRM accepted it. Failed: the CRM rejected it, see the last error."
        ),
    )
    last_error = models.TextField(
        blank=True, help_text="The CRM's error on the last failed push."
    )
    firing = models.ForeignKey(
        Firing,
        on_delete=models.CASCADE,
        related_name="crm_write_backs",
        help_text="The firing whose journey set the property.",
    )
    step = models.ForeignKey(
        JourneyStep,
        on_delete=models.PROTECT,
        related_name="crm_write_backs",
        help_text="The journey step that set the property.",
    )
    pushed_at = models.DateTimeField(
        null=True, blank=True, help_text="When the CRM accepted the value."
    )
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When the journey step set the property."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "CRM write-back"
        constraints = [
            # One row per firing, step and object, even if the step runs twice.
            models.UniqueConstraint(
                fields=["firing", "step", "account"],
                condition=models.Q(object_type="account"),
                name="one_account_write_back_per_firing_step",
            ),
            models.UniqueConstraint(
                fields=["firing", "step", "contact"],
                condition=models.Q(object_type="contact"),
                name="one_contact_write_back_per_firing_step",
            ),
            models.CheckConstraint(
                condition=(
                    models.Q(object_type="contact", contact__isnull=False)
                    | models.Q(object_type="account", contact__isnull=True)
                ),
                name="write_back_contact_matches_object_type",
            ),
        ]
        indexes = [
            # The CRM integration reads pending rows oldest first.
            models.Index(fields=["status", "created_at"]),
        ]

    def __str__(self) -> str:
        subject = self.contact or self.account
        return f"{self.property_name} on {subject} ({self.status})"
