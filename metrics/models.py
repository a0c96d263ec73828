"""Settings of the internal-impact figures, and scheduled email reports."""

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import models

from customers.models import Plan


class ImpactSettings(models.Model):
    """The assumptions behind the internal-impact figures, one row for the site.

    Managers edit it in the admin. docs/decisions/0012-impact-settings-model.md
    explains why these live in the database and not in the environment.
    """

    # The only row's primary key; ImpactSettings.load() creates it on first use.
    SINGLETON_PK = 1

    minutes_per_manual_session = models.PositiveIntegerField(
        default=30,
        help_text=(
            "Minutes a CSM spends on one manual training session, such as "
            "enrolling a learner by hand or walking them through a course. "
            "Each automated enrollment and each of its completions counts as "
            "one session saved."
        ),
    )
    program_started_on = models.DateField(
        null=True,
        blank=True,
        help_text=(
            "The day the automated education program started (UTC). Onboarding "
            "that began before it is compared with onboarding that began on or "
            "after it. Blank hides that comparison."
        ),
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "impact settings"
        verbose_name_plural = "impact settings"
        constraints = [
            # One row for the whole site, so every report reads the same values.
            models.CheckConstraint(
                condition=models.Q(pk=1), name="impact_settings_single_row"
            )
        ]

    def __str__(self) -> str:
        return "Impact settings"

    def save(self, *args, **kwargs) -> None:
        self.pk = self.SINGLETON_PK
        super().save(*args, **kwargs)

    @classmethod
    def load(cls) -> "ImpactSettings":
        settings, _ = cls.objects.get_or_create(pk=cls.SINGLETON_PK)
        return settings


class ReportFrequency(models.TextChoices):
    WEEKLY = "weekly", "Weekly (Monday to Sunday)"
    MONTHLY = "monthly", "Monthly (calendar month)"


def validate_recipients(value: str) -> None:
    """Reject a recipient list that is empty or has an invalid address."""
    addresses = split_recipients(value)
    if not addresses:
        raise ValidationError("Enter at least one email address.")
    invalid = []
    for address in addresses:
        try:
            validate_email(address)
        except ValidationError:
            invalid.append(address)
    if invalid:
        raise ValidationError(
            f"Invalid email address: {', '.join(invalid)}. Separate addresses "
            "with commas or new lines."
        )


def split_recipients(value: str) -> list[str]:
    """Split a list of addresses separated by commas, semicolons or new lines."""
    normalized = value.replace(";", ",").replace("\n", ",")
    return [part.strip() for part in normalized.split(",") if part.strip()]


class ReportSchedule(models.Model):
    """A report that a manager receives by email once per week or month."""

    name = models.CharField(max_length=200)
    frequency = models.CharField(
        max_length=10,
        choices=ReportFrequency.choices,
        default=ReportFrequency.WEEKLY,
        help_text=(
            "Each report covers the last full period, in UTC days, and is sent "
            "once after that period ends."
        ),
    )
    recipients = models.TextField(
        validators=[validate_recipients],
        help_text="Email addresses, separated by commas or new lines.",
    )
    include_engagement = models.BooleanField(
        default=True,
        help_text="Completion, drop-off and scores of enrollments made in the period.",
    )
    include_impact = models.BooleanField(
        default=True,
        help_text="CSM hours saved, onboarding time and accounts per CSM.",
    )
    plan = models.CharField(
        max_length=20,
        choices=Plan.choices,
        blank=True,
        help_text="Only accounts on this plan; blank for every plan.",
    )
    stage = models.ForeignKey(
        "lifecycle.Stage",
        null=True,
        blank=True,
        # A stage in use by a report cannot be deleted, so the report never
        # widens to every stage without the manager noticing.
        on_delete=models.PROTECT,
        related_name="+",
        help_text="Only accounts now in this lifecycle stage; blank for every stage.",
    )
    include_outcomes = models.BooleanField(
        default=False,
        help_text="Trained against untrained accounts, as of the period's last day.",
    )
    include_changes = models.BooleanField(
        default=False,
        help_text=(
            "Usage, health, tickets and expansion before and after training, "
            "trained against untrained, for subjects whose 30 days after "
            "training ended by the period's last day."
        ),
    )
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "pk"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        sections = (
            self.include_engagement,
            self.include_impact,
            self.include_outcomes,
            self.include_changes,
        )
        if not any(sections):
            raise ValidationError("Choose at least one section for the report.")

    @property
    def recipient_list(self) -> list[str]:
        return split_recipients(self.recipients)


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"


class ReportDelivery(models.Model):
    """One period's report of a schedule; the row that makes sending happen once."""

    schedule = models.ForeignKey(
        ReportSchedule, on_delete=models.CASCADE, related_name="deliveries"
    )
    # The UTC days the report covers, both included.
    period_start = models.DateField()
    period_end = models.DateField()
    status = models.CharField(
        max_length=10, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING
    )
    attempts = models.PositiveSmallIntegerField(default=0)
    claimed_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "report deliveries"
        ordering = ["-period_start", "schedule"]
        constraints = [
            # A second run for the same period inserts nothing, so each
            # schedule's report for a period is sent once.
            models.UniqueConstraint(
                fields=["schedule", "period_start"], name="one_delivery_per_period"
            )
        ]
        indexes = [
            # The sending task releases rows stuck in "sending" by claim time.
            models.Index(fields=["status", "claimed_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.schedule} for {self.period_start} to {self.period_end}"


class CourseTopic(models.Model):
    """A support-ticket topic that a course teaches.

    Kept in metrics rather than on the course, because only the outcome
    comparison reads it: tickets on a course's topics are compared before
    and after training. The topic must equal ``SupportTicket.topic``.
    """

    course = models.ForeignKey(
        "courses.Course", on_delete=models.CASCADE, related_name="+"
    )
    topic = models.CharField(
        max_length=100,
        help_text="A support-ticket topic, spelled as on the tickets, such as Billing.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["course", "topic"]
        constraints = [
            # Saving the same mapping twice adds nothing.
            models.UniqueConstraint(
                fields=["course", "topic"], name="topic_once_per_course"
            )
        ]

    def __str__(self) -> str:
        return f"{self.course}: {self.topic}"


class AccountDay(models.Model):
    """Usage events and support tickets of one account on one UTC day.

    The dashboard's outcome comparison reads this instead of the events and
    tickets, one row per account and day. Database triggers on the usage
    event and support ticket tables keep it equal to them (metrics.rollups),
    so no code path has to update it. A row whose counts both fall to zero
    is deleted.
    """

    account = models.ForeignKey(
        "customers.Account", on_delete=models.CASCADE, related_name="+"
    )
    day = models.DateField()
    usage_events = models.PositiveIntegerField(default=0)
    tickets = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            # The triggers' upserts resolve conflicts on this key, and the
            # first-usage lookup seeks it by account and day.
            models.UniqueConstraint(fields=["account", "day"], name="account_day_once")
        ]
        indexes = [
            # Ticket sums per account read only the days with tickets, a
            # few dozen rows per account instead of every day with usage,
            # and from the index alone, since the count is one of its keys.
            models.Index(
                fields=["account", "day", "tickets"],
                condition=models.Q(tickets__gt=0),
                name="account_day_tickets",
            )
        ]

    def __str__(self) -> str:
        return f"{self.account_id} on {self.day}"


# The fact models below hold rows that metrics.facts rewrites in full. Their
# foreign keys have no database constraint, because checking about 350,000
# rows at each refresh's commit took seconds; Django still cascades deletes.
# Migration 0007 makes their tables unlogged on PostgreSQL.


class AccountFact(models.Model):
    """Dates of one account that the outcome comparison reads, as of the last refresh.

    Each field is a date or an instant, never a flag evaluated on a day, so
    one refresh serves the comparison as of any day. metrics.facts refreshes
    every row from the source tables, and FactRefresh records when.
    """

    account = models.OneToOneField(
        "customers.Account",
        on_delete=models.CASCADE,
        primary_key=True,
        db_constraint=False,
        related_name="dashboard_fact",
    )
    # The first UTC day with a usage event on or after the signup date.
    first_usage_day = models.DateField(null=True)
    first_churn_event_day = models.DateField(null=True)
    # The earliest completion of any course by any contact of the account,
    # and whether a completed enrollment has no completion time.
    first_completed_at = models.DateTimeField(null=True)
    has_undated_completion = models.BooleanField(default=False)
    # The UTC day of the first stage change out of onboarding.
    left_onboarding_day = models.DateField(null=True)

    def __str__(self) -> str:
        return f"Facts of account {self.account_id}"


class CourseCompletionFact(models.Model):
    """The first completion of one course by any contact of one account.

    Only pairs with a completed enrollment have a row.
    """

    course = models.ForeignKey(
        "courses.Course",
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    account = models.ForeignKey(
        "customers.Account",
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="course_completion_facts",
    )
    first_completed_at = models.DateTimeField(null=True)
    has_undated_completion = models.BooleanField(default=False)

    class Meta:
        constraints = [
            # One row per pair; the comparison for a course seeks it by course
            # and joins on the account.
            models.UniqueConstraint(
                fields=["course", "account"], name="course_completion_fact_once"
            )
        ]

    def __str__(self) -> str:
        return f"Course {self.course_id} completed by account {self.account_id}"


class ModuleActivityFact(models.Model):
    """Lesson progress of one enrollment in one module, summed over its lessons.

    The engagement report's activity per module reads these rows instead of
    every lesson's progress joined to its enrollment, contact and account.
    ``course``, ``account`` and ``enrolled_at`` are the enrollment's, so the
    report's scope applies without a join.
    """

    enrollment = models.ForeignKey(
        "courses.Enrollment",
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    module = models.ForeignKey(
        "courses.Module",
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    course = models.ForeignKey(
        "courses.Course",
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    account = models.ForeignKey(
        "customers.Account",
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    enrolled_at = models.DateTimeField()
    views = models.PositiveIntegerField()
    # Views of a lesson beyond the first, summed over the module's lessons.
    repeat_views = models.PositiveIntegerField()
    seconds = models.PositiveIntegerField()
    # Whether a lesson was viewed, viewed more than once, or has time recorded.
    viewed = models.BooleanField()
    repeated = models.BooleanField()
    timed = models.BooleanField()

    class Meta:
        constraints = [
            # A refresh inserts each pair once.
            models.UniqueConstraint(
                fields=["enrollment", "module"], name="module_activity_fact_once"
            )
        ]

    def __str__(self) -> str:
        return f"Enrollment {self.enrollment_id} in module {self.module_id}"


class EnrollmentFact(models.Model):
    """One enrollment's status, furthest module and course score bin.

    The engagement report counts enrollments per course, status, furthest
    module and score bin from these rows, in one scan without joins,
    instead of scanning the enrollments joined to their contact, account
    and furthest lesson for each figure. ``course``, ``account`` and
    ``enrolled_at`` are the enrollment's, so the report's scope applies
    as it does to the enrollments.
    """

    enrollment = models.OneToOneField(
        "courses.Enrollment",
        on_delete=models.CASCADE,
        primary_key=True,
        db_constraint=False,
        related_name="+",
    )
    course = models.ForeignKey(
        "courses.Course",
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    account = models.ForeignKey(
        "customers.Account",
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    enrolled_at = models.DateTimeField()
    status = models.CharField(max_length=20)
    # The module of the furthest lesson reached, null when none is recorded.
    furthest_module = models.ForeignKey(
        "courses.Module",
        null=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    # metrics.scores' bin of Enrollment.score, or null without a score.
    score_bin = models.SmallIntegerField(null=True)

    def __str__(self) -> str:
        return f"Facts of enrollment {self.enrollment_id}"


class LessonScoreFact(models.Model):
    """How many lesson scores of one enrollment fall in one score bin.

    ``score_bin`` is metrics.scores' bin index, or its OUT_OF_RANGE key.
    """

    enrollment = models.ForeignKey(
        "courses.Enrollment",
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    course = models.ForeignKey(
        "courses.Course",
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    account = models.ForeignKey(
        "customers.Account",
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    enrolled_at = models.DateTimeField()
    score_bin = models.SmallIntegerField()
    scores = models.PositiveIntegerField()

    class Meta:
        constraints = [
            # A refresh inserts each pair once.
            models.UniqueConstraint(
                fields=["enrollment", "score_bin"], name="lesson_score_fact_once"
            )
        ]

    def __str__(self) -> str:
        return f"Enrollment {self.enrollment_id}, bin {self.score_bin}"


class TrainingFact(models.Model):
    """When one contact or account first met a training rule.

    A rule is started, completed or passed on one course, on any course
    (``course`` and ``path`` both null) or on one learning path. An account
    meets it when any of its contacts does. The changes around training
    read its trained and untrained subjects here instead of grouping
    enrollments, attempts or path enrollments on each request.
    """

    level = models.CharField(max_length=7)
    subject_id = models.BigIntegerField()
    # The subject's account (the subject itself at account level), for the scope.
    account = models.ForeignKey(
        "customers.Account",
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    rule = models.CharField(max_length=10)
    course = models.ForeignKey(
        "courses.Course",
        null=True,
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    path = models.ForeignKey(
        "courses.LearningPath",
        null=True,
        on_delete=models.CASCADE,
        db_constraint=False,
        related_name="+",
    )
    first_at = models.DateTimeField()
    # The subject's outcomes around the UTC day of first_at, as the changes
    # around training measure them (metrics.windows). ``measured`` is false
    # when the contact was added, or the account signed up, after its window
    # before training began; the figures are then null. Contacts have usage
    # events in each window; accounts have the last health score in each
    # window, whether a subscription expanded them, and their tickets in each
    # window as {topic: [before, after]}.
    measured = models.BooleanField(db_default=False)
    usage_before = models.PositiveIntegerField(null=True)
    usage_after = models.PositiveIntegerField(null=True)
    health_before = models.PositiveSmallIntegerField(null=True)
    health_after = models.PositiveSmallIntegerField(null=True)
    expanded_before = models.BooleanField(null=True)
    expanded_after = models.BooleanField(null=True)
    topic_tickets = models.JSONField(null=True)
    # The subject's place in the hashed sample (metrics.cohorts.sample_key),
    # stored so that the indexes below return a cohort in sample order.
    sample_key = models.BigIntegerField()

    class Meta:
        indexes = [
            # A cohort's trained rows are read by rule, course or path and
            # level, and the untrained test each subject against them. With
            # first_at in the index, and the table vacuumed after each
            # refresh, the untrained are counted and sampled from the index
            # alone, in about half the time of scanning the table. With
            # account too, the trained of a plan, stage or segment are
            # counted from it, where PostgreSQL scanned the whole table.
            models.Index(
                fields=["rule", "course", "path", "level", "subject_id"],
                include=["first_at", "account"],
                name="training_fact_cohort",
            ),
            # The trained sample of a course, or of any course, is its first
            # rows by sample_key. These indexes return them in that order, so
            # PostgreSQL stops after the sample instead of sorting the whole
            # cohort. A column compared with IS NULL does not keep an index's
            # order, so each kind of cohort has an index whose condition
            # contains those comparisons. Path cohorts, which are small, have
            # none.
            models.Index(
                fields=["rule", "level", "course", "sample_key", "subject_id"],
                condition=models.Q(path__isnull=True),
                name="training_fact_course_sample",
            ),
            models.Index(
                fields=["rule", "level", "sample_key", "subject_id"],
                condition=models.Q(course__isnull=True, path__isnull=True),
                name="training_fact_any_sample",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.level} {self.subject_id} {self.rule} at {self.first_at}"


class FactRefresh(models.Model):
    """When the dashboard's precomputed facts were last refreshed; one row."""

    SINGLETON_PK = 1

    refreshed_at = models.DateTimeField()
    accounts = models.PositiveIntegerField()
    duration_ms = models.PositiveIntegerField()

    class Meta:
        constraints = [
            # One row, so every reader sees the same refresh time.
            models.CheckConstraint(
                condition=models.Q(pk=1), name="fact_refresh_single_row"
            )
        ]

    def __str__(self) -> str:
        return f"Facts refreshed at {self.refreshed_at:%Y-%m-%d %H:%M} UTC"

    @classmethod
    def last(cls) -> "FactRefresh | None":
        """Return the last refresh, or None when the facts were never computed."""
        return cls.objects.filter(pk=cls.SINGLETON_PK).first()
