"""Rows the HubSpot sync keeps beside the customer record.

They are owners, deals, the conflict log of mapped fields and the moves
of contacts between accounts.
"""

from django.conf import settings
from django.db import models


class HubSpotOwner(models.Model):
    """A HubSpot owner (a user who can own CRM records) and the CSM it maps to.

    HubSpot's owner id, not its user id, is what hubspot_owner_id holds.
    The user is matched by email, ignoring case, among active staff users.
    An owner that matches none, or more than one, keeps no user. The admin
    lists it as unmatched, and a person may pick the user there.
    """

    connection = models.ForeignKey(
        "integrations.HubSpotConnection",
        on_delete=models.CASCADE,
        related_name="owners",
    )
    owner_id = models.CharField(max_length=32)
    email = models.EmailField(blank=True)
    first_name = models.CharField(max_length=100, blank=True)
    last_name = models.CharField(max_length=100, blank=True)
    archived = models.BooleanField(
        default=False, help_text="HubSpot deactivated the owner's user."
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text=(
            "The CSM who owns the accounts of this HubSpot owner; blank when no "
            "staff user has the owner's email."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["connection", "email"]
        constraints = [
            # The owner read is an upsert by HubSpot's owner id.
            models.UniqueConstraint(
                fields=["connection", "owner_id"], name="hubspot_owner_unique_id"
            ),
        ]

    def __str__(self) -> str:
        return f"HubSpot owner {self.owner_id} <{self.email}>"


class DealKind(models.TextChoices):
    RENEWAL = "renewal", "Renewal"
    EXPANSION = "expansion", "Expansion"
    OTHER = "other", "Other"


class HubSpotDeal(models.Model):
    """A HubSpot deal as last read, with the account of its company.

    The connection's settings decide the kind: a renewal sets its account's
    renewal date while it is open, and a won expansion is recorded as an
    upgrade subscription of its account.
    """

    connection = models.ForeignKey(
        "integrations.HubSpotConnection",
        on_delete=models.CASCADE,
        related_name="deals",
    )
    hubspot_id = models.CharField(max_length=32)
    name = models.CharField(max_length=200, blank=True)
    pipeline = models.CharField(max_length=100, blank=True)
    stage = models.CharField(max_length=100, blank=True)
    deal_type = models.CharField(max_length=100, blank=True)
    kind = models.CharField(
        max_length=10, choices=DealKind.choices, default=DealKind.OTHER
    )
    amount = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    close_date = models.DateField(null=True, blank=True)
    is_closed = models.BooleanField(default=False)
    is_won = models.BooleanField(default=False)
    seats_added = models.IntegerField(null=True, blank=True)
    company_id = models.CharField(
        max_length=32, blank=True, help_text="The HubSpot id of the deal's company."
    )
    account = models.ForeignKey(
        "customers.Account",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    modified_at = models.DateTimeField(
        null=True, blank=True, help_text="The deal's last-modified date in HubSpot."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["connection", "-close_date"]
        constraints = [
            # Applying a deal is an upsert by its HubSpot id.
            models.UniqueConstraint(
                fields=["connection", "hubspot_id"], name="hubspot_deal_unique_id"
            ),
        ]
        indexes = [
            # The renewal date reads an account's open renewal deals.
            models.Index(fields=["account", "kind", "is_closed"]),
        ]

    def __str__(self) -> str:
        return f"HubSpot deal {self.hubspot_id} {self.name}"


class FieldConflict(models.Model):
    """A mapped field that both sides changed since the last sync.

    The mapping's owner won. The row keeps both values and the one of the
    last sync, so a person can restore the losing value by hand.
    """

    connection = models.ForeignKey(
        "integrations.HubSpotConnection",
        on_delete=models.CASCADE,
        related_name="conflicts",
    )
    object_type = models.CharField(max_length=10)
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
    field_name = models.CharField(max_length=100)
    hubspot_property = models.CharField(max_length=100)
    owner = models.CharField(
        max_length=10, help_text="The side that owns the field, whose value stands."
    )
    hubspot_value = models.JSONField(null=True, blank=True)
    nudgepath_value = models.JSONField(null=True, blank=True)
    synced_value = models.JSONField(
        null=True, blank=True, help_text="HubSpot's value at the sync before."
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"{self.field_name} of HubSpot {self.object_type} {self.hubspot_id}"

    @property
    def losing_value(self) -> object:
        """The value that did not stand: the side that does not own the field."""
        if self.owner == "hubspot":
            return self.nudgepath_value
        return self.hubspot_value


class ContactMove(models.Model):
    """A contact that moved to another account because its HubSpot company changed."""

    connection = models.ForeignKey(
        "integrations.HubSpotConnection",
        on_delete=models.CASCADE,
        related_name="contact_moves",
    )
    contact = models.ForeignKey(
        "customers.Contact", on_delete=models.CASCADE, related_name="+"
    )
    from_account = models.ForeignKey(
        "customers.Account",
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    to_account = models.ForeignKey(
        "customers.Account",
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    from_company_id = models.CharField(max_length=32)
    to_company_id = models.CharField(max_length=32)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return (
            f"contact {self.contact_id}: account {self.from_account_id} to "
            f"{self.to_account_id}"
        )


class TimelineEventSent(models.Model):
    """A course completion sent to HubSpot as a timeline event, or why it failed."""

    connection = models.ForeignKey(
        "integrations.HubSpotConnection",
        on_delete=models.CASCADE,
        related_name="timeline_events",
    )
    enrollment = models.ForeignKey(
        "courses.Enrollment", on_delete=models.CASCADE, related_name="+"
    )
    course_version = models.PositiveIntegerField(
        help_text="The course version completed; a recertification is a new event."
    )
    event_id = models.CharField(
        max_length=100, help_text="The event's id at HubSpot, unique per template."
    )
    hubspot_contact_id = models.CharField(max_length=32)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(
        blank=True,
        help_text=(
            "HubSpot's reason for rejecting the event; delete the row to send it again."
        ),
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # Each completion of a version is sent once per connection.
            models.UniqueConstraint(
                fields=["connection", "enrollment", "course_version"],
                name="hubspot_timeline_event_once",
            ),
        ]

    def __str__(self) -> str:
        return f"timeline event {self.event_id}"
