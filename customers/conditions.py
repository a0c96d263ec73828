"""Condition kinds over the customer record: usage, dates, health, surveys, tickets.

Each compiler returns a Q over the subject's model. Account-level facts
apply to a contact through its account. Windows are half-open, (as_of - N
days, as_of], so an event exactly N days old is outside a window of N days.
No row dated after as_of is read, so evaluation as of a past instant uses
only the events, tickets, surveys, contacts and health history known then.
subscription_plan and upgraded_within read subscription history. The plan
kind, renewal date, kickoff and signup dates are current values.
"""

import functools
from collections.abc import Callable, Mapping
from datetime import timedelta
from typing import Any

from django.db.models import (
    BooleanField,
    Case,
    CharField,
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
    When,
)
from django.db.models.functions import Coalesce, Greatest
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone

from conditions import (
    EvaluationContext,
    EventSlot,
    Kind,
    Param,
    SpanSlot,
    TextForm,
    ValueSlot,
    WindowSlot,
    register,
)
from conditions import compare as compare_values
from customers.models import (
    Account,
    Contact,
    HealthScore,
    Plan,
    Subscription,
    SupportTicket,
    SurveyKind,
    SurveyResponse,
    TicketPriority,
    UsageEvent,
)
from customers.sqlite import SQLITE_LOCAL_DAY_START

OPERATORS = (">", ">=", "<", "<=", "==")
LOOKUPS = {
    ">": GreaterThan,
    ">=": GreaterThanOrEqual,
    "<": LessThan,
    "<=": LessThanOrEqual,
    "==": Exact,
}
Params = Mapping[str, Any]


def account_ref(context: EvaluationContext) -> OuterRef:
    """Return the outer account id: the subject itself, or a contact's account."""
    return OuterRef("account_id" if context.subject == "contact" else "pk")


def account_field(context: EvaluationContext, name: str) -> str:
    return f"account__{name}" if context.subject == "contact" else name


def as_of_date(context: EvaluationContext) -> Any:
    return timezone.localdate(context.as_of)


def compare(expression: Any, op: str, value: Any) -> Q:
    # A missing value (no health score yet) makes the comparison false and
    # its negation true; see conditions.compare.
    return compare_values(expression, op, value)


class RowCount(Subquery):
    """The number of rows of a queryset, as a correlated scalar subquery.

    COUNT(*) over the rows, with no GROUP BY, is 0 on no rows and never NULL,
    and it reads no column, so PostgreSQL can count from an index alone.
    """

    template = "(SELECT count(*) FROM (%(subquery)s) AS counted)"
    output_field = IntegerField()


def count_of(queryset: Any) -> RowCount:
    """Build a correlated subquery that counts the queryset's rows."""
    return RowCount(queryset.order_by().values("pk"))


def compare_count(queryset: Any, op: str, value: int) -> Q:
    """Compare the number of rows with a value.

    "None" and "at least one" become NOT EXISTS and EXISTS, which stop at the
    first row instead of counting every row in the window.
    """
    if (op, value) in (("==", 0), ("<", 1), ("<=", 0)):
        return ~Q(Exists(queryset))
    if (op, value) in ((">=", 1), (">", 0)):
        return Q(Exists(queryset))
    return compare(count_of(queryset), op, value)


Compiler = Callable[[EvaluationContext, Mapping[str, Any]], Q]


def per_account(compile_leaf: Compiler) -> Compiler:
    """Evaluate a kind over accounts once per account, also for a contact subject.

    For contacts the kind compiles as account_id IN (the accounts that
    match), so its correlated subqueries run once per account instead of
    once for each of the account's contacts. A compiler wrapped here must
    read only the account, never the contact itself.
    """

    @functools.wraps(compile_leaf)
    def compile_for_contacts(context: EvaluationContext, params: Params) -> Q:
        if context.subject != "contact":
            return compile_leaf(context, params)
        accounts = Account.objects.filter(
            compile_leaf(EvaluationContext("account", context.as_of), params)
        )
        return Q(account_id__in=accounts.order_by().values("pk"))

    return compile_for_contacts


