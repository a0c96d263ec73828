"""The account pages' stage section, timeline entries, list filter and column.

Registered from LifecycleConfig.ready(), because customers cannot import
lifecycle. The section shows the current stage, every success criterion
with its state, the checklist with what ticked each item, and the stage
history. To a user who may edit the account it also shows the forms of
lifecycle.views, which tick or untick an item and move the account. The
timeline source adds stage moves, criteria met, checklist ticks and
unticks. The account list gets a stage filter and a stage column, and
the attention list the rule "behind on a criterion". Each runs a fixed
number of queries.
"""

from datetime import date, datetime, timedelta
from typing import Any

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from customers.account_list import (
    AccountColumn,
    AccountFilter,
    InvalidFilter,
    register_column,
    register_filter,
)
from customers.accounts_view import Section, register_section
from customers.attention import AttentionRule, register_rule
from customers.models import Account
from customers.timeline import (
    TimelineEntry,
    TimelineSource,
    register_source,
    sorted_entries,
)
from lifecycle.checklists import account_checklist
from lifecycle.models import (
    AccountStage,
    ChecklistTick,
    ChecklistUntick,
    CriterionMet,
    Stage,
    StageChange,
    SuccessCriterion,
)
from lifecycle.reports import sum_stage_times
from lifecycle.services import stage_history
from lifecycle.status import account_criteria, missing_anchor_q


def _stage_section(account: Account, today: date) -> dict[str, Any]:
    now = timezone.now()
    criteria = account_criteria(account, now)
    progress = criteria.progress
    current_stage_id = progress.stage.pk if progress else None
    statuses = criteria.statuses
    history = stage_history(account, as_of=now)
    checklist = account_checklist(account, now)
    return {
        "progress": progress,
        "current": [s for s in statuses if s.criterion.stage_id == current_stage_id],
        "others": [s for s in statuses if s.criterion.stage_id != current_stage_id],
        "history": list(reversed(history)),
        "stage_times": sum_stage_times(history),
        "checklist": checklist,
        "checklist_ticked": sum(1 for entry in checklist if entry.tick is not None),
        # The choices of the form that moves the account by hand.
        "stages": list(Stage.objects.order_by("order")),
    }


def _stage_entries(account: Account, limit: int) -> list[TimelineEntry]:
    changes = (
        StageChange.objects.filter(account=account)
        .select_related("from_stage", "to_stage", "changed_by")
        .order_by("-changed_at", "-id")[:limit]
    )
    entries = [
        TimelineEntry(
            at=change.changed_at,
            source="stage",
            title=(
                f"Moved from {change.from_stage} to {change.to_stage}"
                if change.from_stage
                else f"Placed in {change.to_stage}"
            ),
            detail=_change_detail(change),
            tie_breaker=change.pk,
        )
        for change in changes
    ]
    met = (
        CriterionMet.objects.filter(account=account)
        .select_related("criterion__stage")
        .order_by("-met_at", "-id")[:limit]
    )
    entries += [
        TimelineEntry(
            at=row.met_at,
            source="stage",
            title=f"Met {row.criterion.name}",
            detail=f"{row.criterion.stage} criterion",
            tie_breaker=row.pk,
        )
        for row in met
    ]
    ticks = (
        ChecklistTick.objects.filter(account=account)
        .select_related("item__stage", "ticked_by")
        .order_by("-ticked_at", "-id")[:limit]
    )
    entries += [
        TimelineEntry(
            at=tick.ticked_at,
            source="stage",
            title=f"Ticked {tick.item.name}",
            detail=_tick_detail(tick),
            tie_breaker=tick.pk,
        )
        for tick in ticks
    ]
    unticks = (
        ChecklistUntick.objects.filter(account=account)
        .select_related("item", "unticked_by")
        .order_by("-unticked_at", "-id")[:limit]
    )
    entries += [
        TimelineEntry(
            at=untick.unticked_at,
            source="stage",
            title=f"Unticked {untick.item.name}",
            detail=_untick_detail(untick),
            tie_breaker=untick.pk,
        )
        for untick in unticks
    ]
    return sorted_entries(entries, limit)


def _untick_detail(untick: ChecklistUntick) -> str:
    by = untick.unticked_by.get_username() if untick.unticked_by else "a deleted user"
    return f"by {by} · {untick.reason}"


def _tick_detail(tick: ChecklistTick) -> str:
    parts = [f"{tick.item.stage} checklist", tick.get_source_display()]
    if tick.ticked_by is not None:
        parts.append(f"by {tick.ticked_by.get_username()}")
    return " · ".join(parts)


def _change_detail(change: StageChange) -> str:
    parts = [change.get_source_display()]
    if change.changed_by is not None:
        parts.append(f"by {change.changed_by.get_username()}")
    if change.reason:
        parts.append(change.reason)
    return " · ".join(parts)


def _stage_choices() -> list[tuple[str, str]]:
    stages = Stage.objects.order_by("order").values_list("slug", "name")
    return [*stages, ("none", "No stage yet")]


def _filter_stage(accounts: QuerySet[Account], slug: str) -> QuerySet[Account]:
    placed = AccountStage.objects.values("account_id")
    if slug == "none":
        return accounts.exclude(pk__in=placed)
    if not Stage.objects.filter(slug=slug).exists():
        raise InvalidFilter(f"stage {slug!r} does not exist; pick one from the list")
    return accounts.filter(pk__in=placed.filter(stage__slug=slug))


def _stage_column(account_ids: list[int]) -> dict[int, str]:
    return dict(
        AccountStage.objects.filter(account_id__in=account_ids).values_list(
            "account_id", "stage__name"
        )
    )


def behind_on_criterion(now: datetime) -> Q:
    """Accounts past the due date of a criterion of their current stage, unmet.

    Due is the entry into the stage plus the criterion's target days, as
    on the account page; criteria without target days are never behind, and
    neither is a criterion that is not applicable because the account lacks
    the date its condition is measured from.
    The condition has one term per such criterion, read with one query, and
    compares entered_at with a computed instant, so it needs no interval
    arithmetic, which SQLite's date functions lack.
    """
    behind = Q(pk__in=[])
    criteria = SuccessCriterion.objects.filter(target_days__isnull=False)
    for criterion_id, stage_id, target_days, condition in criteria.values_list(
        "pk", "stage_id", "target_days", "condition"
    ):
        entered_before_due = AccountStage.objects.filter(
            account=OuterRef("pk"),
            stage_id=stage_id,
            entered_at__lt=now - timedelta(days=target_days or 0),
        )
        met = CriterionMet.objects.filter(
            account=OuterRef("pk"), criterion_id=criterion_id
        )
        term = Exists(entered_before_due) & ~Exists(met)
        missing_date = missing_anchor_q(condition)
        if missing_date is not None:
            term &= ~missing_date
        behind |= term
    return behind


register_section(
    Section(
        "stage",
        "Lifecycle stage and success criteria",
        10,
        "accounts/sections/stage.html",
        _stage_section,
    )
)
register_source(TimelineSource("stage", "Lifecycle", _stage_entries))
register_filter(
    AccountFilter("stage", "Lifecycle stage", _stage_choices, _filter_stage)
)
register_column(AccountColumn("stage", "Stage", _stage_column))
register_rule(
    AttentionRule(
        "behind_on_criterion",
        "Behind on a success criterion",
        (
            "A success criterion of the account's current stage is not met, and "
            "its target days since the account entered the stage have passed."
        ),
        behind_on_criterion,
    )
)
