"""Accounts needing attention: rules over the customer record and other apps' data.

A rule is a condition over accounts as of an instant, built as one Q of
columns and subqueries. So the list of accounts that meet any rule is one
SQL query, and each row's reasons come back as annotations of that query.
customers registers the rules over its own data below: health dropping, and renewal
near with low engagement. lifecycle registers "behind on a criterion" from
LifecycleConfig.ready(), because customers cannot import lifecycle.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.db.models import (
    BooleanField,
    Count,
    ExpressionWrapper,
    F,
    IntegerField,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Value,
)
from django.db.models.functions import Coalesce
from django.db.models.lookups import GreaterThanOrEqual, LessThan
from django.utils import timezone

from customers.account_list import InvalidFilter
from customers.models import Account, HealthScore, UsageDay

# Health dropping: the latest score of the last HEALTH_DROP_DAYS days is at
# least HEALTH_DROP_POINTS below the earliest score of those days.
HEALTH_DROP_DAYS = 30
HEALTH_DROP_POINTS = 10

# Renewal near with low engagement: a renewal date within RENEWAL_NEAR_DAYS
# from today, no churn, and fewer active contacts in the last ACTIVE_DAYS
# days than LOW_SEAT_SHARE of the seats. A contact is active with at least
# one usage event in those days.
RENEWAL_NEAR_DAYS = 90
ACTIVE_DAYS = 30
LOW_SEAT_SHARE = 0.25


@dataclass(frozen=True)
class AttentionRule:
    """A reason an account needs attention, as a condition over accounts."""

    key: str
    # The reason shown beside each account that meets the rule.
    label: str
    # The rule's definition, shown above the list.
    description: str
    condition: Callable[[datetime], Q]


_RULES: dict[str, AttentionRule] = {}


def register_rule(rule: AttentionRule) -> AttentionRule:
    """Add a rule to the attention list; apps call this from AppConfig.ready()."""
    existing = _RULES.get(rule.key)
    if existing is not None and existing.condition is not rule.condition:
        raise ValueError(f"attention rule {rule.key!r} is registered twice")
    _RULES[rule.key] = rule
    return rule


def registered_rules() -> dict[str, AttentionRule]:
    """Return the rules by key, in the order they were registered."""
    return dict(_RULES)


def needing_attention(
    accounts: QuerySet[Account], now: datetime, only: str = ""
) -> QuerySet[Account]:
    """Keep accounts that meet any rule (or the rule `only`), with one flag per rule.

    Each account gets an attribute attention_<key> that is True when it
    meets that rule; reasons_of() turns them into labels.
    """
    rules = {key: rule for key, rule in _RULES.items() if not only or key == only}
    conditions = {key: rule.condition(now) for key, rule in rules.items()}
    any_rule = Q()
    for condition in conditions.values():
        any_rule |= condition
    flags = {
        f"attention_{key}": ExpressionWrapper(condition, output_field=BooleanField())
        for key, condition in conditions.items()
    }
    return accounts.filter(any_rule).annotate(**flags)


def reasons_of(account: Account) -> list[str]:
    """Return the labels of the rules an account from needing_attention() meets."""
    return [
        rule.label
        for key, rule in _RULES.items()
        if getattr(account, f"attention_{key}", False)
    ]


def parse_rule(params: Mapping[str, str]) -> str:
    """Read the rule that narrows the attention list; blank for any rule."""
    rule = (params.get("rule") or "").strip()
    if rule and rule not in _RULES:
        raise InvalidFilter(
            f"rule {rule[:100]!r} is invalid; use one of {', '.join(_RULES)}"
        )
    return rule


# -- customers' own rules ----------------------------------------------------


def _score_in_window(today: date, newest: bool) -> Subquery:
    start = today - timedelta(days=HEALTH_DROP_DAYS)
    scores = HealthScore.objects.filter(
        account=OuterRef("pk"), scored_on__gte=start, scored_on__lte=today
    ).order_by("-scored_on" if newest else "scored_on")
    return Subquery(scores.values("score")[:1])


def health_dropping(now: datetime) -> Q:
    """Accounts whose latest score fell HEALTH_DROP_POINTS or more in the window."""
    today = timezone.localdate(now)
    drop = ExpressionWrapper(
        _score_in_window(today, newest=False) - _score_in_window(today, newest=True),
        output_field=IntegerField(),
    )
    return Q(GreaterThanOrEqual(drop, HEALTH_DROP_POINTS))


def renewal_near_low_engagement(now: datetime) -> Q:
    """Accounts renewing soon whose active contacts are a small share of the seats."""
    today = timezone.localdate(now)
    active_contacts = (
        UsageDay.objects.filter(
            account=OuterRef("pk"),
            contact__isnull=False,
            day__gt=today - timedelta(days=ACTIVE_DAYS),
            day__lte=today,
        )
        .order_by()
        .values("account")
        .annotate(active=Count("contact", distinct=True))
        .values("active")
    )
    active = Coalesce(Subquery(active_contacts, output_field=IntegerField()), 0)
    # active < share * seats, kept in integers: active * 100 < share% * seats.
    low: LessThan = LessThan(
        ExpressionWrapper(active * Value(100), output_field=IntegerField()),
        ExpressionWrapper(
            F("seats") * Value(round(LOW_SEAT_SHARE * 100)),
            output_field=IntegerField(),
        ),
    )
    renewing = Q(
        churned_on__isnull=True,
        renewal_date__gte=today,
        renewal_date__lte=today + timedelta(days=RENEWAL_NEAR_DAYS),
    )
    return renewing & Q(low)


register_rule(
    AttentionRule(
        "health_dropping",
        f"Health dropped {HEALTH_DROP_POINTS}+ points in {HEALTH_DROP_DAYS} days",
        (
            f"Among the health scores of the last {HEALTH_DROP_DAYS} days, the "
            f"latest is at least {HEALTH_DROP_POINTS} points below the earliest."
        ),
        health_dropping,
    )
)
register_rule(
    AttentionRule(
        "renewal_low_engagement",
        "Renewal near, low engagement",
        (
            f"The renewal date is within {RENEWAL_NEAR_DAYS} days and the account "
            f"has not churned. Its active contacts, those with a usage event in "
            f"the last {ACTIVE_DAYS} days, number fewer than {LOW_SEAT_SHARE:.0%} "
            f"of its seats."
        ),
        renewal_near_low_engagement,
    )
)