class LocalDayStart(Func):
    """The start of a date (or a date plus an interval) in a time zone, as a timestamp.

    Comparing a timestamp column with these bounds, instead of casting the
    column to a date, lets PostgreSQL use the column's index.
    """

    # Renders ((day)::timestamp AT TIME ZONE (zone)).
    template = "((%(expressions)s))"
    arg_joiner = ")::timestamp AT TIME ZONE ("
    output_field = DateTimeField()

    def __init__(self, day: Any, zone: str) -> None:
        super().__init__(day, Value(zone))

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # SQLite has no time zones; customers.sqlite registers this function
        # on every SQLite connection.
        return self.as_sql(
            compiler,
            connection,
            template=f"{SQLITE_LOCAL_DAY_START}(%(expressions)s)",
            arg_joiner=", ",
            **extra,
        )


def window(context: EvaluationContext, days: int) -> dict[str, Any]:
    return {"gt": context.as_of - timedelta(days=days), "lte": context.as_of}


def usage_events(context: EvaluationContext, params: Params) -> Any:
    """Select the subject's usage events in the window, by name and feature."""
    bounds = window(context, params["days"])
    return usage_events_so_far(context, params).filter(occurred_at__gt=bounds["gt"])


def usage_events_so_far(context: EvaluationContext, params: Params) -> Any:
    """Select the subject's usage events at or before as_of, by name and feature."""
    events = UsageEvent.objects.filter(occurred_at__lte=context.as_of)
    if context.subject == "contact" and params.get("scope", "self") == "self":
        events = events.filter(contact=OuterRef("pk"))
    else:
        events = events.filter(account=account_ref(context))
    if params.get("event"):
        events = events.filter(name=params["event"])
    if params.get("features"):
        events = events.filter(feature__in=params["features"])
    return events


# -- usage ------------------------------------------------------------------


def compile_inactivity(context: EvaluationContext, params: Params) -> Q:
    return ~Q(Exists(usage_events(context, params)))


def value_last_usage(context: EvaluationContext, params: Params) -> Subquery:
    """Select the time of the last matching usage event at or before as_of."""
    latest = (
        usage_events_so_far(context, params)
        .order_by("-occurred_at")
        .values("occurred_at")[:1]
    )
    return Subquery(latest)


def value_event_count(context: EvaluationContext, params: Params) -> RowCount:
    return count_of(usage_events(context, params))


def compile_event_count(context: EvaluationContext, params: Params) -> Q:
    events = usage_events(context, params)
    return compare_count(events, params["op"], params["value"])


def value_distinct_features(context: EvaluationContext, params: Params) -> Coalesce:
    features = (
        usage_events(context, params)
        .exclude(feature="")
        .order_by()
        .values(group=Value(1))
        .annotate(total=Count("feature", distinct=True))
        .values("total")
    )
    return Coalesce(Subquery(features, output_field=IntegerField()), 0)


def compile_distinct_features(context: EvaluationContext, params: Params) -> Q:
    """Compare the distinct features of each subject's window with the value.

    The window's events are grouped once, by subject, and the subject is
    tested for membership in the groups, instead of a correlated count per
    subject: PostgreSQL reads the window from the (occurred_at) index in
    one pass, where the correlated form probes the event table once for
    each of 100,000 contacts and reads each event's feature from the heap.
    """
    events = _window_events(context, params).exclude(feature="")
    group, subject_column = _grouping(context, params)
    if group == "contact":
        # NOT IN over a NULL matches nothing, so events without a contact
        # must not form a group.
        events = events.filter(contact__isnull=False)
    op, value = params["op"], params["value"]
    counted = (
        events.order_by().values(group).annotate(total=Count("feature", distinct=True))
    )

    total_matches = compare_values(F("total"), op, value)
    if not _holds(0, op, value):
        return Q(
            **{f"{subject_column}__in": counted.filter(total_matches).values(group)}
        )
    # A subject without events has 0 features and matches, so test for the
    # subjects whose groups fail instead.
    failing = counted.exclude(total_matches).values(group)
    return ~Q(**{f"{subject_column}__in": failing})


