"""Occurrence keys: which occurrence of a matching subject a firing belongs to.

Each policy gives an expression that the evaluation query annotates on every
matching subject, so the key costs no extra query per subject, and a Python
function that turns the annotated value into the stored text key. The unique
constraint on (trigger, subject, key) then decides whether the subject fires.
"""

from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import (
    CharField,
    F,
    Func,
    IntegerField,
    OuterRef,
    Subquery,
    Value,
)
from django.db.models.expressions import Combinable
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.utils import timezone

from conditions import EvaluationContext
from customers.models import SurveyResponse, UsageEvent
from triggers import reentry
from triggers.models import Occurrence, Trigger

NO_RENEWAL_DATE = "none"
NEVER_USED = "never"
NO_SURVEY_RESPONSE = "none"


def find_leaves(tree: Any, kind: str) -> Iterator[Mapping[str, Any]]:
    """Yield the leaves of a condition tree that have the given kind, in order."""
    if not isinstance(tree, Mapping):
        return
    if tree.get("kind") == kind:
        yield tree
    for key in ("all", "any"):
        for child in tree.get(key, ()):
            yield from find_leaves(child, kind)
    if "not" in tree:
        yield from find_leaves(tree["not"], kind)


def key_expression(
    occurrence: str,
    tree: Any,
    context: EvaluationContext,
    trigger: Trigger | None = None,
) -> Combinable | Subquery:
    """Return the expression whose value, per subject, identifies the occurrence.

    The policies that read the trigger's own history (every N days, each new
    match) need the saved trigger and raise ValueError without it.
    """
    constant = constant_key(occurrence, context)
    if constant is not None:
        return Value(constant)
    if occurrence == Occurrence.RENEWAL_DATE:
        field = (
            "account__renewal_date" if context.subject == "contact" else "renewal_date"
        )
        return F(field)
    if occurrence == Occurrence.INACTIVITY_SPELL:
        return _last_usage_before(tree, context)
    if occurrence == Occurrence.SURVEY_RESPONSE:
        return _latest_survey_response(tree, context)
    if occurrence in (Occurrence.EVERY_N_DAYS, Occurrence.EACH_NEW_MATCH):
        if trigger is None or trigger.pk is None:
            raise ValueError(f"occurrence policy {occurrence!r} needs a saved trigger")
        return reentry.key_expression(occurrence, trigger, context)
    known = ", ".join(Occurrence.values)
    raise ValueError(f"unknown occurrence policy {occurrence!r}; use one of {known}")


def constant_key(occurrence: str, context: EvaluationContext) -> str | None:
    """Return the key every subject shares at this instant, or None if it varies.

    "Once" and "once a day" give all subjects of a sweep the same key, so
    a sweep can tell which subjects fired before inside its matching query.
    """
    if occurrence == Occurrence.ONCE:
        return "once"
    if occurrence == Occurrence.DAILY:
        return timezone.localdate(context.as_of).isoformat()
    return None


def key_text_expression(
    occurrence: str, tree: Any, context: EvaluationContext
) -> Combinable | None:
    """Return an expression that gives key_text's text in SQL, or None.

    With the stored text at hand, the matching query itself can leave out
    the subjects that already fired for their key, instead of fetching
    every match and comparing keys in Python. The policies that read the
    trigger's own history (every N days, each new match) have no such
    expression.
    """
    constant = constant_key(occurrence, context)
    if constant is not None:
        return Value(constant, output_field=CharField())
    if occurrence == Occurrence.RENEWAL_DATE:
        field = (
            "account__renewal_date" if context.subject == "contact" else "renewal_date"
        )
        return Coalesce(IsoDateText(F(field)), Value(NO_RENEWAL_DATE))
    if occurrence == Occurrence.INACTIVITY_SPELL:
        last_use = TruncDate(
            _last_usage_before(tree, context), tzinfo=timezone.get_current_timezone()
        )
        return Coalesce(IsoDateText(last_use), Value(NEVER_USED))
    if occurrence == Occurrence.SURVEY_RESPONSE:
        response = Cast(_latest_survey_response(tree, context), CharField())
        return Coalesce(
            NullPropagatingConcat(Value("response:"), response),
            Value(NO_SURVEY_RESPONSE),
        )
    return None


