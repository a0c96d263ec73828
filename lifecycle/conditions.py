"""Condition kinds over the lifecycle: an account's stage, its time in it, and entries.

All read the stage history (StageChange), so evaluation as of a past
instant sees the stage the account was in then. A contact is in the stage
of its account. Saving a condition that names a missing stage is rejected.

entered_stage makes a stage change an event that triggers react to: it
matches accounts that moved into a stage in the last N days, by criteria,
by hand or on placement. "Stuck in a stage" is days_in_stage.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.db.models import Exists, F, OuterRef, Q, Subquery
from django.db.models.functions import TruncDate
from django.utils import timezone

from conditions import (
    ConditionError,
    EvaluationContext,
    Kind,
    MissingReferenceError,
    Param,
    Scalar,
    Subject,
    TextForm,
    ValueSlot,
    WindowSlot,
    compare,
    compare_local_date,
    register,
)
from customers.conditions import per_account
from lifecycle.models import Stage, StageChange

Params = Mapping[str, Any]
REVERSED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}


def _latest_change(context: EvaluationContext, nested: bool = False) -> Any:
    """Select the account's latest stage change at or before as_of.

    nested is for a subquery inside another subquery, whose outer
    reference must reach one level further out to find the subject.
    """
    account = OuterRef("account_id" if context.subject == "contact" else "pk")
    if nested:
        account = OuterRef(account)
    return StageChange.objects.filter(
        account=account, changed_at__lte=context.as_of
    ).order_by("-changed_at", "-pk")


def value_stage(context: EvaluationContext, params: Params) -> Subquery:
    return Subquery(_latest_change(context).values("to_stage__slug")[:1])


def compile_stage(context: EvaluationContext, params: Params) -> Q:
    return compare(value_stage(context, params), params["op"], params["value"])


def value_stage_entered(context: EvaluationContext, params: Params) -> TruncDate:
    """Select the date, in the site time zone, the account entered its stage.

    A preview shows it with its distance from today in days, which is the
    count that days_in_stage compares.
    """
    entered = Subquery(_latest_change(context).values("changed_at")[:1])
    return TruncDate(entered, tzinfo=timezone.get_current_timezone())


def compile_days_in_stage(context: EvaluationContext, params: Params) -> Q:
    """Compare whole calendar days since the account entered its stage.

    Days are counted between dates in the site time zone, so an account that
    entered yesterday evening has been in its stage 1 day this morning.
    """
    # today - entered OP n  <=>  entered REVERSED(OP) today - n.
    today = timezone.localdate(context.as_of)
    day = today - timedelta(params["value"])
    op = REVERSED[params["op"]]
    if not params.get("stage"):
        entered = Subquery(_latest_change(context).values("changed_at")[:1])
        return compare_local_date(entered, op, day)

    # With a stage, both columns are tested on the one latest row. Two
    # subqueries, one for the date and one for the stage, would look the
    # latest row up twice per account.
    latest = Subquery(_latest_change(context, nested=True).values("pk")[:1])
    row = StageChange.objects.filter(
        compare_local_date(F("changed_at"), op, day),
        pk=latest,
        to_stage__slug=params["stage"],
    )
    return Q(Exists(row))


def _entries(context: EvaluationContext, params: Params) -> Any:
    """Select the account's moves into the stage in (as_of - N days, as_of]."""
    account = OuterRef("account_id" if context.subject == "contact" else "pk")
    return StageChange.objects.filter(
        account=account,
        to_stage__slug=params["stage"],
        changed_at__gt=context.as_of - timedelta(days=params["days"]),
        changed_at__lte=context.as_of,
    )


def compile_entered_stage(context: EvaluationContext, params: Params) -> Q:
    """Match accounts with a move into the stage in the window.

    The move counts even when the account has left the stage since, because
    a trigger over it reacts to the entry and not to the stay.
    """
    return Q(Exists(_entries(context, params)))


def value_entered_stage(context: EvaluationContext, params: Params) -> Subquery:
    """Select when the account last entered the stage within the window."""
    latest = _entries(context, params).order_by("-changed_at", "-pk")
    return Subquery(latest.values("changed_at")[:1])


def check_stage_value(params: Params, subject: Subject) -> None:
    value = params["value"]
    if params["op"] == "in" and not isinstance(value, list):
        raise ConditionError(
            '\'in\' needs a list, for example ["adoption", "expansion"]'
        )
    if params["op"] != "in" and not isinstance(value, str):
        raise ConditionError(f'write the stage as text, for example "{value}"')


def check_stage_values(params: Params) -> None:
    value = params["value"]
    _check_stage_slugs(value if isinstance(value, list) else [value])


def check_stage_param(params: Params) -> None:
    _check_stage_slugs([params["stage"]] if params.get("stage") else [])


def _check_stage_slugs(slugs: list[str]) -> None:
    """Raise MissingReferenceError for a stage slug that does not exist."""
    known = set(Stage.objects.values_list("slug", flat=True))
    missing = [slug for slug in slugs if slug not in known]
    if missing:
        raise MissingReferenceError(
            f"stage {missing[0]!r} does not exist; stages: " + ", ".join(sorted(known))
        )


register(
    Kind(
        name="lifecycle_stage",
        reads=frozenset({"stage"}),
        label="The account's lifecycle stage",
        compile=per_account(compile_stage),
        value=value_stage,
        describe=lambda p: f"lifecycle stage {p['op']} {p['value']}",
        params={
            "op": Param(str, choices=("==", "!=", "in"), help="Comparison."),
            "value": Param(Scalar, help="Stage slug, or a list of them for 'in'."),
        },
        text=TextForm("account.stage"),
        check=check_stage_value,
        check_references=check_stage_values,
    )
)
register(
    Kind(
        name="days_in_stage",
        reads=frozenset({"stage"}),
        label="Days the account has been in its current stage",
        compile=per_account(compile_days_in_stage),
        value=value_stage_entered,
        describe=lambda p: (
            f"days in {p.get('stage') or 'the current'} stage {p['op']} {p['value']}"
        ),
        params={
            "stage": Param(
                str,
                required=False,
                help="Count only while in this stage; absent for any stage.",
            ),
            "op": Param(
                str, choices=(">", ">=", "<", "<=", "==", "!="), help="Comparison."
            ),
            "value": Param(int, minimum=0, maximum=36500, help="Days."),
        },
        text=TextForm("days_in_stage", (ValueSlot("stage"),)),
        check_references=check_stage_param,
    )
)
register(
    Kind(
        name="entered_stage",
        reads=frozenset({"stage"}),
        label="Entered a lifecycle stage in the last N days",
        compile=per_account(compile_entered_stage),
        value=value_entered_stage,
        describe=lambda p: f"entered stage {p['stage']} in the last {p['days']} days",
        params={
            "stage": Param(str, help="Stage slug."),
            "days": Param(int, minimum=1, maximum=3650, help="Window in days."),
        },
        text=TextForm("entered_stage", (ValueSlot("stage"), WindowSlot("days"))),
        check_references=check_stage_param,
    )
)
