"""The status that an email provider returned for each message it was sent.

With an email provider configured (config/email.py), django-anymail
sends anymail.signals.post_send after each API call, with the provider's
message id and status for every recipient. The receiver here stores one
ProviderMessage per call, tied to the outbox row by the Message-ID header
that the outbox sets, so a person can find the message in the provider's
logs and a later bounce or complaint can be matched to the email.
"""

import logging
from typing import Any

from django.db import DatabaseError, models

logger = logging.getLogger(__name__)


class ProviderMessage(models.Model):
    """One message as an email provider accepted or rejected it."""

    outbox_email = models.ForeignKey(
        "triggers.OutboxEmail",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        help_text="The outbox row whose Message-ID the message carried.",
    )
    message_id = models.CharField(
        max_length=200,
        blank=True,
        help_text="The Message-ID header that Nudgepath set, blank without one.",
    )
    provider = models.CharField(
        max_length=50,
        help_text="The email provider as django-anymail names it, for example Mailgun.",
    )
    provider_message_id = models.CharField(
        max_length=200,
        blank=True,
        help_text="The provider's id of the message; blank when it gave none.",
    )
    status = models.CharField(
        max_length=100,
        help_text=(
            "The provider's status of the message: queued, sent, rejected, "
            "failed, invalid, scheduled or unknown; several joined by commas "
            "when recipients differ."
        ),
    )
    recipients = models.JSONField(
        default=dict,
        blank=True,
        help_text="Each recipient's status and message id, by email address.",
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # A provider's event names its message id; it is looked up here.
            models.Index(fields=["provider", "provider_message_id"]),
        ]

    def __str__(self) -> str:
        return f"{self.provider} message {self.provider_message_id or '(no id)'}"


def record_provider_status(
    sender: Any, message: Any, status: Any, esp_name: str, **kwargs: Any
) -> None:
    """Store the provider's response to one sent message; receiver of post_send.

    An error here is logged and not raised: the message has left already,
    and raising would make the outbox count it failed and send it again.
    """
    from triggers.models import OutboxEmail

    message_id = str(getattr(message, "extra_headers", {}).get("Message-ID", ""))
    recipients = {
        email: {"status": item.status, "message_id": item.message_id}
        for email, item in (status.recipients or {}).items()
    }
    try:
        ProviderMessage.objects.create(
            outbox_email=(
                OutboxEmail.objects.filter(message_id=message_id).first()
                if message_id
                else None
            ),
            message_id=message_id[:200],
            provider=esp_name[:50],
            provider_message_id=_joined(status.message_id)[:200],
            status=_joined(status.status)[:100],
            recipients=recipients,
        )
    except DatabaseError:
        logger.exception(
            "Could not store %s's status of message %s", esp_name, message_id
        )


def _joined(value: Any) -> str:
    """Return a value of AnymailStatus as text: a set becomes sorted, comma-joined."""
    if value is None:
        return ""
    if isinstance(value, set | frozenset | list | tuple):
        return ",".join(sorted(str(item) for item in value if item is not None))
    return str(value)