def _window_events(context: EvaluationContext, params: Params) -> Any:
    """Select every subject's usage events in the window, by name and feature."""
    bounds = window(context, params["days"])
    events = UsageEvent.objects.filter(
        occurred_at__gt=bounds["gt"], occurred_at__lte=bounds["lte"]
    )
    if params.get("event"):
        events = events.filter(name=params["event"])
    if params.get("features"):
        events = events.filter(feature__in=params["features"])
    return events


def _grouping(context: EvaluationContext, params: Params) -> tuple[str, str]:
    """Return the event column to group by and the subject column it matches."""
    if context.subject == "contact" and params.get("scope", "self") == "self":
        return "contact", "pk"
    if context.subject == "contact":
        return "account", "account_id"
    return "account", "pk"


def _holds(count: int, op: str, value: int) -> bool:
    """Tell whether a count satisfies the comparison, in Python."""
    return {
        ">": count > value,
        ">=": count >= value,
        "<": count < value,
        "<=": count <= value,
        "==": count == value,
    }[op]


def compile_first_usage_within(context: EvaluationContext, params: Params) -> Q:
    """Any usage event from the anchor date through anchor + N days, seen by as_of."""
    return Q(Exists(_early_usage(context, params)))


def value_first_usage(context: EvaluationContext, params: Params) -> Subquery:
    """Select the time of the first usage event in the anchor window."""
    first = _early_usage(context, params).order_by("occurred_at")
    return Subquery(first.values("occurred_at")[:1])


def _early_usage(context: EvaluationContext, params: Params) -> Any:
    """Select the account's events dated anchor to anchor + N in the site time zone."""
    anchor = OuterRef(account_field(context, f"{params['after']}_date"))
    zone = timezone.get_current_timezone_name()
    after_deadline = anchor + timedelta(days=params["days"] + 1)
    events = UsageEvent.objects.filter(
        account=account_ref(context),
        occurred_at__lte=context.as_of,
        occurred_at__gte=LocalDayStart(anchor, zone),
        occurred_at__lt=LocalDayStart(after_deadline, zone),
    )
    if params.get("event"):
        events = events.filter(name=params["event"])
    return events


def compile_active_users_trend(context: EvaluationContext, params: Params) -> Q:
    """Active contacts in the last N days at least those of the N days before."""
    days = params["days"]
    current_count = _active_contacts(context, 0, days)
    previous_count = _active_contacts(context, days, 2 * days)
    # current >= previous and current > 0, with the current count computed
    # once: counts are whole numbers, so current > 0 is current >= 1.
    return Q(GreaterThanOrEqual(current_count, Greatest(previous_count, 1)))


def value_active_users(context: EvaluationContext, params: Params) -> Coalesce:
    """Count the account's contacts active in the last N days."""
    return _active_contacts(context, 0, params["days"])


def _range(
    context: EvaluationContext, start_days: int, end_days: int
) -> dict[str, Any]:
    return {
        "occurred_at__gt": context.as_of - timedelta(days=end_days),
        "occurred_at__lte": context.as_of - timedelta(days=start_days),
    }


