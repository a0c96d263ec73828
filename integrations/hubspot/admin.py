"""Admin pages of the HubSpot connection, its property mappings and sync runs."""

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest

from integrations.hubspot.crm_models import (
    ContactMove,
    FieldConflict,
    HubSpotDeal,
    HubSpotOwner,
    TimelineEventSent,
)
from integrations.hubspot.models import (
    HubSpotConnection,
    HubSpotLink,
    PropertyMapping,
    SyncKind,
    SyncRun,
    SyncStatus,
    WebhookEvent,
)
from integrations.hubspot.owners import refresh_owners
from integrations.hubspot.services import resume_sync, start_sync

DEAL_SETTINGS: list[Any] = [
    "sync_deals",
    "renewal_date_from_deals",
    "deal_type_property",
    "renewal_deal_types",
    "renewal_pipelines",
    "expansion_deal_types",
    "deal_seats_property",
]
TICKET_SETTINGS: list[Any] = [
    "sync_tickets",
    "ticket_priorities",
    "ticket_topic_property",
    "ticket_closed_stages",
]

# Characters of a secret shown at its end, so a person can tell tokens apart.
SHOWN_SECRET_CHARACTERS = 4


def masked(secret: str) -> str:
    """Return the secret with all but its last characters replaced."""
    if not secret:
        return "(not set)"
    return "•" * 8 + secret[-SHOWN_SECRET_CHARACTERS:]


class ConnectionForm(forms.ModelForm):
    """Secrets are written, never shown; a blank field keeps the stored value."""

    access_token = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=HubSpotConnection._meta.get_field("access_token").help_text
        + " Leave blank to keep the stored token.",
    )
    app_secret = forms.CharField(
        required=False,
        widget=forms.PasswordInput(render_value=False),
        help_text=HubSpotConnection._meta.get_field("app_secret").help_text
        + " Leave blank to keep the stored secret.",
    )

    host = forms.URLField(
        required=False,
        assume_scheme="https",
        help_text=HubSpotConnection._meta.get_field("host").help_text,
    )

    class Meta:
        model = HubSpotConnection
        fields = [
            "name",
            "access_token",
            "app_secret",
            "host",
            "is_active",
            *DEAL_SETTINGS,
            *TICKET_SETTINGS,
        ]

    def clean_access_token(self) -> str:
        token = self.cleaned_data["access_token"] or self.instance.access_token
        if not token:
            raise forms.ValidationError(
                "The access token is missing; copy it from the private app in HubSpot."
            )
        return token

    def clean_app_secret(self) -> str:
        return self.cleaned_data["app_secret"] or self.instance.app_secret


class MappingInline(admin.TabularInline):
    model = PropertyMapping
    extra = 1
    fields = [
        "object_type",
        "hubspot_property",
        "target",
        "custom_name",
        "value_type",
        "options",
        "owner",
    ]


@admin.register(HubSpotConnection)
class HubSpotConnectionAdmin(admin.ModelAdmin):
    form = ConnectionForm
    list_display = ["name", "token", "host", "is_active", "updated_at"]
    readonly_fields = ["token", "secret"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "name",
                    "token",
                    "access_token",
                    "secret",
                    "app_secret",
                    "host",
                    "is_active",
                ]
            },
        ),
        ("Deals", {"fields": DEAL_SETTINGS}),
        ("Tickets", {"fields": TICKET_SETTINGS}),
        (
            "Learning write-back",
            {"fields": ["learning_properties", "completion_event_template_id"]},
        ),
    ]
    inlines = [MappingInline]
    actions = ["sync_changes", "sync_everything", "read_owners", "push_learning"]

    @admin.display(description="Stored access token")
    def token(self, obj: HubSpotConnection) -> str:
        return masked(obj.access_token)

    @admin.display(description="Stored app secret")
    def secret(self, obj: HubSpotConnection) -> str:
        return masked(obj.app_secret)

    @admin.action(description="Sync changes since the last run")
    def sync_changes(
        self, request: HttpRequest, queryset: QuerySet[HubSpotConnection]
    ) -> None:
        self._start(request, queryset, SyncKind.INCREMENTAL)

    @admin.action(description="Sync all records (a full sync)")
    def sync_everything(
        self, request: HttpRequest, queryset: QuerySet[HubSpotConnection]
    ) -> None:
        self._start(request, queryset, SyncKind.FULL)

    @admin.action(description="Read owners and match them to CSMs")
    def read_owners(
        self, request: HttpRequest, queryset: QuerySet[HubSpotConnection]
    ) -> None:
        # A few requests per connection, so they run here instead of in a task.
        for connection in queryset.filter(is_active=True):
            result = refresh_owners(connection)
            level = messages.WARNING if result.unmatched else messages.SUCCESS
            unmatched = ", ".join(result.unmatched) or "none"
            self.message_user(
                request,
                f"{connection}: {result.created} owners added, {result.updated} "
                f"changed; without a matching user: {unmatched}",
                level,
            )

    @admin.action(description="Push learning values and completions now")
    def push_learning(
        self, request: HttpRequest, queryset: QuerySet[HubSpotConnection]
    ) -> None:
        from integrations.hubspot.tasks import push_learning_properties

        # The task pushes for every active connection that has settings.
        transaction.on_commit(lambda: push_learning_properties.delay())
        self.message_user(request, "Learning push queued.")

    def _start(
        self, request: HttpRequest, queryset: QuerySet[HubSpotConnection], kind: str
    ) -> None:
        for connection in queryset.filter(is_active=True):
            start_sync(connection, kind)
        self.message_user(request, "Sync queued; its runs are listed under Sync runs.")


