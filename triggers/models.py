"""Triggers, their firings, email templates, the email outbox and sweeps."""

from datetime import time
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models

from conditions import ConditionError, validate
from triggers.rendering import TEMPLATE_VARIABLES, compile_template

VARIABLES_HELP = ", ".join(TEMPLATE_VARIABLES)


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
            "inactivity, for each new survey response, or once each day."
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

    def clean(self) -> None:
        try:
            validate(self.condition, self.subject_type)  # type: ignore[arg-type]
        except ConditionError as exc:
            raise ValidationError(
                {"condition": f"Invalid condition at {exc.path}: {exc.message}"},
                code="invalid_condition",
            ) from exc

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
    created_at = models.DateTimeField(
        auto_now_add=True, help_text="When the sweep wrote this email."
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name = "outbox email"
        constraints = [
            # A firing writes at most one email per contact, even if its
            # actions run twice.
            models.UniqueConstraint(
                fields=["firing", "contact"], name="one_email_per_firing_contact"
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
        default=7,
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
