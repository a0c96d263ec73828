"""Admin pages for the customer record.

Rows that ingestion and the health computation write (usage events,
health scores) are read-only here, so a hand edit cannot drift from their
source. Every list page joins its related rows, so its query count does not
grow with the rows shown. Every page shows a CSM only the rows of the
accounts they own (customers.roles).
"""

from django.contrib import admin

from customers.models import (
    Account,
    ChurnEvent,
    Contact,
    HealthScore,
    Subscription,
    SupportTicket,
    SurveyResponse,
    UsageEvent,
)
from customers.roles import OwnedAccountsAdmin


class ReadOnlyAdmin(OwnedAccountsAdmin):
    """A list and detail view without add or change."""

    def has_add_permission(self, request, obj=None) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False


class ContactInline(admin.TabularInline):
    model = Contact
    extra = 0
    can_delete = False
    show_change_link = True
    fields = ("first_name", "last_name", "email", "role", "is_champion", "added_at")
    # Contacts are edited on their own page. Only the champion flag is editable here.
    readonly_fields = ("first_name", "last_name", "email", "role", "added_at")

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(OwnedAccountsAdmin):
    account_field = ""
    list_display = (
        "name",
        "external_id",
        "plan",
        "seats",
        "mrr",
        "health_score",
        "owner",
        "signup_date",
        "renewal_date",
        "churned_on",
    )
    list_filter = ("plan", "is_trial", "owner", "industry", "country")
    list_select_related = ("owner",)
    search_fields = ("name", "external_id")
    date_hierarchy = "signup_date"
    raw_id_fields = ("owner",)
    readonly_fields = ("health_score", "created_at", "updated_at")
    inlines = [ContactInline]


@admin.register(Contact)
class ContactAdmin(OwnedAccountsAdmin):
    list_display = ("email", "full_name", "account", "role", "is_champion", "added_at")
    list_filter = ("is_champion",)
    list_select_related = ("account",)
    search_fields = ("email", "first_name", "last_name", "external_id", "account__name")
    raw_id_fields = ("account",)
    # The portal creates the contact's user at first sign-in. Setting it by
    # hand could tie a contact's sign-in links to a staff user.
    readonly_fields = ("user", "created_at", "updated_at")


@admin.register(Subscription)
class SubscriptionAdmin(OwnedAccountsAdmin):
    list_display = (
        "external_id",
        "account",
        "plan",
        "seats",
        "mrr",
        "started_on",
        "ended_on",
        "is_trial",
        "is_upgrade",
        "churned",
    )
    list_filter = ("plan", "is_trial", "is_upgrade", "is_downgrade", "churned")
    list_select_related = ("account",)
    search_fields = ("external_id", "account__name", "account__external_id")
    date_hierarchy = "started_on"
    raw_id_fields = ("account",)


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = ("name", "feature", "account", "contact", "occurred_at", "quantity")
    list_select_related = ("account", "contact")
    search_fields = ("name", "feature", "external_id", "account__name")
    date_hierarchy = "occurred_at"


@admin.register(SupportTicket)
class SupportTicketAdmin(OwnedAccountsAdmin):
    list_display = (
        "external_id",
        "account",
        "priority",
        "topic",
        "opened_at",
        "closed_at",
        "satisfaction_score",
        "escalated",
    )
    list_filter = ("priority", "escalated")
    list_select_related = ("account",)
    search_fields = ("external_id", "topic", "account__name")
    date_hierarchy = "opened_at"
    raw_id_fields = ("account", "contact")


@admin.register(SurveyResponse)
class SurveyResponseAdmin(OwnedAccountsAdmin):
    list_display = ("kind", "score", "account", "contact", "submitted_at")
    list_filter = ("kind",)
    list_select_related = ("account", "contact")
    search_fields = ("account__name", "contact__email", "comment")
    date_hierarchy = "submitted_at"
    raw_id_fields = ("account", "contact")


@admin.register(HealthScore)
class HealthScoreAdmin(ReadOnlyAdmin):
    list_display = ("account", "scored_on", "score")
    list_select_related = ("account",)
    search_fields = ("account__name", "account__external_id")
    date_hierarchy = "scored_on"


@admin.register(ChurnEvent)
class ChurnEventAdmin(OwnedAccountsAdmin):
    list_display = (
        "account",
        "churned_on",
        "reason_code",
        "refund_amount",
        "is_reactivation",
    )
    list_filter = ("reason_code", "is_reactivation")
    list_select_related = ("account",)
    search_fields = ("external_id", "account__name", "feedback")
    date_hierarchy = "churned_on"
    raw_id_fields = ("account",)
