"""The idempotency keys of inbound webhook items already applied."""

from django.db import models


class InboundKey(models.Model):
    """An item key that an event source sent and that was applied once."""

    source = models.ForeignKey(
        "integrations.EventSource", on_delete=models.CASCADE, related_name="+"
    )
    key = models.CharField(max_length=200)
    item_type = models.CharField(max_length=30)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            # A retried request, or two at once, applies an item once.
            models.UniqueConstraint(
                fields=["source", "key"], name="inbound_key_unique_per_source"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.item_type} {self.key}"
