"""The account list: filters, search, sorting, and columns that apps register.

customers filters on its own columns: health band, renewal window, owner,
plan, industry, a custom CRM property and the name. Filters and columns
over other apps' data (the lifecycle stage) are registered by those apps
from AppConfig.ready() with register_filter() and register_column(),
because customers cannot import them. A filter narrows the queryset in
SQL. A column loads its values for one page of accounts with one query.
So the list runs the same number of queries however many accounts match.
"""

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, timedelta
from typing import Any

from django.core.paginator import Page, Paginator
from django.db.models import F, Q, QuerySet, TextField
from django.db.models.fields.json import KeyTextTransform
from django.db.models.functions import Cast

from customers.models import Account, Plan

PAGE_SIZE = 50

# Health bands over Account.health_score, the latest daily score.
HEALTH_BANDS: Mapping[str, tuple[str, Q]] = {
    "good": ("Good (70 and above)", Q(health_score__gte=70)),
    "watch": ("Watch (40 to 69)", Q(health_score__gte=40, health_score__lt=70)),
    "at_risk": ("At risk (below 40)", Q(health_score__lt=40)),
    "none": ("No score yet", Q(health_score__isnull=True)),
}

# Renewal windows: days from today, both ends included, for accounts that
# have not churned; "overdue" is a renewal date already past.
RENEWAL_WINDOWS: Mapping[str, str] = {
    "30": "In the next 30 days",
    "90": "In the next 90 days",
    "180": "In the next 180 days",
    "overdue": "Past, not renewed or churned",
}

SORTS: Mapping[str, tuple[str, list[Any]]] = {
    "name": ("Name", ["name", "pk"]),
    "health": ("Health, lowest first", [F("health_score").asc(nulls_last=True), "pk"]),
    "renewal": (
        "Renewal, soonest first",
        [F("renewal_date").asc(nulls_last=True), "pk"],
    ),
    "mrr": ("MRR, highest first", ["-mrr", "pk"]),
}

# Names of custom CRM properties as the CRM sync writes them; anything else
# is a typing mistake, and is rejected instead of matching nothing.
PROPERTY_NAME = re.compile(r"^[A-Za-z0-9_.\- ]{1,100}$")
MAX_TEXT = 200


class InvalidFilter(ValueError):
    """A filter value in the query string that cannot be used, with the fix."""


@dataclass(frozen=True)
class AccountFilter:
    """A filter over other apps' data: its query parameter, label and choices."""

    key: str
    label: str
    choices: Callable[[], list[tuple[str, str]]]
    apply: Callable[[QuerySet[Account], str], QuerySet[Account]]


@dataclass(frozen=True)
class AccountColumn:
    """A column of other apps' data: loads its values for a page of accounts."""

    key: str
    label: str
    load: Callable[[list[int]], dict[int, str]]


_FILTERS: dict[str, AccountFilter] = {}
_COLUMNS: dict[str, AccountColumn] = {}


def register_filter(account_filter: AccountFilter) -> AccountFilter:
    """Add a filter to the account list; apps call this from AppConfig.ready()."""
    existing = _FILTERS.get(account_filter.key)
    if existing is not None and existing.apply is not account_filter.apply:
        raise ValueError(f"account filter {account_filter.key!r} is registered twice")
    _FILTERS[account_filter.key] = account_filter
    return account_filter


def register_column(column: AccountColumn) -> AccountColumn:
    """Add a column to the account list; apps call this from AppConfig.ready()."""
    existing = _COLUMNS.get(column.key)
    if existing is not None and existing.load is not column.load:
        raise ValueError(f"account column {column.key!r} is registered twice")
    _COLUMNS[column.key] = column
    return column


def registered_filters() -> dict[str, AccountFilter]:
    return dict(_FILTERS)


def registered_columns() -> dict[str, AccountColumn]:
    return dict(_COLUMNS)


@dataclass(frozen=True)
class ListFilters:
    """The filters of one request, each blank when not set."""

    search: str = ""
    health: str = ""
    renewal: str = ""
    owner: str = ""
    plan: str = ""
    industry: str = ""
    property_name: str = ""
    property_value: str = ""
    sort: str = "name"
    # Registered filters by key.
    extra: Mapping[str, str] = field(default_factory=dict)


def parse_filters(params: Mapping[str, str]) -> ListFilters:
    """Read and check the list's filters from a query string.

    Raises InvalidFilter naming the parameter, the value and what to use.
    """
    health = _choice(params, "health", HEALTH_BANDS)
    renewal = _choice(params, "renewal", RENEWAL_WINDOWS)
    plan = _choice(params, "plan", dict(Plan.choices))
    sort = _choice(params, "sort", SORTS) or "name"
    owner = _text(params, "owner")
    if owner not in ("", "me", "none") and not owner.isdigit():
        raise InvalidFilter(
            f"owner {owner!r} is invalid; use a user id, 'me' or 'none'"
        )
    property_name = _text(params, "property")
    property_value = _text(params, "value")
    if property_name and not PROPERTY_NAME.match(property_name):
        raise InvalidFilter(
            f"property name {property_name!r} is invalid; use letters, digits, "
            "spaces, dots, dashes and underscores, up to 100"
        )
    if property_value and not property_name:
        raise InvalidFilter(
            f"property value {property_value!r} has no property name; "
            "fill in the property field too"
        )
    extra = {key: _text(params, key) for key in _FILTERS}
    return ListFilters(
        search=_text(params, "q"),
        health=health,
        renewal=renewal,
        owner=owner,
        plan=plan,
        industry=_text(params, "industry"),
        property_name=property_name,
        property_value=property_value,
        sort=sort,
        extra={key: value for key, value in extra.items() if value},
    )


