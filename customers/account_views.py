"""The CSM's account pages: the filtered account list and one page per account.

Every view checks the role on the server (customers.roles) and shows only
the accounts the user may see. The services in customers.accounts_view and
customers.timeline load the data.
"""

import logging
from dataclasses import replace
from datetime import date

from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from customers.account_list import (
    InvalidFilter,
    filter_accounts,
    filter_choices,
    list_page,
    page_rows,
    parse_filters,
    registered_columns,
)
from customers.accounts_view import account_sections
from customers.attention import (
    needing_attention,
    parse_rule,
    reasons_of,
    registered_rules,
)
from customers.models import Account
from customers.roles import (
    account_pages_required,
    may_edit_account,
    may_see_account,
    visible_accounts,
)
from customers.timeline import (
    MAX_LIMIT,
    account_timeline,
    clamp_limit,
    registered_sources,
)

logger = logging.getLogger(__name__)


@require_GET
@account_pages_required
def account_list(request: HttpRequest) -> HttpResponse:
    return _account_list(request, attention=False)


@require_GET
@account_pages_required
def account_attention(request: HttpRequest) -> HttpResponse:
    return _account_list(request, attention=True)


def _account_list(request: HttpRequest, attention: bool) -> HttpResponse:
    try:
        filters = parse_filters(request.GET)
        rule = parse_rule(request.GET) if attention else ""
        accounts = filter_accounts(
            visible_accounts(request.user), filters, request.user, timezone.localdate()
        )
        if attention:
            accounts = needing_attention(accounts, timezone.now(), only=rule)
        page = list_page(accounts, request.GET.get("page"))
    except InvalidFilter as error:
        logger.info(
            "Rejected account list filter %s: %s", request.GET.urlencode(), error
        )
        return render(
            request, "accounts/invalid_filter.html", {"message": str(error)}, status=400
        )

    rows = page_rows(page)
    if attention:
        rows = [replace(row, reasons=reasons_of(row.account)) for row in rows]
    context = {
        "page": page,
        "rows": rows,
        "columns": [column.label for column in registered_columns().values()],
        "filters": filters,
        "choices": filter_choices(filters),
        "query_without_page": _query_without_page(request),
        "attention": attention,
        "heading": "Accounts needing attention" if attention else "Accounts",
        "rules": registered_rules().values(),
        "selected_rule": rule,
    }
    return render(request, "accounts/list.html", context)


def _query_without_page(request: HttpRequest) -> str:
    params = request.GET.copy()
    params.pop("page", None)
    return params.urlencode()


@require_GET
@account_pages_required
def account_detail(request: HttpRequest, pk: int) -> HttpResponse:
    account = get_object_or_404(Account.objects.select_related("owner"), pk=pk)
    if not may_see_account(request.user, account):
        raise PermissionDenied("You can see only the accounts you own.")

    today = timezone.localdate()
    limit = clamp_limit(request.GET.get("timeline"))
    timeline = account_timeline(account, limit)
    labels = {key: source.label for key, source in registered_sources().items()}
    context = {
        "account": account,
        "today": today,
        "renewal_note": _renewal_note(account, today),
        "sections": account_sections(account, today),
        "timeline": [(entry, labels[entry.source]) for entry in timeline],
        "timeline_limit": limit,
        # A full timeline may have older entries; the link requests more.
        "timeline_more": (
            min(limit * 2, MAX_LIMIT)
            if len(timeline) == limit and limit < MAX_LIMIT
            else None
        ),
        "may_edit": may_edit_account(request.user, account),
    }
    return render(request, "accounts/detail.html", context)


def _renewal_note(account: Account, today: date) -> str:
    if account.renewal_date is None:
        return ""
    days = (account.renewal_date - today).days
    if days == 0:
        return "today"
    unit = "day" if abs(days) == 1 else "days"
    return f"in {days} {unit}" if days > 0 else f"{-days} {unit} ago"