@admin.register(SyncRun)
class SyncRunAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "connection",
        "object_type",
        "kind",
        "status",
        "fetched",
        "created",
        "updated",
        "skipped",
        "finished_at",
    ]
    list_filter = ["status", "object_type", "kind"]
    list_select_related = ["connection"]
    readonly_fields = [field.name for field in SyncRun._meta.fields]
    actions = ["resume"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: SyncRun | None = None
    ) -> bool:
        return False

    @admin.action(description="Resume failed runs from their cursor")
    def resume(self, request: HttpRequest, queryset: QuerySet[SyncRun]) -> None:
        failed = list(queryset.filter(status=SyncStatus.FAILED))
        for run in failed:
            resume_sync(run)
        level = messages.SUCCESS if failed else messages.WARNING
        self.message_user(request, f"Resumed {len(failed)} failed runs.", level)


@admin.register(HubSpotLink)
class HubSpotLinkAdmin(admin.ModelAdmin):
    list_display = [
        "hubspot_id",
        "object_type",
        "account",
        "contact",
        "merged_into",
        "archived_at",
    ]
    list_filter = ["object_type"]
    search_fields = ["hubspot_id", "account__name", "contact__email"]
    list_select_related = ["account", "contact"]
    readonly_fields = [
        "connection",
        "object_type",
        "hubspot_id",
        "account",
        "contact",
        "merged_into",
        "archived_at",
    ]


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = [
        "event_id",
        "subscription_type",
        "object_id",
        "processed_at",
        "attempts",
        "next_attempt_at",
        "last_error",
    ]
    list_filter = ["subscription_type"]
    search_fields = ["object_id"]
    readonly_fields = [field.name for field in WebhookEvent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(HubSpotOwner)
class HubSpotOwnerAdmin(admin.ModelAdmin):
    """Owners read from HubSpot; an unmatched owner may be given a user here."""

    list_display = ["owner_id", "email", "first_name", "last_name", "archived", "user"]
    list_filter = [("user", admin.EmptyFieldListFilter), "archived"]
    search_fields = ["owner_id", "email"]
    list_select_related = ["user"]
    readonly_fields = [
        "connection",
        "owner_id",
        "email",
        "first_name",
        "last_name",
        "archived",
    ]
    raw_id_fields = ["user"]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False


@admin.register(HubSpotDeal)
class HubSpotDealAdmin(admin.ModelAdmin):
    list_display = [
        "hubspot_id",
        "name",
        "kind",
        "account",
        "close_date",
        "amount",
        "is_closed",
        "is_won",
    ]
    list_filter = ["kind", "is_closed", "is_won", "pipeline"]
    search_fields = ["hubspot_id", "name", "account__name"]
    list_select_related = ["account"]
    readonly_fields = [field.name for field in HubSpotDeal._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: HubSpotDeal | None = None
    ) -> bool:
        return False


@admin.register(FieldConflict)
class FieldConflictAdmin(admin.ModelAdmin):
    """The conflict log: fields that both sides changed, and the value that lost."""

    list_display = [
        "created_at",
        "object_type",
        "hubspot_id",
        "account",
        "contact",
        "field_name",
        "owner",
        "hubspot_value",
        "nudgepath_value",
    ]
    list_filter = ["owner", "object_type", "field_name"]
    search_fields = ["hubspot_id", "account__name", "contact__email", "field_name"]
    list_select_related = ["account", "contact"]
    readonly_fields = [field.name for field in FieldConflict._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: FieldConflict | None = None
    ) -> bool:
        return False


@admin.register(ContactMove)
class ContactMoveAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "contact",
        "from_account",
        "to_account",
        "from_company_id",
        "to_company_id",
    ]
    search_fields = ["contact__email", "from_company_id", "to_company_id"]
    list_select_related = ["contact", "from_account", "to_account"]
    readonly_fields = [field.name for field in ContactMove._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(
        self, request: HttpRequest, obj: ContactMove | None = None
    ) -> bool:
        return False


@admin.register(TimelineEventSent)
class TimelineEventSentAdmin(admin.ModelAdmin):
    list_display = ["event_id", "hubspot_contact_id", "sent_at", "last_error"]
    list_filter = ["connection"]
    search_fields = ["event_id", "hubspot_contact_id"]
    # Deleting a row sends its completion again at the next push.
    readonly_fields = [field.name for field in TimelineEventSent._meta.fields]

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False
