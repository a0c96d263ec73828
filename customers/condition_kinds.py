"""Customer condition kinds added with the text language of conditions.

First occurrences, account roll-ups over contacts, change over time,
tickets by priority, topic and status, and survey scores. The kinds that
predate the language are in customers/conditions.py; both read only rows
dated at or before as_of.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.db.models import (
    Avg,
    Exists,
    ExpressionWrapper,
    FloatField,
    IntegerField,
    OuterRef,
    Q,
    Subquery,
    Value,
)

from conditions import (
    ConditionSlot,
    EvaluationContext,
    EventSlot,
    Kind,
    NestedCondition,
    Param,
    TextForm,
    ValueSlot,
    WindowSlot,
    describe,
    register,
)
from customers.conditions import (
    COUNT,
    DAYS,
    EVENT,
    FEATURES,
    OP,
    SCOPE,
    account_ref,
    as_of_date,
    compare,
    compare_count,
    count_of,
    per_account,
    usage_events,
    usage_events_so_far,
)
from customers.models import (
    Contact,
    HealthScore,
    SupportTicket,
    SurveyKind,
    SurveyResponse,
    TicketPriority,
)

Params = Mapping[str, Any]
TICKET_STATUSES = ("open", "closed")


# -- usage ---------------------------------------------------------------------


def compile_first_event(context: EvaluationContext, params: Params) -> Q:
    """Match when the subject's first matching event ever falls in the window."""
    in_window = usage_events(context, params)
    window_start = context.as_of - timedelta(days=params["days"])
    earlier = usage_events_so_far(context, params).filter(occurred_at__lte=window_start)
    return Q(Exists(in_window)) & ~Q(Exists(earlier))


def value_first_event(context: EvaluationContext, params: Params) -> Subquery:
    """Select the time of the subject's first matching event up to as_of."""
    first = usage_events_so_far(context, params).order_by("occurred_at")
    return Subquery(first.values("occurred_at")[:1])


# -- contacts of the account -----------------------------------------------------


def contacts_of_account(context: EvaluationContext) -> Any:
    """Select the contacts of the subject's account that were added by as_of."""
    return Contact.objects.filter(
        account=account_ref(context), added_at__lte=context.as_of
    )


def compile_any_contact(context: EvaluationContext, params: Params) -> Q:
    # params["where"] arrives compiled: a Q over Contact, applied inside the
    # subquery, so its own OuterRefs point at these contacts.
    return Q(Exists(contacts_of_account(context).filter(params["where"])))


def value_contacts_matching(context: EvaluationContext, params: Params) -> Any:
    return count_of(contacts_of_account(context).filter(params["where"]))


def compile_contacts_matching(context: EvaluationContext, params: Params) -> Q:
    matching = contacts_of_account(context).filter(params["where"])
    return compare_count(matching, params["op"], params["value"])


def value_contacts_added(context: EvaluationContext, params: Params) -> Any:
    return count_of(_contacts_added(context, params))


def compile_contacts_added(context: EvaluationContext, params: Params) -> Q:
    added = _contacts_added(context, params)
    return compare_count(added, params["op"], params["value"])


def _contacts_added(context: EvaluationContext, params: Params) -> Any:
    return contacts_of_account(context).filter(
        added_at__gt=context.as_of - timedelta(days=params["days"])
    )


# -- health --------------------------------------------------------------------


def _score_on_or_before(context: EvaluationContext, day: Any) -> Subquery:
    latest = (
        HealthScore.objects.filter(account=account_ref(context), scored_on__lte=day)
        .order_by("-scored_on")
        .values("score")[:1]
    )
    return Subquery(latest, output_field=IntegerField())


def value_health_change(context: EvaluationContext, params: Params) -> Any:
    """Latest score on or before today minus latest on or before today - N days.

    NULL, so no match, when either score is missing.
    """
    today = as_of_date(context)
    now = _score_on_or_before(context, today)
    before = _score_on_or_before(context, today - timedelta(days=params["days"]))
    return ExpressionWrapper(now - before, output_field=IntegerField())