def _text(params: Mapping[str, str], name: str) -> str:
    value = (params.get(name) or "").strip()
    if len(value) > MAX_TEXT:
        raise InvalidFilter(f"{name} is longer than {MAX_TEXT} characters; shorten it")
    if "\x00" in value:
        raise InvalidFilter(f"{name} contains a NUL character; remove it")
    return value


def _choice(params: Mapping[str, str], name: str, choices: Mapping[str, Any]) -> str:
    value = _text(params, name)
    if value and value not in choices:
        raise InvalidFilter(
            f"{name} {value!r} is invalid; use one of {', '.join(choices)}"
        )
    return value


def filter_accounts(
    accounts: QuerySet[Account], filters: ListFilters, user: Any, today: date
) -> QuerySet[Account]:
    """Narrow accounts by every filter set, in SQL, and sort them."""
    if filters.search:
        accounts = accounts.filter(name__icontains=filters.search)
    if filters.health:
        accounts = accounts.filter(HEALTH_BANDS[filters.health][1])
    if filters.renewal:
        accounts = accounts.filter(_renewal_q(filters.renewal, today))
    if filters.owner == "me":
        accounts = accounts.filter(owner=user.pk)
    elif filters.owner == "none":
        accounts = accounts.filter(owner__isnull=True)
    elif filters.owner:
        accounts = accounts.filter(owner=int(filters.owner))
    if filters.plan:
        accounts = accounts.filter(plan=filters.plan)
    if filters.industry:
        accounts = accounts.filter(industry=filters.industry)
    if filters.property_name:
        accounts = _filter_property(accounts, filters)
    for key, value in filters.extra.items():
        accounts = _FILTERS[key].apply(accounts, value)
    return accounts.order_by(*SORTS[filters.sort][1])


def _renewal_q(window: str, today: date) -> Q:
    not_churned = Q(churned_on__isnull=True)
    if window == "overdue":
        return not_churned & Q(renewal_date__lt=today)
    end = today + timedelta(days=int(window))
    return not_churned & Q(renewal_date__gte=today, renewal_date__lte=end)


def _filter_property(
    accounts: QuerySet[Account], filters: ListFilters
) -> QuerySet[Account]:
    # Properties are stored as the CRM sends them (text, numbers, true or
    # false), so the value is compared as text: "10" matches 10 and "10".
    # Without a value, the filter keeps accounts that have the property.
    if not filters.property_value:
        return accounts.filter(properties__has_key=filters.property_name)
    # The cast keeps SQLite from reading the value as JSON.
    as_text = Cast(
        KeyTextTransform(filters.property_name, "properties"), output_field=TextField()
    )
    return accounts.annotate(_property_text=as_text).filter(
        _property_text=filters.property_value
    )


@dataclass(frozen=True)
class AccountRow:
    """One account of a list page with the values of the registered columns."""

    account: Account
    columns: list[str]
    # Why the account needs attention, on the attention list only.
    reasons: list[str] = field(default_factory=list)


def list_page(accounts: QuerySet[Account], page_number: str | None) -> Page[Any]:
    """Return one page of accounts, with their owners joined."""
    paginator = Paginator(accounts.select_related("owner"), PAGE_SIZE)
    return paginator.get_page(page_number)


def page_rows(page: Page[Any]) -> list[AccountRow]:
    """Attach each registered column's values to the accounts of a page."""
    accounts = list(page.object_list)
    ids = [account.pk for account in accounts]
    values = [column.load(ids) if ids else {} for column in _COLUMNS.values()]
    return [
        AccountRow(account, [column.get(account.pk, "") for column in values])
        for account in accounts
    ]


def filter_choices(filters: ListFilters) -> dict[str, Any]:
    """Return the options of the filter form, with one query per option list."""
    industries = (
        Account.objects.exclude(industry="")
        .order_by("industry")
        .values_list("industry", flat=True)
        .distinct()
    )
    owners = (
        Account.objects.filter(owner__isnull=False)
        .order_by("owner__username")
        .values_list("owner", "owner__username")
        .distinct()
    )
    return {
        "health_bands": [(key, label) for key, (label, _) in HEALTH_BANDS.items()],
        "renewal_windows": list(RENEWAL_WINDOWS.items()),
        "plans": Plan.choices,
        "industries": list(industries),
        "owners": [(str(pk), username) for pk, username in owners],
        "sorts": [(key, label) for key, (label, _) in SORTS.items()],
        # Each registered filter with its options and its value in this request.
        "extra": [
            (
                account_filter,
                account_filter.choices(),
                filters.extra.get(account_filter.key, ""),
            )
            for account_filter in _FILTERS.values()
        ],
    }
