"""Rows of the HubSpot sync: the connection, property mappings, links and runs."""

from django.db import models


class ObjectType(models.TextChoices):
    COMPANY = "company", "Company (account)"
    CONTACT = "contact", "Contact"
    DEAL = "deal", "Deal"
    TICKET = "ticket", "Ticket"


# Plural names of the object types, as HubSpot's API paths spell them.
PLURALS = {
    "company": "companies",
    "contact": "contacts",
    "deal": "deals",
    "ticket": "tickets",
}


def default_ticket_priorities() -> dict[str, str]:
    """Return HubSpot's ticket priorities mapped to the support ticket's."""
    return {"LOW": "low", "MEDIUM": "medium", "HIGH": "high", "URGENT": "urgent"}


class HubSpotConnection(models.Model):
    """The HubSpot account that the sync reads, and how to reach it."""

    name = models.CharField(max_length=100, unique=True)
    access_token = models.CharField(
        max_length=200,
        help_text=(
            "The access token of the HubSpot private app, starting with pat-. "
            "It needs the crm.objects.companies and crm.objects.contacts read "
            "and write scopes."
        ),
    )
    app_secret = models.CharField(
        max_length=200,
        blank=True,
        help_text=(
            "The client secret of the app that sends webhooks, used to check "
            "their X-HubSpot-Signature-v3 header; blank rejects every webhook."
        ),
    )
    host = models.URLField(
        blank=True,
        help_text=(
            "Base URL of the API; blank for https://api.hubapi.com. Set it only "
            "for a proxy or a test server."
        ),
    )
    is_active = models.BooleanField(
        default=True, help_text="Inactive connections are neither synced nor sent to."
    )
    sync_deals = models.BooleanField(
        default=False,
        help_text=(
            "Also read deals and their companies after the companies and "
            "contacts; needs the crm.objects.deals.read scope."
        ),
    )
    renewal_date_from_deals = models.BooleanField(
        default=False,
        help_text=(
            "Take each account's renewal date from the close date of its open "
            "renewal deal, instead of from a company property."
        ),
    )
    deal_type_property = models.CharField(
        max_length=100,
        default="dealtype",
        help_text="The deal property whose value tells renewals and expansions apart.",
    )
    renewal_deal_types = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            'Values of that property that mark a renewal, for example ["renewal"].'
        ),
    )
    renewal_pipelines = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "Internal ids of pipelines whose deals are all renewals, for example "
            '["renewals"]; HubSpot\'s default pipeline is "default".'
        ),
    )
    expansion_deal_types = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "Values of the deal type property that mark an expansion, for example "
            '["upgrade", "seats"].'
        ),
    )
    deal_seats_property = models.CharField(
        max_length=100,
        blank=True,
        help_text=(
            "The deal property that holds the seats an expansion adds; blank "
            "when deals do not record seats."
        ),
    )
    sync_tickets = models.BooleanField(
        default=False,
        help_text=(
            "Also read tickets into support tickets, after the contacts; needs "
            "the tickets scope."
        ),
    )
    ticket_priorities = models.JSONField(
        default=default_ticket_priorities,
        blank=True,
        help_text=(
            "HubSpot's hs_ticket_priority values mapped to low, medium, high or urgent."
        ),
    )
    ticket_topic_property = models.CharField(
        max_length=100,
        default="hs_ticket_category",
        blank=True,
        help_text="The ticket property stored as the ticket's topic; blank for none.",
    )
    ticket_closed_stages = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "Internal ids of pipeline stages that mean closed, for tickets "
            "without a closed_date; a ticket with a closed_date is closed."
        ),
    )
    learning_properties = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "The learning values pushed to HubSpot and the property that takes "
            'each, per object: {"contact": {"courses_completed": '
            '"nudgepath_courses_completed"}, "company": {...}}. Values: '
            "courses_completed, last_completion_date, current_learning_path, "
            "certification_status, learning_stage. Empty pushes none."
        ),
    )
    completion_event_template_id = models.CharField(
        max_length=40,
        blank=True,
        help_text=(
            "The id of the HubSpot timeline event template that course "
            "completions are sent as, with the tokens course, course_version, "
            "completed_at and score; blank sends none."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        from integrations.hubspot.learning import learning_property_errors

        errors = learning_property_errors(self.learning_properties)
        if errors:
            raise ValidationError({"learning_properties": errors})
        if self.completion_event_template_id and not (
            self.completion_event_template_id.isdigit()
        ):
            raise ValidationError(
                {
                    "completion_event_template_id": "An event template id is a "
                    "number, as HubSpot shows it on the template's page."
                }
            )


class ValueType(models.TextChoices):
    STRING = "string", "Text"
    NUMBER = "number", "Number (decimal)"
    INTEGER = "integer", "Whole number"
    BOOLEAN = "boolean", "Boolean (true/false)"
    DATE = "date", "Date"
    DATETIME = "datetime", "Date and time"
    ENUMERATION = "enumeration", "Enumeration (options mapped below)"


class Target(models.TextChoices):
    """The account or contact field that a HubSpot property fills."""

    NAME = "name", "Account name"
    INDUSTRY = "industry", "Account industry"
    COUNTRY = "country", "Account country (ISO code)"
    PLAN = "plan", "Account plan"
    SEATS = "seats", "Account seats"
    MRR = "mrr", "Account MRR"
    ARR = "arr", "Account ARR"
    IS_TRIAL = "is_trial", "Account is on trial"
    KICKOFF_DATE = "kickoff_date", "Account kickoff date"
    RENEWAL_DATE = "renewal_date", "Account renewal date"
    CHURNED_ON = "churned_on", "Account churn date"
    HEALTH_SCORE = "health_score", "Account health score (0-100)"
    EMAIL = "email", "Contact email"
    FIRST_NAME = "first_name", "Contact first name"
    LAST_NAME = "last_name", "Contact last name"
    ROLE = "role", "Contact role"
    IS_CHAMPION = "is_champion", "Contact is champion"
    TIME_ZONE = "time_zone", "Time zone (IANA name)"
    OWNER = "owner", "Account owner (a HubSpot owner id, matched to a CSM by email)"
    PROPERTY = "property", "Custom property"


ACCOUNT_TARGETS = frozenset(
    {
        Target.NAME,
        Target.INDUSTRY,
        Target.COUNTRY,
        Target.PLAN,
        Target.SEATS,
        Target.MRR,
        Target.ARR,
        Target.IS_TRIAL,
        Target.KICKOFF_DATE,
        Target.RENEWAL_DATE,
        Target.CHURNED_ON,
        Target.HEALTH_SCORE,
        Target.TIME_ZONE,
        Target.OWNER,
        Target.PROPERTY,
    }
)
CONTACT_TARGETS = frozenset(
    {
        Target.EMAIL,
        Target.FIRST_NAME,
        Target.LAST_NAME,
        Target.ROLE,
        Target.IS_CHAMPION,
        Target.TIME_ZONE,
        Target.PROPERTY,
    }
)


# Fields that an empty HubSpot value clears; the others keep their value.
NULLABLE_TARGETS = frozenset(
    {Target.KICKOFF_DATE, Target.RENEWAL_DATE, Target.CHURNED_ON}
)


class FieldOwner(models.TextChoices):
    """The side whose value wins when both changed a field since the last sync."""

    HUBSPOT = "hubspot", "HubSpot"
    NUDGEPATH = "nudgepath", "Nudgepath"


class PropertyMapping(models.Model):
    """A rule that fills an account or contact field from a HubSpot property."""

    connection = models.ForeignKey(
        HubSpotConnection, on_delete=models.CASCADE, related_name="mappings"
    )
    object_type = models.CharField(max_length=10, choices=ObjectType.choices)
    hubspot_property = models.CharField(
        max_length=100,
        help_text="The property's internal name in HubSpot, for example renewal_date.",
    )
    target = models.CharField(max_length=20, choices=Target.choices)
    custom_name = models.CharField(
        max_length=100,
        blank=True,
        help_text=(
            "For a custom property: its name in the account's or contact's "
            "properties; blank for the HubSpot name."
        ),
    )
    value_type = models.CharField(
        max_length=12, choices=ValueType.choices, default=ValueType.STRING
    )
    options = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "For an enumeration: HubSpot option value to stored value, for example "
            '{"enterprise": "Enterprise"}. Values missing here are rejected.'
        ),
    )
    owner = models.CharField(
        max_length=10,
        choices=FieldOwner.choices,
        default=FieldOwner.HUBSPOT,
        help_text=(
            "The side whose value wins when both HubSpot and Nudgepath changed "
            "the field since the last sync; the other value goes to the "
            "conflict log."
        ),
    )

    class Meta:
        ordering = ["connection", "object_type", "hubspot_property"]
        constraints = [
            # Two mappings of one property would each overwrite the other's field.
            models.UniqueConstraint(
                fields=["connection", "object_type", "hubspot_property"],
                name="hubspot_mapping_unique_property",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.object_type}.{self.hubspot_property} -> {self.field_name}"

    @property
    def field_name(self) -> str:
        """The account or contact field, or the custom property's name."""
        if self.target == Target.PROPERTY:
            return self.custom_name or self.hubspot_property
        return self.target

    def clean(self) -> None:
        from django.core.exceptions import ValidationError

        if self.object_type == ObjectType.DEAL:
            raise ValidationError(
                {
                    "object_type": "Deals take no property mappings; set the deal "
                    "settings of the connection instead."
                }
            )
        allowed = (
            ACCOUNT_TARGETS
            if self.object_type == ObjectType.COMPANY
            else (CONTACT_TARGETS)
        )
        if self.target and self.target not in allowed:
            raise ValidationError(
                {
                    "target": f"{self.get_target_display()} is not a field of a "
                    f"{self.object_type}; choose one of "
                    f"{', '.join(sorted(allowed))}"
                }
            )
        if self.value_type == ValueType.ENUMERATION and not isinstance(
            self.options, dict
        ):
            raise ValidationError(
                {"options": "Options must be a JSON object of option to value."}
            )


class HubSpotLink(models.Model):
    """The account or contact of a HubSpot record id, merged-away ids included."""

    connection = models.ForeignKey(
        HubSpotConnection, on_delete=models.CASCADE, related_name="links"
    )
    object_type = models.CharField(max_length=10, choices=ObjectType.choices)
    hubspot_id = models.CharField(max_length=32)
    account = models.ForeignKey(
        "customers.Account",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    contact = models.ForeignKey(
        "customers.Contact",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
    )
    merged_into = models.CharField(
        max_length=32,
        blank=True,
        help_text="The surviving HubSpot id after a merge; blank if not merged.",
    )
    archived_at = models.DateTimeField(
        null=True, blank=True, help_text="When the sync saw the record archived."
    )
    primary_company_id = models.CharField(
        max_length=32,
        blank=True,
        help_text=(
            "For a contact: the HubSpot id of its primary company at the last "
            "sync, which tells that the contact moved."
        ),
    )
    synced_values = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "HubSpot's value of each mapped field at the last sync, by field "
            "name, which tells which side changed a field since."
        ),
    )
    pushed_learning = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "The learning values that HubSpot accepted for this record, by "
            "property name; a value equal to its entry is not sent again."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["connection", "object_type", "hubspot_id"]
        constraints = [
            # Each record resolves to one account or contact; a webhook and a
            # sync linking the same record at once meet here.
            models.UniqueConstraint(
                fields=["connection", "object_type", "hubspot_id"],
                name="hubspot_link_unique_record",
            ),
        ]

    def __str__(self) -> str:
        return f"HubSpot {self.object_type} {self.hubspot_id}"


