"""Admin pages for the event sources of the Segment-compatible API."""

from django.contrib import admin

from integrations.models import EventSource, PendingIdentity, ProviderMessage


@admin.register(EventSource)
class EventSourceAdmin(admin.ModelAdmin):
    list_display = ("name", "write_key", "is_active", "store_page_views", "created_at")
    list_filter = ("is_active",)
    search_fields = ("name",)
    # The key is generated; a person copies it from here into the Segment library.
    readonly_fields = ("write_key", "created_at", "updated_at")
    fields = ("name", "write_key", "is_active", "store_page_views", "created_at")


@admin.register(PendingIdentity)
class PendingIdentityAdmin(admin.ModelAdmin):
    list_display = ("user_id", "source", "updated_at")
    search_fields = ("user_id",)
    list_select_related = ("source",)
    readonly_fields = ("user_id", "traits", "source", "created_at", "updated_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(ProviderMessage)
class ProviderMessageAdmin(admin.ModelAdmin):
    list_display = ("created_at", "provider", "provider_message_id", "status")
    list_filter = ("provider", "status")
    search_fields = ("provider_message_id", "message_id")
    raw_id_fields = ("outbox_email",)
    readonly_fields = (
        "outbox_email",
        "message_id",
        "provider",
        "provider_message_id",
        "status",
        "recipients",
        "created_at",
    )

    def has_add_permission(self, request, obj=None) -> bool:
        return False


# Registers the admin pages of the HubSpot sync.
from integrations.hubspot import admin as hubspot_admin  # noqa: E402, F401