def _active_contacts(
    context: EvaluationContext, start_days: int, end_days: int
) -> Coalesce:
    """Count the account's contacts with a usage event in the range.

    One EXISTS probe of the (contact, occurred_at) index per contact reads
    far fewer rows than counting distinct contacts over the account's
    events, which reads every event in the range.
    """
    used = UsageEvent.objects.filter(
        contact=OuterRef("pk"), **_range(context, start_days, end_days)
    )
    counted = (
        Contact.objects.filter(account=account_ref(context))
        .filter(Exists(used))
        .order_by()
        .values(group=Value(1))
        .annotate(total=Count("*"))
        .values("total")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


# -- account dates and attributes ------------------------------------------


def compile_renewal_within(context: EvaluationContext, params: Params) -> Q:
    """Renewal date from today through today + N days; no renewal date never matches."""
    today = as_of_date(context)
    field = account_field(context, "renewal_date")
    return Q(
        **{
            f"{field}__gte": today,
            f"{field}__lte": today + timedelta(days=params["days"]),
        }
    )


def value_renewal_date(context: EvaluationContext, params: Params) -> F:
    return F(account_field(context, "renewal_date"))


def compile_health_score(context: EvaluationContext, params: Params) -> Q:
    """Compare the latest health score on or before as_of; no history never matches."""
    score = value_health_score(context, params)
    return compare(score, params["op"], params["value"])


def value_health_score(context: EvaluationContext, params: Params) -> Subquery:
    """Select the latest health score on or before as_of, NULL without history."""
    latest = (
        HealthScore.objects.filter(
            account=account_ref(context), scored_on__lte=as_of_date(context)
        )
        .order_by("-scored_on")
        .values("score")[:1]
    )
    return Subquery(latest, output_field=IntegerField())


def compile_plan(context: EvaluationContext, params: Params) -> Q:
    return Q(**{f"{account_field(context, 'plan')}__in": params["plans"]})


def value_plan(context: EvaluationContext, params: Params) -> F:
    return F(account_field(context, "plan"))


# -- team ------------------------------------------------------------------


def compile_team_growth(context: EvaluationContext, params: Params) -> Q:
    return compare_count(_added_contacts(context, params), ">=", params["value"])


def value_team_growth(context: EvaluationContext, params: Params) -> RowCount:
    """Count the contacts added to the account in the window."""
    return count_of(_added_contacts(context, params))


def _added_contacts(context: EvaluationContext, params: Params) -> Any:
    return Contact.objects.filter(
        account=account_ref(context),
        added_at__gt=context.as_of - timedelta(days=params["days"]),
        added_at__lte=context.as_of,
    )


def compile_contact_count(context: EvaluationContext, params: Params) -> Q:
    contacts = _contacts_so_far(context)
    return compare_count(contacts, params["op"], params["value"])


def value_contact_count(context: EvaluationContext, params: Params) -> RowCount:
    return count_of(_contacts_so_far(context))


def _contacts_so_far(context: EvaluationContext) -> Any:
    return Contact.objects.filter(
        account=account_ref(context), added_at__lte=context.as_of
    )


# -- surveys and tickets ---------------------------------------------------


def compile_survey_score(context: EvaluationContext, params: Params) -> Q:
    return Q(Exists(_accepted_responses(context, params)))


def value_survey_score(context: EvaluationContext, params: Params) -> Subquery:
    """Select the score of the latest response that the leaf accepts."""
    latest = _accepted_responses(context, params).order_by("-submitted_at", "-pk")
    return Subquery(latest.values("score")[:1], output_field=IntegerField())


def _accepted_responses(context: EvaluationContext, params: Params) -> Any:
    responses = SurveyResponse.objects.filter(
        kind=params["survey"],
        score__gte=params["min"],
        score__lte=params["max"],
        submitted_at__gt=context.as_of - timedelta(days=params["days"]),
        submitted_at__lte=context.as_of,
    )
    if context.subject == "contact":
        responses = responses.filter(contact=OuterRef("pk"))
    else:
        responses = responses.filter(account=OuterRef("pk"))
    return responses


def compile_open_tickets(context: EvaluationContext, params: Params) -> Q:
    tickets = _open_tickets(context, params)
    return compare_count(tickets, params["op"], params["value"])


def value_open_tickets(context: EvaluationContext, params: Params) -> RowCount:
    return count_of(_open_tickets(context, params))


def _open_tickets(context: EvaluationContext, params: Params) -> Any:
    """Select tickets opened by as_of and not closed by then, optionally by priority."""
    tickets = SupportTicket.objects.filter(
        account=account_ref(context), opened_at__lte=context.as_of
    ).filter(Q(closed_at__isnull=True) | Q(closed_at__gt=context.as_of))
    if params["priorities"]:
        tickets = tickets.filter(priority__in=params["priorities"])
    return tickets


# -- registration ------------------------------------------------------------

DAYS = Param(int, minimum=1, maximum=3650, help="Length of the window in days.")
OP = Param(str, choices=OPERATORS, help="Comparison operator.")
COUNT = Param(int, minimum=0, help="Number to compare with.")
EVENT = Param(str, required=False, default="", help="Usage event name; blank for any.")
FEATURES = Param(list, required=False, default=[], help="Feature names; empty for any.")
SCOPE = Param(
    str,
    required=False,
    default="self",
    choices=("self", "account"),
    help="For a contact: its own events, or those of its whole account.",
)


def _event_words(params: Params) -> str:
    words = f"{params.get('event') or 'usage'} events"
    if params.get("features"):
        words += " of " + ", ".join(params["features"])
    return words


register(
    Kind(
        name="inactivity",
        reads=frozenset({"usage"}),
        label="No usage in the last N days",
        compile=compile_inactivity,
        value=value_last_usage,
        describe=lambda p: f"no {_event_words(p)} in the last {p['days']} days",
        params={"days": DAYS, "event": EVENT, "features": FEATURES, "scope": SCOPE},
        text=TextForm("inactive", (EventSlot("event"), WindowSlot("days"))),
    )
)
register(
    Kind(
        name="event_count",
        reads=frozenset({"usage"}),
        label="Number of usage events in the last N days",
        compile=compile_event_count,
        value=value_event_count,
        describe=lambda p: (
            f"{_event_words(p)} in the last {p['days']} days {p['op']} {p['value']}"
        ),
        params={
            "days": DAYS,
            "op": OP,
            "value": COUNT,
            "event": EVENT,
            "features": FEATURES,
            "scope": SCOPE,
        },
        text=TextForm("count", (EventSlot("event", show_any=True), WindowSlot("days"))),
    )
)
register(
    Kind(
        name="distinct_features",
        reads=frozenset({"usage"}),
        label="Number of distinct features used in the last N days",
        compile=compile_distinct_features,
        value=value_distinct_features,
        describe=lambda p: (
            f"distinct features used in the last {p['days']} days "
            f"{p['op']} {p['value']}"
        ),
        params={
            "days": DAYS,
            "op": OP,
            "value": COUNT,
            "event": EVENT,
            "features": FEATURES,
            "scope": SCOPE,
        },
        text=TextForm(
            "distinct", (EventSlot("event", feature=True), WindowSlot("days"))
        ),
    )
)
register(
    Kind(
        name="first_usage_within",
        reads=frozenset({"usage", "crm"}),
        label="First usage within N days of kickoff or signup",
        compile=per_account(compile_first_usage_within),
        value=value_first_usage,
        describe=lambda p: (
            f"{p.get('event') or 'usage'} within {p['days']} days of {p['after']}"
        ),
        params={
            "days": Param(int, minimum=0, maximum=3650),
            "after": Param(
                str, required=False, default="kickoff", choices=("kickoff", "signup")
            ),
            "event": EVENT,
        },
        text=TextForm(
            "first_usage", (EventSlot("event"), SpanSlot("days", anchor="after"))
        ),
    )
)
register(
    Kind(
        name="active_users_trend",
        reads=frozenset({"usage"}),
        label="Active users stable or growing",
        compile=per_account(compile_active_users_trend),
        value=value_active_users,
        describe=lambda p: (
            f"active users in the last {p['days']} days at least "
            f"those of the {p['days']} before"
        ),
        params={"days": Param(int, required=False, default=30, minimum=1, maximum=365)},
        text=TextForm("active_users_stable", (WindowSlot("days"),)),
    )
)
register(
    Kind(
        name="renewal_within",
        reads=frozenset({"crm"}),
        label="Renewal within the next N days",
        compile=compile_renewal_within,
        value=value_renewal_date,
        describe=lambda p: f"renewal within {p['days']} days",
        params={"days": Param(int, minimum=0, maximum=3650)},
        text=TextForm("renewal_within", (WindowSlot("days", direction="next"),)),
    )
)
register(
    Kind(
        name="health_score",
        reads=frozenset({"health"}),
        label="Health score compared with a value",
        compile=per_account(compile_health_score),
        value=value_health_score,
        describe=lambda p: f"health score {p['op']} {p['value']}",
        params={"op": OP, "value": Param(int, minimum=0, maximum=100)},
        text=TextForm("account.health_score"),
    )
)
register(
    Kind(
        name="plan",
        reads=frozenset({"crm"}),
        label="Plan is one of",
        compile=compile_plan,
        value=value_plan,
        describe=lambda p: "plan is " + " or ".join(p["plans"]),
        params={"plans": Param(list, choices=tuple(Plan.values))},
        text=TextForm("plan_in", (ValueSlot("plans"),)),
    )
)
register(
    Kind(
        name="team_growth",
        reads=frozenset({"contacts"}),
        label="Contacts added to the account in the last N days",
        compile=per_account(compile_team_growth),
        value=value_team_growth,
        describe=lambda p: (
            f"at least {p['value']} contacts added in the last {p['days']} days"
        ),
        params={
            "days": DAYS,
            "value": Param(int, required=False, default=1, minimum=1),
        },
        text=TextForm("team_growth", (WindowSlot("days"),)),
    )
)
register(
    Kind(
        name="contact_count",
        reads=frozenset({"contacts"}),
        label="Number of contacts at the account",
        compile=per_account(compile_contact_count),
        value=value_contact_count,
        describe=lambda p: f"contacts at the account {p['op']} {p['value']}",
        params={"op": OP, "value": COUNT},
        text=TextForm("contact_count"),
    )
)
register(
    Kind(
        name="survey_score",
        reads=frozenset({"surveys"}),
        label="Survey answered with a score in a range in the last N days",
        compile=compile_survey_score,
        value=value_survey_score,
        describe=lambda p: (
            f"{p['survey'].upper()} {p['min']}-{p['max']} in the last {p['days']} days"
        ),
        params={
            "survey": Param(str, choices=tuple(SurveyKind.values)),
            "min": Param(int, minimum=0, maximum=10),
            "max": Param(int, minimum=0, maximum=10),
            "days": DAYS,
        },
        text=TextForm(
            "survey_answered", (ValueSlot("survey", bare=True), WindowSlot("days"))
        ),
    )
)
register(
    Kind(
        name="open_tickets",
        reads=frozenset({"tickets"}),
        label="Number of open support tickets",
        compile=per_account(compile_open_tickets),
        value=value_open_tickets,
        describe=lambda p: (
            f"open {'/'.join(p['priorities']) or 'any-priority'} tickets "
            f"{p['op']} {p['value']}"
        ),
        params={
            "op": OP,
            "value": COUNT,
            "priorities": Param(
                list, required=False, default=[], choices=tuple(TicketPriority.values)
            ),
        },
        text=TextForm("open_tickets"),
    )
)


# -- expansion ---------------------------------------------------------------
# These kinds read subscription history and contact roles up to as_of, so
# they too see only what was known at a past instant.


def compile_new_role_added(context: EvaluationContext, params: Params) -> Q:
    return Q(Exists(_new_role_contacts(context, params)))


def value_new_role(context: EvaluationContext, params: Params) -> Subquery:
    """Select the role of the latest contact that brought a new role."""
    latest = _new_role_contacts(context, params).order_by("-added_at", "-pk")
    return Subquery(latest.values("role")[:1])


def _new_role_contacts(context: EvaluationContext, params: Params) -> Any:
    """Select contacts added in the window whose role no earlier contact had.

    The first contact of an account does not count, because a new role needs
    a team that was already there. Roles compare case-insensitively, and
    blank roles never count.
    """
    holders_before = Contact.objects.filter(
        account=OuterRef("account"),
        role__iexact=OuterRef("role"),
        added_at__lt=OuterRef("added_at"),
    )
    team_before = Contact.objects.filter(
        account=OuterRef("account"), added_at__lt=OuterRef("added_at")
    )
    newcomers = (
        Contact.objects.filter(
            account=account_ref(context),
            added_at__gt=context.as_of - timedelta(days=params["days"]),
            added_at__lte=context.as_of,
        )
        .exclude(role="")
        .filter(Exists(team_before))
        .exclude(Exists(holders_before))
    )
    return newcomers


def compile_subscription_plan(context: EvaluationContext, params: Params) -> Q:
    """Match a paid subscription on one of the plans in effect on the as_of date.

    A subscription is in effect from started_on up to, not including,
    ended_on. Trials do not count. An account without any subscription rows
    falls back to its current Account.plan, so hand-made accounts still work.
    """
    in_effect = _paid_in_effect(context).filter(plan__in=params["plans"])
    any_subscription = Subscription.objects.filter(account=account_ref(context))
    current_plan = Q(**{f"{account_field(context, 'plan')}__in": params["plans"]})
    return Q(Exists(in_effect)) | (~Q(Exists(any_subscription)) & current_plan)


def value_subscription_plan(context: EvaluationContext, params: Params) -> Coalesce:
    """Select the plan in effect on the as_of date, by the rule the compiler uses.

    Among overlapping paid subscriptions it prefers one on a listed plan,
    then the latest started, so the value is on a listed plan exactly when
    the leaf holds. Without any subscription rows it is Account.plan, and
    with rows but none paid and in effect it is NULL.
    """
    listed = ExpressionWrapper(Q(plan__in=params["plans"]), output_field=BooleanField())
    in_effect = (
        _paid_in_effect(context)
        .annotate(listed=listed)
        .order_by("-listed", "-started_on", "-pk")
    )
    any_subscription = Subscription.objects.filter(account=account_ref(context))
    current_plan = Case(
        When(~Q(Exists(any_subscription)), then=F(account_field(context, "plan"))),
        default=None,
        output_field=CharField(),
    )
    return Coalesce(
        Subquery(in_effect.values("plan")[:1], output_field=CharField()),
        current_plan,
    )


def _paid_in_effect(context: EvaluationContext) -> Any:
    """Select paid subscriptions in effect on the as_of date.

    A subscription is in effect from started_on up to, not including,
    ended_on.
    """
    today = as_of_date(context)
    return Subscription.objects.filter(
        account=account_ref(context), started_on__lte=today, is_trial=False
    ).filter(Q(ended_on__isnull=True) | Q(ended_on__gt=today))


def compile_upgraded_within(context: EvaluationContext, params: Params) -> Q:
    """Match a subscription marked as an upgrade that started in the last N days."""
    return Q(Exists(_recent_upgrades(context, params)))


def value_upgraded_on(context: EvaluationContext, params: Params) -> Subquery:
    """Select the start date of the latest upgrade in the window."""
    latest = _recent_upgrades(context, params).order_by("-started_on")
    return Subquery(latest.values("started_on")[:1])


def _recent_upgrades(context: EvaluationContext, params: Params) -> Any:
    today = as_of_date(context)
    return Subscription.objects.filter(
        account=account_ref(context),
        is_upgrade=True,
        started_on__gt=today - timedelta(days=params["days"]),
        started_on__lte=today,
    )


register(
    Kind(
        name="new_role_added",
        reads=frozenset({"contacts"}),
        label="A contact with a role new to the account added in the last N days",
        compile=per_account(compile_new_role_added),
        value=value_new_role,
        describe=lambda p: (
            f"a contact with a new role added in the last {p['days']} days"
        ),
        params={"days": DAYS},
        text=TextForm("new_role_added", (WindowSlot("days"),)),
    )
)
register(
    Kind(
        name="subscription_plan",
        reads=frozenset({"subscriptions"}),
        label="Paid subscription on one of the plans",
        compile=per_account(compile_subscription_plan),
        value=value_subscription_plan,
        describe=lambda p: "subscribed to " + " or ".join(p["plans"]),
        params={"plans": Param(list, choices=tuple(Plan.values))},
        text=TextForm("subscribed_to", (ValueSlot("plans"),)),
    )
)
register(
    Kind(
        name="upgraded_within",
        reads=frozenset({"subscriptions"}),
        label="Subscription upgraded in the last N days",
        compile=per_account(compile_upgraded_within),
        value=value_upgraded_on,
        describe=lambda p: f"upgraded in the last {p['days']} days",
        params={"days": DAYS},
        text=TextForm("upgraded", (WindowSlot("days"),)),
    )
)


def compile_contact_added_within(context: EvaluationContext, params: Params) -> Q:
    """Match a contact that joined its account in the last N days."""
    return Q(
        added_at__gt=context.as_of - timedelta(days=params["days"]),
        added_at__lte=context.as_of,
    )


def value_added_at(context: EvaluationContext, params: Params) -> F:
    return F("added_at")


register(
    Kind(
        name="contact_added_within",
        reads=frozenset({"contacts"}),
        label="The contact joined the account in the last N days",
        compile=compile_contact_added_within,
        value=value_added_at,
        describe=lambda p: f"joined in the last {p['days']} days",
        params={"days": DAYS},
        subjects=("contact",),
        text=TextForm("joined", (WindowSlot("days"),)),
    )
)
