"""Checklist items ticked by usage, by a condition or by a CSM.

tick_checklists() ticks, for every item and every account at once, what
the data shows by as_of:

- an item with an event name is ticked for each account with a usage event
  of that name at or before as_of, dated by the first such event, so the
  tick time does not depend on when the job runs;
- an item with a condition is ticked for each account that meets it at
  as_of, dated as_of, as evaluation records success criteria.

An item is ticked once per account (insert or ignore). A tick written by a
run at a later instant moves back to the earlier time a run finds, so
replaying history forward or backward gives the same ticks. A tick by
hand is kept unless the data shows an earlier time. A CSM may take back
a tick by hand with a reason (untick_item), which leaves a
ChecklistUntick row.
"""

import logging
import time
from dataclasses import dataclass, field
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Exists, Min, OuterRef
from django.utils import timezone

from conditions import ConditionError, EvaluationContext, compile_condition
from customers.models import Account, UsageEvent
from customers.services import subjects_as_of
from lifecycle.models import (
    ChecklistItem,
    ChecklistTick,
    ChecklistTickSource,
    ChecklistUntick,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ChecklistReport:
    """Counts of the ticks one run wrote or moved back."""

    as_of: datetime
    ticked: int = 0
    # Items skipped because their condition is invalid, by id.
    invalid_items: tuple[int, ...] = field(default_factory=tuple)


def tick_checklists(as_of: datetime | None = None) -> ChecklistReport:
    """Tick every item for the accounts whose usage or condition shows it, as of as_of.

    Runs two queries per event item and one per condition item, plus the
    writes, whatever the number of accounts. Running it again with the same
    as_of changes nothing.
    """
    as_of = as_of or timezone.now()
    started = time.monotonic()
    ticked = 0
    invalid: list[int] = []

    with transaction.atomic():
        for item in ChecklistItem.objects.order_by("stage__order", "order", "id"):
            if item.event_name:
                ticked += _tick_by_event(item, as_of)
            if item.condition is not None:
                written = _tick_by_condition(item, as_of)
                if written is None:
                    invalid.append(item.pk)
                else:
                    ticked += written

    logger.info(
        "Ticked checklist items as of %s in %.0f ms: %s ticks written or moved back",
        as_of.isoformat(),
        (time.monotonic() - started) * 1000,
        ticked,
    )
    return ChecklistReport(as_of=as_of, ticked=ticked, invalid_items=tuple(invalid))


def _tick_by_event(item: ChecklistItem, as_of: datetime) -> int:
    """Tick the item for accounts with a matching event, dated by the first one."""
    firsts = (
        UsageEvent.objects.filter(name=item.event_name, occurred_at__lte=as_of)
        .values("account_id")
        .annotate(first=Min("occurred_at"))
        .values_list("account_id", "first")
    )
    ticked_at = dict(
        ChecklistTick.objects.filter(item=item).values_list("account_id", "ticked_at")
    )
    times = {
        account_id: first
        for account_id, first in firsts
        if account_id not in ticked_at or ticked_at[account_id] > first
    }
    return _write(item, times, ChecklistTickSource.EVENT)


def _tick_by_condition(item: ChecklistItem, as_of: datetime) -> int | None:
    """Tick the item for accounts that meet its condition at as_of.

    Returns None when the stored condition is invalid.
    """
    try:
        condition = compile_condition(
            item.condition, EvaluationContext("account", as_of)
        )
    except ConditionError as exc:
        logger.error(
            "Skipped checklist item %s (%s): invalid condition: %s",
            item.pk,
            item.name,
            exc,
        )
        return None

    ticked_by_then = ChecklistTick.objects.filter(
        account=OuterRef("pk"), item=item, ticked_at__lte=as_of
    )
    account_ids = (
        subjects_as_of("account", as_of)
        .filter(condition)
        .exclude(Exists(ticked_by_then))
        .values_list("pk", flat=True)
    )
    return _write(
        item,
        {account_id: as_of for account_id in account_ids},
        ChecklistTickSource.CONDITION,
    )


def _write(
    item: ChecklistItem, times: dict[int, datetime], source: ChecklistTickSource
) -> int:
    """Insert the ticks, and move ticks dated later back to these times."""
    if not times:
        return 0
    ChecklistTick.objects.bulk_create(
        [
            ChecklistTick(
                account_id=account_id, item=item, ticked_at=ticked_at, source=source
            )
            for account_id, ticked_at in times.items()
        ],
        ignore_conflicts=True,
    )
    # The callers pass only accounts without a tick by these times, so every
    # row that already existed is dated later and moves back.
    later = [
        tick
        for tick in ChecklistTick.objects.filter(item=item, account_id__in=list(times))
        if tick.ticked_at > times[tick.account_id]
    ]
    for tick in later:
        tick.ticked_at = times[tick.account_id]
        tick.source = source
        tick.ticked_by = None
    ChecklistTick.objects.bulk_update(later, ["ticked_at", "source", "ticked_by"])
    return len(times)


def tick_item(
    account: Account,
    item: ChecklistItem,
    *,
    by: AbstractBaseUser,
    at: datetime | None = None,
) -> ChecklistTick | None:
    """Tick an item for an account by hand; return None when it is ticked already."""
    at = at or timezone.now()
    tick, created = ChecklistTick.objects.get_or_create(
        account=account,
        item=item,
        defaults={
            "ticked_at": at,
            "source": ChecklistTickSource.MANUAL,
            "ticked_by_id": by.pk,
        },
    )
    if not created:
        return None
    logger.info(
        "User %s ticked checklist item %s for account %s", by.pk, item.pk, account.pk
    )
    return tick


def untick_item(
    account: Account,
    item: ChecklistItem,
    *,
    by: AbstractBaseUser,
    reason: str,
    at: datetime | None = None,
) -> ChecklistUntick | None:
    """Take back a tick by hand, keeping who ticked it, who took it back and why.

    Returns None when the item is not ticked for the account. Raises
    ValueError for a blank reason, or for a tick by usage or condition,
    which the next refresh would write again.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValueError(
            f"a reason is required to untick {item.name!r} for account "
            f"{account.pk}; state why the tick was wrong"
        )
    at = at or timezone.now()

    with transaction.atomic():
        # The row lock makes a second untick of the same tick wait, then
        # find nothing to take back.
        tick = (
            ChecklistTick.objects.select_for_update()
            .filter(account=account, item=item)
            .first()
        )
        if tick is None:
            return None
        if tick.source != ChecklistTickSource.MANUAL:
            raise ValueError(
                f"{item.name!r} was ticked for account {account.pk} by "
                f"{tick.get_source_display().lower()}, not by hand, and the next "
                "refresh would tick it again; only ticks by hand can be taken back"
            )
        untick = ChecklistUntick.objects.create(
            account=account,
            item=item,
            ticked_at=tick.ticked_at,
            ticked_by_id=tick.ticked_by_id,
            unticked_at=at,
            unticked_by_id=by.pk,
            reason=reason,
        )
        tick.delete()

    logger.info(
        "User %s unticked checklist item %s for account %s", by.pk, item.pk, account.pk
    )
    return untick


@dataclass(frozen=True)
class ChecklistEntry:
    """One item of an account's checklist, with its tick if there is one."""

    item: ChecklistItem
    tick: ChecklistTick | None


def account_checklist(
    account: Account, as_of: datetime | None = None
) -> list[ChecklistEntry]:
    """Return every checklist item in stage order, with the account's ticks by as_of.

    Runs two queries whatever the number of items.
    """
    as_of = as_of or timezone.now()
    ticks = {
        tick.item_id: tick
        for tick in ChecklistTick.objects.filter(
            account=account, ticked_at__lte=as_of
        ).select_related("ticked_by")
    }
    items = ChecklistItem.objects.select_related("stage").order_by(
        "stage__order", "order", "id"
    )
    return [ChecklistEntry(item, ticks.get(item.pk)) for item in items]
