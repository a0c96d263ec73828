"""Sweeps, backtest runs, firings and the email outbox: what the engine records."""

from django.conf import settings
from django.db import models

from triggers.models.programs import EmailTemplate, SubjectType, Trigger


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