def compile_health_change(context: EvaluationContext, params: Params) -> Q:
    return compare(value_health_change(context, params), params["op"], params["value"])


# -- tickets -------------------------------------------------------------------


def tickets(context: EvaluationContext, params: Params) -> Any:
    """Select the account's tickets opened by as_of that pass the filters.

    The window, when given, bounds opened_at. Status is taken as of as_of:
    open means not closed by then.
    """
    selected = SupportTicket.objects.filter(
        account=account_ref(context), opened_at__lte=context.as_of
    )
    if params.get("days"):
        selected = selected.filter(
            opened_at__gt=context.as_of - timedelta(days=params["days"])
        )
    if params.get("priority"):
        selected = selected.filter(priority__in=params["priority"])
    if params.get("topic"):
        selected = selected.filter(topic__in=params["topic"])
    closed = Q(closed_at__isnull=False, closed_at__lte=context.as_of)
    if params.get("status") == "open":
        selected = selected.exclude(closed)
    elif params.get("status") == "closed":
        selected = selected.filter(closed)
    return selected


def value_tickets(context: EvaluationContext, params: Params) -> Any:
    return count_of(tickets(context, params))


def compile_tickets(context: EvaluationContext, params: Params) -> Q:
    return compare_count(tickets(context, params), params["op"], params["value"])


# -- surveys -------------------------------------------------------------------


def survey_responses(context: EvaluationContext, params: Params) -> Any:
    """Select the subject's answers to one survey, up to as_of, in the window."""
    responses = SurveyResponse.objects.filter(
        kind=params["survey"], submitted_at__lte=context.as_of
    )
    if params.get("days"):
        responses = responses.filter(
            submitted_at__gt=context.as_of - timedelta(days=params["days"])
        )
    if context.subject == "contact":
        return responses.filter(contact=OuterRef("pk"))
    return responses.filter(account=OuterRef("pk"))


def value_latest_score(context: EvaluationContext, params: Params) -> Subquery:
    latest = survey_responses(context, params).order_by("-submitted_at", "-pk")
    return Subquery(latest.values("score")[:1], output_field=IntegerField())


def compile_latest_score(context: EvaluationContext, params: Params) -> Q:
    return compare(value_latest_score(context, params), params["op"], params["value"])


def value_average_score(context: EvaluationContext, params: Params) -> Subquery:
    averaged = (
        survey_responses(context, params)
        .order_by()
        .values(group=Value(1))
        .annotate(average=Avg("score", output_field=FloatField()))
        .values("average")
    )
    return Subquery(averaged, output_field=FloatField())


def compile_average_score(context: EvaluationContext, params: Params) -> Q:
    return compare(value_average_score(context, params), params["op"], params["value"])


# -- registration ----------------------------------------------------------------

WHERE = Param(
    NestedCondition,
    subject="contact",
    help="A condition over each contact of the account.",
)
OPTIONAL_DAYS = Param(
    int,
    required=False,
    minimum=1,
    maximum=3650,
    help="Length of the window in days; absent for all time up to as_of.",
)
SURVEY = Param(str, choices=tuple(SurveyKind.values), help="nps or csat.")


def _window_words(params: Params) -> str:
    return f" in the last {params['days']} days" if params.get("days") else ""


