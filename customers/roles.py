"""Access rules of the account pages and the admin: who sees and edits which account.

Three groups, created by the migration customers 0006, carry the roles:

- CSMs see and edit the accounts they own. With the permission
  customers.view_all_accounts they see and edit every account.
- CS managers see every account, read-only.
- Nudgepath admins manage the configuration (stages, criteria, courses,
  triggers, templates, schedules) and may edit every account.

Permissions decide, not group names. A user needs to be staff and to hold
customers.view_account to open the account pages. Without
customers.view_all_accounts a user sees only the accounts they own, and
with customers.change_account they may edit the accounts they see.

The rules are checked on the server in every view and in the customer
record's admin pages (OwnedAccountsAdmin), never only by hiding links.
Superusers pass every check.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import admin
from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from customers.models import Account

VIEW_ACCOUNT = "customers.view_account"
CHANGE_ACCOUNT = "customers.change_account"
VIEW_ALL_ACCOUNTS = "customers.view_all_accounts"

CSM_GROUP = "CSMs"
MANAGER_GROUP = "CS managers"
ADMIN_GROUP = "Nudgepath admins"

View = Callable[..., HttpResponse]


def may_use_account_pages(user: Any) -> bool:
    """Return whether a user may open the account list and account pages at all."""
    return bool(user.is_active and user.is_staff and user.has_perm(VIEW_ACCOUNT))


def sees_all_accounts(user: Any) -> bool:
    return bool(user.has_perm(VIEW_ALL_ACCOUNTS))


def visible_accounts(user: Any, accounts: QuerySet[Account] | None = None) -> Any:
    """Narrow a queryset of accounts to those the user may see."""
    accounts = Account.objects.all() if accounts is None else accounts
    if sees_all_accounts(user):
        return accounts
    return accounts.filter(owner=user.pk)


def may_see_account(user: Any, account: Account) -> bool:
    return sees_all_accounts(user) or account.owner_id == user.pk


def may_edit_account(user: Any, account: Account) -> bool:
    """Return whether a user may change an account: their own, or any with view-all."""
    return bool(user.has_perm(CHANGE_ACCOUNT)) and may_see_account(user, account)


def account_pages_required(view: View) -> View:
    """Send anonymous users to the sign-in page and reject users without the role.

    The admin's sign-in page is used, as the dashboard does, because the
    learner portal signs in by emailed link and does not serve staff.
    """

    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path(), reverse("admin:login"))
        if not may_use_account_pages(request.user):
            raise PermissionDenied(
                "The account pages need the permission to view accounts."
            )
        return view(request, *args, **kwargs)

    return wrapper


class OwnedAccountsAdmin(admin.ModelAdmin):
    """An admin narrowed to the rows of the accounts the user may see.

    account_field names the foreign key to the account, or is blank on the
    Account admin itself. A row of another account is not listed, its
    pages answer 403, and forms offer only visible accounts.
    """

    account_field = "account"

    def _owner_lookup(self) -> str:
        return f"{self.account_field}__owner" if self.account_field else "owner"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Any]:
        queryset = super().get_queryset(request)
        if sees_all_accounts(request.user):
            return queryset
        return queryset.filter(**{self._owner_lookup(): request.user.pk})

    def get_object(
        self, request: HttpRequest, object_id: str, from_field: str | None = None
    ) -> Any:
        found = super().get_object(request, object_id, from_field)
        if found is None and self._exists_unscoped(object_id, from_field):
            raise PermissionDenied("This row belongs to an account you do not own.")
        return found

    def _exists_unscoped(self, object_id: str, from_field: str | None) -> bool:
        field = from_field or self.opts.pk.attname
        try:
            return self.model._default_manager.filter(**{field: object_id}).exists()
        except (ValidationError, ValueError):
            return False

    def formfield_for_foreignkey(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> Any:
        # A CSM must not move a contact or ticket to an account they do not own.
        if db_field.name == self.account_field and not sees_all_accounts(request.user):
            kwargs["queryset"] = visible_accounts(request.user)
        return super().formfield_for_foreignkey(db_field, request, **kwargs)

    def formfield_for_manytomany(
        self, db_field: Any, request: HttpRequest, **kwargs: Any
    ) -> Any:
        # Linking a contact to another CSM's account would let it receive
        # that account's emails and enrollments, and list its name.
        if db_field.related_model is Account and not sees_all_accounts(request.user):
            kwargs["queryset"] = visible_accounts(request.user)
        return super().formfield_for_manytomany(db_field, request, **kwargs)

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        fields = tuple(super().get_readonly_fields(request, obj))
        # Handing an account to another CSM is for those who see them all.
        if not self.account_field and not sees_all_accounts(request.user):
            return (*fields, "owner")
        return fields
