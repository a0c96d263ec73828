"""Rows of the event API: the sources that may send events, and early identities."""

import secrets

from django.db import models

# Segment's write keys are 32 letters and digits; these are as long and are
# drawn from the URL-safe alphabet, about 192 bits.
WRITE_KEY_BYTES = 24


def new_write_key() -> str:
    """Return a random write key for a new event source."""
    return secrets.token_urlsafe(WRITE_KEY_BYTES)


class EventSource(models.Model):
    """A product or service that sends Segment calls, known by its write key."""

    name = models.CharField(
        max_length=100, unique=True, help_text="For example: Web app (production)."
    )
    write_key = models.CharField(
        max_length=64,
        unique=True,
        default=new_write_key,
        editable=False,
        help_text=(
            "The Segment write key of this source: set it as the write key of "
            "the Segment library, with this site's /segment URL as its host."
        ),
    )
    is_active = models.BooleanField(
        default=True,
        help_text="Calls with the write key of an inactive source are rejected.",
    )
    store_page_views = models.BooleanField(
        default=True,
        help_text='Store each page call as a "Page Viewed" usage event.',
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class PendingIdentity(models.Model):
    """Traits of a Segment userId that no group call has placed in an account yet.

    A contact belongs to an account, and Segment's usual order is identify
    (with the email) and then group (with the account). The traits wait
    here until a group call names the account, which creates the contact.
    """

    user_id = models.CharField(max_length=64, unique=True)
    traits = models.JSONField(default=dict, blank=True)
    source = models.ForeignKey(
        EventSource, null=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["user_id"]
        verbose_name_plural = "pending identities"

    def __str__(self) -> str:
        return self.user_id


# The HubSpot sync keeps its rows in its own modules.
from integrations.hubspot.crm_models import HubSpotOwner  # noqa: E402
from integrations.hubspot.models import (  # noqa: E402
    HubSpotConnection,
    HubSpotLink,
    PropertyMapping,
    SyncRun,
    WebhookEvent,
)

# Keys of the generic inbound webhook items already applied.
from integrations.inbound.models import InboundKey  # noqa: E402

# Email providers' responses about sent messages.
from integrations.provider_messages import ProviderMessage  # noqa: E402

__all__ = [
    "EventSource",
    "HubSpotConnection",
    "HubSpotLink",
    "HubSpotOwner",
    "InboundKey",
    "PendingIdentity",
    "PropertyMapping",
    "ProviderMessage",
    "SyncRun",
    "WebhookEvent",
]
