"""Access rules of the account pages and the admin: who sees and edits which account.

Permissions decide the role. A user needs to be staff and to hold
customers.view_account to open the account pages. Without the permission
customers.view_all_accounts a user sees only the accounts they own, and
with customers.change_account they may edit the accounts they see.

The rules are checked on the server in every view through the helpers
below, never only by hiding links. Superusers pass every check.
"""

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib.auth.views import redirect_to_login
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.urls import reverse

from customers.models import Account

VIEW_ACCOUNT = "customers.view_account"
CHANGE_ACCOUNT = "customers.change_account"
VIEW_ALL_ACCOUNTS = "customers.view_all_accounts"

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
