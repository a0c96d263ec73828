"""The state of each success criterion for an account, and its progress in its stage.

A criterion is in one of four states for an account:

- met: an evaluation recorded it at or before as_of, in any stage;
- behind: unmet, in the stage the account was in at as_of, and the
  criterion's target days since the account entered the stage have passed;
- on track: unmet, in the account's stage at as_of, and either the target
  has not passed or the criterion has no target days;
- not applicable: unmet, and it cannot count now, because it belongs to
  another stage than the account's at as_of (or the account had no stage
  yet), or because a date its condition is measured from, such as the
  kickoff date, is missing, so no evaluation can see it met.

Nothing here evaluates a condition: the states read the criterion records
and the stage history, so the same call as of a past instant returns what
was known then.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db import models
from django.db.models import Count, IntegerField, Q, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from customers.models import Account
from lifecycle.models import (
    Advancement,
    CriterionMet,
    Stage,
    StageChange,
    SuccessCriterion,
)


class CriterionState(models.TextChoices):
    MET = "met", "Met"
    ON_TRACK = "on_track", "On track"
    BEHIND = "behind", "Behind"
    NOT_APPLICABLE = "not_applicable", "Not applicable"


@dataclass(frozen=True)
class CriterionStatus:
    """One success criterion of one account, as of an instant."""

    criterion: SuccessCriterion
    state: CriterionState
    met_at: datetime | None
    # Entry into the stage plus target_days; only for the account's stage.
    due_at: datetime | None
    # Why the criterion is not applicable, in words; blank otherwise.
    reason: str = ""
    # Whether the criterion counts for moving the account on (see
    # Stage.advancement).
    required: bool = True

    @property
    def met(self) -> bool:
        return self.state == CriterionState.MET

    @property
    def overdue(self) -> bool:
        return self.state == CriterionState.BEHIND


@dataclass(frozen=True)
class StageProgress:
    """An account's progress through the stage it was in at an instant."""

    stage: Stage
    entered_at: datetime
    time_in_stage: timedelta
    # Criteria of the stage met during this stay, and in total.
    met: int
    total: int
    # Of the criteria that must be met to move on: how many, and how many are.
    required: int
    required_met: int

    @property
    def complete(self) -> bool:
        """Whether every required criterion is met; a stage without any never is."""
        return self.required > 0 and self.required_met == self.required


@dataclass(frozen=True)
class AccountCriteria:
    """An account's progress in its stage and the status of every criterion."""

    as_of: datetime
    # None when the account had no stage at as_of.
    progress: StageProgress | None
    statuses: list[CriterionStatus]


def account_criteria(
    account: Account, as_of: datetime | None = None
) -> AccountCriteria:
    """Read every criterion's state and the stage progress of one account.

    Runs three queries whatever the number of criteria or records.
    """
    as_of = as_of or timezone.now()
    if as_of.tzinfo is None:
        raise ValueError(
            f"instant {as_of.isoformat()} has no time zone; pass an aware datetime"
        )
    met_at = dict(
        CriterionMet.objects.filter(account=account, met_at__lte=as_of).values_list(
            "criterion_id", "met_at"
        )
    )
    latest = (
        StageChange.objects.filter(account=account, changed_at__lte=as_of)
        .select_related("to_stage")
        .order_by("-changed_at", "-id")
        .first()
    )
    criteria = list(
        SuccessCriterion.objects.select_related("stage").order_by(
            "stage__order", "order", "id"
        )
    )

    statuses = [
        _status(criterion, account, met_at.get(criterion.pk), latest, as_of)
        for criterion in criteria
    ]
    progress = None
    if latest is not None:
        progress = _progress(latest, statuses, as_of)
    return AccountCriteria(as_of=as_of, progress=progress, statuses=statuses)


def criteria_status(
    account: Account, as_of: datetime | None = None
) -> list[CriterionStatus]:
    """Return the status of every success criterion in stage order, as of as_of."""
    return account_criteria(account, as_of).statuses


def is_required(criterion: SuccessCriterion) -> bool:
    """Tell whether the criterion counts for moving an account on from its stage."""
    if criterion.stage.advancement == Advancement.CHOSEN:
        return criterion.required_to_advance
    return True


def required_criteria_q(prefix: str = "") -> Q:
    """Select the criteria that count for advancing, as a Q over SuccessCriterion.

    prefix names the path to the criterion, such as "criterion__" from
    CriterionMet.
    """
    return Q(**{f"{prefix}stage__advancement": Advancement.ALL}) | Q(
        **{f"{prefix}required_to_advance": True}
    )


