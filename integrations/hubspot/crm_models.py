"""Rows the HubSpot sync keeps beside the customer record: owners."""

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