class SyncKind(models.TextChoices):
    FULL = "full", "Full"
    INCREMENTAL = "incremental", "Incremental"


class SyncStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class SyncRun(models.Model):
    """One sync of one object type, with its progress and where it stopped."""

    connection = models.ForeignKey(
        HubSpotConnection, on_delete=models.CASCADE, related_name="runs"
    )
    object_type = models.CharField(max_length=10, choices=ObjectType.choices)
    kind = models.CharField(max_length=12, choices=SyncKind.choices)
    status = models.CharField(
        max_length=10, choices=SyncStatus.choices, default=SyncStatus.QUEUED
    )
    resumed_from = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The failed run whose cursor this run started from.",
    )
    cursor = models.JSONField(
        default=dict,
        blank=True,
        help_text=(
            "Where the run is: since (milliseconds, the window's lower bound "
            "on the last-modified date), after (the page token within it) and "
            "max_modified (the latest last-modified date applied)."
        ),
    )
    fetched = models.PositiveIntegerField(default=0)
    created = models.PositiveIntegerField(default=0)
    updated = models.PositiveIntegerField(default=0)
    unchanged = models.PositiveIntegerField(default=0)
    skipped = models.PositiveIntegerField(
        default=0, help_text="Archived records and records with invalid values."
    )
    record_errors = models.JSONField(
        default=list,
        blank=True,
        help_text="The first errors of single records, which were skipped.",
    )
    warnings = models.JSONField(
        default=list,
        blank=True,
        help_text=(
            "The first problems of records that were still written, for example "
            "an owner that matches no user."
        ),
    )
    last_error = models.TextField(blank=True, help_text="Why the run failed.")
    started_at = models.DateTimeField(null=True, blank=True)
    heartbeat_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=(
            "When the worker last saved the run's progress; a running run "
            "without one for long is released and resumed."
        ),
    )
    finished_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # The next incremental run starts where the last successful one ended.
            models.Index(
                fields=["connection", "object_type", "status", "-finished_at"]
            ),
        ]

    def __str__(self) -> str:
        plural = PLURALS.get(self.object_type, f"{self.object_type} records")
        return f"{self.kind} sync of {plural} ({self.status})"


class WebhookEvent(models.Model):
    """One HubSpot webhook event, stored once by its event id."""

    connection = models.ForeignKey(
        HubSpotConnection, on_delete=models.CASCADE, related_name="webhook_events"
    )
    event_id = models.BigIntegerField()
    subscription_type = models.CharField(max_length=100)
    object_id = models.CharField(max_length=32)
    payload = models.JSONField()
    processed_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    attempts = models.PositiveSmallIntegerField(
        default=0, help_text="Times a worker tried to apply this event and failed."
    )
    next_attempt_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=(
            "When a worker tries again after HubSpot could not be reached; "
            "blank for a new event and for one that failed for good."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # HubSpot retries a delivery with the same eventId; the second
            # insert is ignored so the change is handed on once.
            models.UniqueConstraint(
                fields=["connection", "event_id"], name="hubspot_webhook_unique_event"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subscription_type} {self.object_id} (event {self.event_id})"