def count_rows(queryset: Any) -> Coalesce:
    """Count a correlated subquery's rows, giving 0 rather than NULL for none."""
    counted = (
        queryset.order_by()
        .values(group=Value(1))
        .annotate(total=Count("pk"))
        .values("total")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def _status(
    criterion: SuccessCriterion,
    account: Account,
    met_at: datetime | None,
    latest: StageChange | None,
    as_of: datetime,
) -> CriterionStatus:
    required = is_required(criterion)
    if met_at is not None:
        return CriterionStatus(
            criterion, CriterionState.MET, met_at, None, required=required
        )

    if latest is None or latest.to_stage_id != criterion.stage_id:
        return CriterionStatus(
            criterion,
            CriterionState.NOT_APPLICABLE,
            None,
            None,
            reason=_other_stage_reason(criterion, latest),
            required=required,
        )

    due_at = None
    if criterion.target_days is not None:
        due_at = latest.changed_at + timedelta(days=criterion.target_days)
    missing = missing_anchor(criterion.condition, account)
    if missing:
        return CriterionStatus(
            criterion,
            CriterionState.NOT_APPLICABLE,
            None,
            due_at,
            reason=f"the account has no {missing}, which the condition counts from",
            required=required,
        )
    state = (
        CriterionState.BEHIND
        if due_at is not None and due_at < as_of
        else CriterionState.ON_TRACK
    )
    return CriterionStatus(criterion, state, None, due_at, required=required)


def _other_stage_reason(criterion: SuccessCriterion, latest: StageChange | None) -> str:
    if latest is None:
        return "the account had no stage yet"
    return (
        f"it belongs to {criterion.stage.name}, and the account was in "
        f"{latest.to_stage.name}"
    )


def _progress(
    latest: StageChange, statuses: list[CriterionStatus], as_of: datetime
) -> StageProgress:
    own = [
        status for status in statuses if status.criterion.stage_id == latest.to_stage_id
    ]
    required = [status for status in own if status.required]
    return StageProgress(
        stage=latest.to_stage,
        entered_at=latest.changed_at,
        time_in_stage=as_of - latest.changed_at,
        met=sum(status.met for status in own),
        total=len(own),
        required=len(required),
        required_met=sum(status.met for status in required),
    )


# -- dates a condition counts from ------------------------------------------------

# The kinds whose "after" parameter names the date they count from.
_ANCHOR_PARAMS = {"first_usage_within": "after"}


def missing_anchor(tree: Any, account: Account) -> str:
    """Name a date the condition needs and the account lacks, or return "".

    A leaf needs a date when it is measured from it: first_usage_within
    from the kickoff or signup date, and days_until, days_since and
    date_within from the account date field they name. A missing date makes
    such a leaf false for good. A group of "all" needs what any child
    needs, and a group of "any" only what every child needs. A "not" needs
    nothing, because its leaf being false makes it true.
    """
    if not isinstance(tree, Mapping):
        return ""
    if "all" in tree:
        for child in tree["all"]:
            missing = missing_anchor(child, account)
            if missing:
                return missing
        return ""
    if "any" in tree:
        found = [missing_anchor(child, account) for child in tree["any"]]
        return found[0] if found and all(found) else ""
    if "not" in tree:
        return ""

    field_name = anchor_field(tree)
    if field_name and getattr(account, field_name, None) is None:
        return field_name.replace("_", " ")
    return ""


def anchor_field(leaf: Mapping[str, Any]) -> str:
    """Return the nullable Account date field a leaf is measured from, or ""."""
    kind = leaf.get("kind")
    if kind in _ANCHOR_PARAMS:
        name = f"{leaf.get(_ANCHOR_PARAMS[kind]) or 'kickoff'}_date"
    else:
        field = leaf.get("field")
        if not isinstance(field, str) or not field.startswith("account."):
            return ""
        name = field.removeprefix("account.")
    try:
        model_field = Account._meta.get_field(name)
    except FieldDoesNotExist:
        return ""
    if isinstance(model_field, models.DateField) and model_field.null:
        return name
    return ""


def missing_anchor_q(tree: Any) -> Q | None:
    """Select the accounts that lack a date the condition needs, as missing_anchor().

    Returns None when the condition needs no date.
    """
    if not isinstance(tree, Mapping) or "not" in tree:
        return None
    if "all" in tree or "any" in tree:
        parts = [missing_anchor_q(child) for child in tree.get("all") or tree["any"]]
        if "all" in tree:
            needed = [part for part in parts if part is not None]
            return _combine(needed, any_of=True) if needed else None
        if not parts or any(part is None for part in parts):
            return None
        return _combine([part for part in parts if part is not None], any_of=False)

    field_name = anchor_field(tree)
    return Q(**{f"{field_name}__isnull": True}) if field_name else None


def _combine(parts: list[Q], *, any_of: bool) -> Q:
    combined = parts[0]
    for part in parts[1:]:
        combined = combined | part if any_of else combined & part
    return combined