register(
    Kind(
        name="first_event",
        reads=frozenset({"usage"}),
        label="First usage event ever falls in the last N days",
        compile=compile_first_event,
        value=value_first_event,
        describe=lambda p: (
            f"first {p.get('event') or 'usage'} event in the last {p['days']} days"
        ),
        params={"days": DAYS, "event": EVENT, "features": FEATURES, "scope": SCOPE},
        text=TextForm("first_seen", (EventSlot("event"), WindowSlot("days"))),
    )
)
register(
    Kind(
        name="any_contact",
        reads=frozenset({"contacts"}),
        label="Any contact of the account matches a condition",
        compile=per_account(compile_any_contact),
        # The number of the account's contacts that match, at least 1 when
        # the leaf holds; contacts(...) compares the same count.
        value=value_contacts_matching,
        describe=lambda p: f"any contact of the account with {describe(p['where'])}",
        params={"where": WHERE},
        text=TextForm("any_contact", (ConditionSlot("where"),)),
    )
)
register(
    Kind(
        name="contacts_matching",
        reads=frozenset({"contacts"}),
        label="Number of the account's contacts that match a condition",
        compile=per_account(compile_contacts_matching),
        value=value_contacts_matching,
        describe=lambda p: (
            f"contacts with {describe(p['where'])} {p['op']} {p['value']}"
        ),
        params={"where": WHERE, "op": OP, "value": COUNT},
        text=TextForm("contacts", (ConditionSlot("where"),)),
    )
)
register(
    Kind(
        name="contacts_added",
        reads=frozenset({"contacts"}),
        label="Number of contacts added to the account in the last N days",
        compile=per_account(compile_contacts_added),
        value=value_contacts_added,
        describe=lambda p: (
            f"contacts added in the last {p['days']} days {p['op']} {p['value']}"
        ),
        params={"days": DAYS, "op": OP, "value": COUNT},
        text=TextForm("contacts_added", (WindowSlot("days"),)),
    )
)
register(
    Kind(
        name="health_change",
        reads=frozenset({"health"}),
        label="Change of the health score over the last N days",
        compile=per_account(compile_health_change),
        value=value_health_change,
        describe=lambda p: (
            f"health score change over {p['days']} days {p['op']} {p['value']}"
        ),
        params={
            "days": DAYS,
            "op": OP,
            "value": Param(int, minimum=-100, maximum=100, help="Points."),
        },
        text=TextForm("health_change", (WindowSlot("days"),)),
    )
)
register(
    Kind(
        name="tickets",
        reads=frozenset({"tickets"}),
        label="Number of support tickets by priority, topic and status",
        compile=per_account(compile_tickets),
        value=value_tickets,
        describe=lambda p: (
            f"{p.get('status') or ''} tickets{_window_words(p)} {p['op']} {p['value']}"
        ).strip(),
        params={
            "days": OPTIONAL_DAYS,
            "op": OP,
            "value": COUNT,
            "priority": Param(
                list,
                required=False,
                choices=tuple(TicketPriority.values),
                help="Priorities; absent for any.",
            ),
            "topic": Param(list, required=False, help="Topics; absent for any."),
            "status": Param(
                str,
                required=False,
                choices=TICKET_STATUSES,
                help="open or closed as of the evaluation; absent for both.",
            ),
        },
        text=TextForm("tickets", (WindowSlot("days"),)),
    )
)
register(
    Kind(
        name="survey_latest",
        reads=frozenset({"surveys"}),
        label="Score of the latest survey answer",
        compile=compile_latest_score,
        value=value_latest_score,
        describe=lambda p: (
            f"latest {p['survey'].upper()} score{_window_words(p)} "
            f"{p['op']} {p['value']}"
        ),
        params={
            "survey": SURVEY,
            "days": OPTIONAL_DAYS,
            "op": OP,
            "value": Param(int, minimum=0, maximum=10, help="Score."),
        },
        text=TextForm(
            "latest_score", (ValueSlot("survey", bare=True), WindowSlot("days"))
        ),
    )
)
register(
    Kind(
        name="survey_average",
        reads=frozenset({"surveys"}),
        label="Average survey score in the last N days",
        compile=compile_average_score,
        value=value_average_score,
        describe=lambda p: (
            f"average {p['survey'].upper()} score{_window_words(p)} "
            f"{p['op']} {p['value']}"
        ),
        params={
            "survey": SURVEY,
            "days": DAYS,
            "op": OP,
            "value": Param(float, minimum=0, maximum=10, help="Score."),
        },
        text=TextForm(
            "average_score", (ValueSlot("survey", bare=True), WindowSlot("days"))
        ),
    )
)
