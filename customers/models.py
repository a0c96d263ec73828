"""The customer record: what sync and ingestion write and every other app reads."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models

from customers.time_zones import validate_time_zone_name


class Plan(models.TextChoices):
    BASIC = "Basic", "Basic"
    PRO = "Pro", "Pro"
    ENTERPRISE = "Enterprise", "Enterprise"


class Account(models.Model):
    """A customer company."""

    external_id = models.CharField(max_length=64, unique=True)
    name = models.CharField(max_length=200)
    industry = models.CharField(max_length=100, blank=True)
    country = models.CharField(max_length=2, blank=True)
    plan = models.CharField(max_length=20, choices=Plan.choices, default=Plan.BASIC)
    seats = models.PositiveIntegerField(default=1)
    mrr = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    arr = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    is_trial = models.BooleanField(default=False)
    signup_date = models.DateField()
    kickoff_date = models.DateField(null=True, blank=True)
    renewal_date = models.DateField(null=True, blank=True)
    churned_on = models.DateField(null=True, blank=True)
    # Latest value; the history lives in HealthScore.
    health_score = models.PositiveSmallIntegerField(null=True, blank=True)
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        help_text=(
            "IANA time zone, for example Europe/Paris, used for the quiet hours "
            "of contacts that have none of their own; blank for the site default."
        ),
    )
    properties = models.JSONField(
        default=dict,
        blank=True,
        help_text="Custom CRM properties by name, as the CRM sync writes them.",
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="owned_accounts",
        help_text="The CSM who owns this account.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        _check_time_zone(self.time_zone)


class Contact(models.Model):
    """A person at an account; learners are contacts."""

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="contacts"
    )
    external_id = models.CharField(max_length=64, unique=True)
    email = models.EmailField(unique=True)
    first_name = models.CharField(max_length=100)
    last_name = models.CharField(max_length=100, blank=True)
    role = models.CharField(max_length=100, blank=True)
    is_champion = models.BooleanField(default=False)
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        help_text=(
            "IANA time zone, for example America/New_York, used for quiet hours; "
            "blank for the account's time zone."
        ),
    )
    properties = models.JSONField(
        default=dict,
        blank=True,
        help_text="Custom CRM properties by name, as the CRM sync writes them.",
    )
    associated_accounts = models.ManyToManyField(
        Account,
        blank=True,
        related_name="associated_contacts",
        help_text=(
            "Other accounts this person is a contact of, as the CRM associates "
            "them; account triggers reach the person through each of them."
        ),
    )
    unsubscribed_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When the contact opted out of lifecycle email; blank if never.",
    )
    bounced_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text="When mail to the address last bounced hard; blank if never.",
    )
    # When the contact joined the account in the product, which team-growth
    # conditions count; created_at is only when this row was written.
    added_at = models.DateTimeField()
    user = models.OneToOneField(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="contact",
        help_text="The portal login, created on first sign-in.",
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["account", "last_name", "first_name"]
        indexes = [
            # Team-growth conditions count contacts per account by added_at.
            models.Index(fields=["account", "added_at"]),
        ]

    def __str__(self) -> str:
        return f"{self.full_name} <{self.email}>"

    def clean(self) -> None:
        _check_time_zone(self.time_zone)

    @property
    def full_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()


def _check_time_zone(name: str) -> None:
    # A bad name would only show when quiet hours are computed, long after
    # the form was saved, so forms and the admin reject it here.
    try:
        validate_time_zone_name(name)
    except ValidationError as exc:
        raise ValidationError({"time_zone": exc.messages}) from exc


class Subscription(models.Model):
    """One contract period of an account: plan, seats and money."""

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="subscriptions"
    )
    external_id = models.CharField(max_length=64, unique=True)
    started_on = models.DateField()
    ended_on = models.DateField(null=True, blank=True)
    plan = models.CharField(max_length=20, choices=Plan.choices)
    seats = models.PositiveIntegerField()
    mrr = models.DecimalField(max_digits=12, decimal_places=2)
    arr = models.DecimalField(max_digits=12, decimal_places=2)
    is_trial = models.BooleanField(default=False)
    is_upgrade = models.BooleanField(default=False)
    is_downgrade = models.BooleanField(default=False)
    churned = models.BooleanField(default=False)
    billing_frequency = models.CharField(max_length=20, blank=True)
    auto_renew = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account", "started_on"]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.plan}, {self.seats} seats)"


class UsageEvent(models.Model):
    """One thing a contact did in the product (a Segment track call)."""

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="usage_events"
    )
    contact = models.ForeignKey(
        Contact,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="usage_events",
    )
    # Source id (a Segment messageId or a dataset's row id); blank for none.
    external_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    name = models.CharField(max_length=100)
    feature = models.CharField(max_length=100, blank=True)
    occurred_at = models.DateTimeField()
    quantity = models.PositiveIntegerField(default=1)
    duration_seconds = models.PositiveIntegerField(default=0)
    error_count = models.PositiveIntegerField(default=0)
    properties = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-occurred_at"]
        indexes = [
            # Window conditions ("no usage in 10 days") scan by subject and time.
            models.Index(fields=["contact", "occurred_at"]),
            models.Index(fields=["account", "occurred_at"]),
            # Conditions on one event name in a window, such as
            # count(event "Signed In", last 10 days) == 0, read only the rows
            # of that name instead of every event of the contact in the window.
            models.Index(
                fields=["contact", "name", "occurred_at"],
                name="usage_contact_name_time",
            ),
            # Conditions over all subjects read one window of events in a
            # single pass ("which contacts used 3 features in 7 days"), and
            # PostgreSQL can turn EXISTS into a hash join over that window
            # instead of probing the table once per contact. The included
            # columns let it read the index alone.
            models.Index(
                fields=["occurred_at"],
                include=["contact", "name", "feature"],
                name="usage_time_covering",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} at {self.occurred_at:%Y-%m-%d %H:%M}"


class UsageDay(models.Model):
    """How many usage events of one name and feature a contact had on one UTC day.

    Database triggers keep these rows equal to the usage events whatever
    writes them (a single event, a bulk import, an upsert, a delete), so
    conditions and dashboards over long windows read a row per day instead
    of every event. customers.usage contains the SQL and the rebuild.
    Events without a contact are counted per account, with contact null.
    """

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="usage_days"
    )
    contact = models.ForeignKey(
        Contact,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="usage_days",
    )
    day = models.DateField()
    name = models.CharField(max_length=100)
    feature = models.CharField(max_length=100, blank=True)
    count = models.PositiveIntegerField()

    class Meta:
        constraints = [
            # The targets of the triggers' INSERT ... ON CONFLICT.
            models.UniqueConstraint(
                fields=["contact", "name", "feature", "day"],
                condition=models.Q(contact__isnull=False),
                name="one_usage_day_per_contact",
            ),
            models.UniqueConstraint(
                fields=["account", "name", "feature", "day"],
                condition=models.Q(contact__isnull=True),
                name="one_usage_day_per_account",
            ),
        ]
        indexes = [
            models.Index(fields=["account", "day"]),
            # A contact's events over a window of days, summed by the
            # dashboards' before-and-after comparisons, read from the index
            # alone instead of every roll-up row of the contact.
            models.Index(
                fields=["contact", "day"],
                include=["count"],
                condition=models.Q(contact__isnull=False),
                name="usage_day_contact_window",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} on {self.day}: {self.count}"


class TicketPriority(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class SupportTicket(models.Model):
    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="support_tickets"
    )
    contact = models.ForeignKey(
        Contact,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="support_tickets",
    )
    external_id = models.CharField(max_length=64, unique=True)
    opened_at = models.DateTimeField()
    closed_at = models.DateTimeField(null=True, blank=True)
    priority = models.CharField(max_length=10, choices=TicketPriority.choices)
    topic = models.CharField(max_length=100, blank=True)
    first_response_minutes = models.PositiveIntegerField(null=True, blank=True)
    satisfaction_score = models.PositiveSmallIntegerField(
        null=True, blank=True, help_text="CSAT, 1 to 5."
    )
    escalated = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-opened_at"]
        indexes = [models.Index(fields=["account", "opened_at"])]

    def __str__(self) -> str:
        return f"{self.external_id} ({self.priority})"


class SurveyKind(models.TextChoices):
    NPS = "nps", "NPS (0-10)"
    CSAT = "csat", "CSAT (1-5)"


class SurveyResponse(models.Model):
    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="survey_responses"
    )
    contact = models.ForeignKey(
        Contact,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="survey_responses",
    )
    external_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    kind = models.CharField(max_length=10, choices=SurveyKind.choices)
    score = models.PositiveSmallIntegerField()
    comment = models.TextField(blank=True)
    submitted_at = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-submitted_at"]
        indexes = [models.Index(fields=["contact", "kind", "submitted_at"])]
        constraints = [
            models.CheckConstraint(
                name="survey_score_in_range",
                condition=(
                    models.Q(kind="nps", score__lte=10)
                    | models.Q(kind="csat", score__gte=1, score__lte=5)
                ),
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} {self.score}"


class HealthScore(models.Model):
    """One day's health score of an account; the history behind Account.health_score."""

    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="health_scores"
    )
    scored_on = models.DateField()
    score = models.PositiveSmallIntegerField()
    # Each measure's contribution, for the admin and the account view.
    measures = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["account", "-scored_on"]
        constraints = [
            # One score per account and day, so a recomputation replaces it.
            models.UniqueConstraint(
                fields=["account", "scored_on"], name="one_health_score_per_day"
            ),
            models.CheckConstraint(
                name="health_score_0_to_100", condition=models.Q(score__lte=100)
            ),
        ]

    def __str__(self) -> str:
        return f"{self.account} {self.scored_on}: {self.score}"


class ChurnEvent(models.Model):
    account = models.ForeignKey(
        Account, on_delete=models.CASCADE, related_name="churn_events"
    )
    external_id = models.CharField(max_length=64, unique=True)
    churned_on = models.DateField()
    reason_code = models.CharField(max_length=50, blank=True)
    refund_amount = models.DecimalField(max_digits=12, decimal_places=2, default=0)
    is_reactivation = models.BooleanField(default=False)
    feedback = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-churned_on"]

    def __str__(self) -> str:
        return f"{self.account} churned {self.churned_on}"
