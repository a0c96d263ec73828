"""Email templates and triggers: what CSMs configure."""

from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator
from django.db import models
from django.utils import timezone

from conditions import ConditionError, validate
from triggers.rendering import TEMPLATE_VARIABLES, compile_template

VARIABLES_HELP = ", ".join(TEMPLATE_VARIABLES)


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
    enroll_path = models.ForeignKey(
        "courses.LearningPath",
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="triggers",
        help_text=(
            "Learning path to put each recipient on; its courses open as their "
            "prerequisites are completed. Blank for none."
        ),
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