class NullPropagatingConcat(Func):
    """Text joined with ||, which is NULL when a part is (Concat treats it as '')."""

    template = "(%(expressions)s)"
    arg_joiner = " || "
    output_field = CharField()


class IsoDateText(Func):
    """A date as YYYY-MM-DD text, as date.isoformat() writes it."""

    # to_char, because a date cast to text follows the session's DateStyle.
    function = "to_char"
    template = "%(function)s(%(expressions)s, 'YYYY-MM-DD')"
    output_field = CharField()

    def as_sqlite(self, compiler: Any, connection: Any, **extra: Any) -> Any:
        # SQLite keeps dates as YYYY-MM-DD text already.
        return compiler.compile(self.source_expressions[0])


def key_text(occurrence: str, value: Any) -> str:
    """Turn an annotated key value into the text stored on the firing."""
    if occurrence == Occurrence.RENEWAL_DATE:
        return value.isoformat() if isinstance(value, date) else NO_RENEWAL_DATE
    if occurrence == Occurrence.INACTIVITY_SPELL:
        if isinstance(value, datetime):
            return timezone.localdate(value).isoformat()
        return NEVER_USED
    if occurrence == Occurrence.SURVEY_RESPONSE:
        return f"response:{value}" if value is not None else NO_SURVEY_RESPONSE
    if occurrence in (Occurrence.EVERY_N_DAYS, Occurrence.EACH_NEW_MATCH):
        return reentry.key_text(occurrence, value)
    return str(value)


def _last_usage_before(tree: Any, context: EvaluationContext) -> Subquery:
    """Select the time of the subject's last usage event at or before as_of.

    A spell of inactivity is identified by the usage event that preceded it,
    so a subject fires again only after it used the product and went quiet
    again. The event filters and scope of the tree's first inactivity leaf
    apply, so "no exports in 10 days" restarts with the next export only.
    """
    leaf = next(find_leaves(tree, "inactivity"), {})
    events = UsageEvent.objects.filter(occurred_at__lte=context.as_of)
    if context.subject == "contact" and leaf.get("scope", "self") == "self":
        events = events.filter(contact=OuterRef("pk"))
    elif context.subject == "contact":
        events = events.filter(account=OuterRef("account_id"))
    else:
        events = events.filter(account=OuterRef("pk"))
    if leaf.get("event"):
        events = events.filter(name=leaf["event"])
    if leaf.get("features"):
        events = events.filter(feature__in=leaf["features"])
    latest = events.order_by("-occurred_at").values("occurred_at")[:1]
    return Subquery(latest)


def _latest_survey_response(tree: Any, context: EvaluationContext) -> Subquery:
    """Select the id of the subject's latest survey response at or before as_of.

    When the tree has a survey_score leaf, only responses that leaf accepts
    count (survey, score range, window), so the key is the response that
    made the condition true.
    """
    responses = SurveyResponse.objects.filter(submitted_at__lte=context.as_of)
    if context.subject == "contact":
        responses = responses.filter(contact=OuterRef("pk"))
    else:
        responses = responses.filter(account=OuterRef("pk"))
    leaf = next(find_leaves(tree, "survey_score"), None)
    if leaf is not None:
        responses = responses.filter(
            kind=leaf["survey"],
            score__gte=leaf["min"],
            score__lte=leaf["max"],
            submitted_at__gt=context.as_of - timedelta(days=leaf["days"]),
        )
    latest = responses.order_by("-submitted_at", "-pk").values("pk")[:1]
    return Subquery(latest, output_field=IntegerField())
