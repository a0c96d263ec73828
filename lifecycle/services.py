"""What other apps may use from lifecycle: stage evaluation, overrides and history,
criterion states, and compute_health(), which scores health with the
configured weights.

An account is always in one stage (AccountStage) and its moves are the
stage history (StageChange). evaluate_stages() records which success
criteria accounts meet, places new accounts in the first stage and moves
accounts whose stage is complete. set_stage() is the manual override. Both
lock the Stage rows first, so an evaluation and an override never
interleave. On SQLite the database-wide write lock does the same.
"""

import itertools
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import (
    Exists,
    F,
    OuterRef,
    Subquery,
)
from django.utils import timezone

from conditions import ConditionError, EvaluationContext, compile_condition
from customers.models import Account
from customers.services import send_data_changed, subjects_as_of, utc_day_start
from lifecycle.health import compute_health as compute_health
from lifecycle.models import (
    AccountStage,
    Advancement,
    CriterionMet,
    Stage,
    StageChange,
    StageChangeSource,
    SuccessCriterion,
)

# The criterion states and stage progress are lifecycle.status's; these
# two are here too because other apps read lifecycle through this module.
from lifecycle.status import account_criteria as account_criteria
from lifecycle.status import count_rows, is_required, required_criteria_q
from lifecycle.status import criteria_status as criteria_status

logger = logging.getLogger(__name__)

# An evaluation as of an instant at most this long ago announces its
# placements and moves to the event path. Older ones are replays.
ANNOUNCE_WITHIN = timedelta(days=1)

# Above this many accounts placed or moved in one evaluation, one event-path
# evaluation per account would cost more than the next sweep, which
# evaluates each trigger over every account in one query.
MAX_ANNOUNCED_ACCOUNTS = 500


@dataclass(frozen=True)
class StageReport:
    """Counts of the rows that one evaluation wrote."""

    as_of: datetime
    # Accounts put in the first stage because they had none yet.
    placed: int = 0
    # Criterion records written, or moved back to this earlier as_of.
    criteria_met: int = 0
    # Accounts that moved at least one stage on criteria.
    advanced: int = 0
    # StageChange rows written on criteria; above advanced when accounts
    # passed through more than one stage.
    stage_changes: int = 0
    # Criteria skipped because their condition is invalid, by id.
    invalid_criteria: tuple[int, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class StageVisit:
    """One stay of an account in a stage, from the stage history."""

    stage: Stage
    entered_at: datetime
    # None while the account is still in the stage.
    left_at: datetime | None
    # Until left_at, or until the as_of of the request for the current stage.
    time_in_stage: timedelta
    source: str
    reason: str
    changed_by_id: int | None
    # The username of the CSM who moved the account by hand; blank otherwise.
    changed_by_name: str = ""

    @property
    def source_label(self) -> str:
        return StageChangeSource(self.source).label


# -- evaluation ---------------------------------------------------------------


def evaluate_stages(
    as_of: datetime | None = None, *, announce: bool = True
) -> StageReport:
    """Record met criteria and move accounts on, for every account, as of as_of.

    Each pass runs one query per criterion over all accounts in that
    criterion's stage, then moves every account whose stage is complete
    one stage on. Accounts that moved are in a new stage whose criteria
    have not been evaluated for them yet, so the next pass evaluates the
    stages that received accounts. An account therefore passes through
    several stages in one evaluation only when each next stage's criteria
    also hold at as_of. The last stage keeps its accounts.

    Running it again with the same as_of changes nothing.

    Placements and moves are stage changes that triggers react to, as
    manual moves are: an evaluation as of the last day (the lifecycle
    refresh) sends data_changed ("stage") for each account it placed or
    moved, so the triggers that read stages are evaluated for those
    accounts once the evaluation commits. It sends nothing with
    announce=False (the demo's replay, which sweeps right after), as of an
    earlier instant (backfills), or when it placed or moved more than
    MAX_ANNOUNCED_ACCOUNTS accounts. The next sweep then evaluates the
    moves, in one query per trigger.
    """
    as_of = _aware(as_of or timezone.now())
    started = time.monotonic()

    with transaction.atomic():
        stages = _lock_stages()
        if not stages:
            logger.warning("No lifecycle stages exist; nothing to evaluate")
            return StageReport(as_of=as_of)

        placed_ids = _place_new_accounts(stages[0], as_of)
        criteria_met = 0
        invalid: list[int] = []
        changes: list[StageChange] = []
        pending = stages

        # Each pass moves accounts one stage on, so there are at most as
        # many useful passes as stages.
        for _ in range(len(stages)):
            for stage in pending:
                for criterion in stage.criteria.all():
                    recorded = _record_criterion(criterion, as_of)
                    if recorded is None:
                        invalid.append(criterion.pk)
                    else:
                        criteria_met += recorded

            moved = _advance_complete_accounts(stages, pending, as_of)
            if not moved:
                break
            changes.extend(moved)
            arrived = {change.to_stage_id for change in moved}
            pending = [stage for stage in stages if stage.pk in arrived]

        moved_ids = {change.account_id for change in changes}
        if announce:
            _announce_stage_changes(set(placed_ids) | moved_ids, as_of)

    report = StageReport(
        as_of=as_of,
        placed=len(placed_ids),
        criteria_met=criteria_met,
        advanced=len(moved_ids),
        stage_changes=len(changes),
        invalid_criteria=tuple(sorted(set(invalid))),
    )
    logger.info(
        "Evaluated lifecycle stages as of %s in %.0f ms: %s placed, "
        "%s criteria met, %s accounts advanced with %s stage changes",
        as_of.isoformat(),
        (time.monotonic() - started) * 1000,
        report.placed,
        report.criteria_met,
        report.advanced,
        report.stage_changes,
    )
    return report


def _lock_stages() -> list[Stage]:
    # FOR NO KEY UPDATE serializes evaluations and overrides without blocking
    # inserts of rows that refer to a stage (they take FOR KEY SHARE).
    return list(
        Stage.objects.select_for_update(no_key=True)
        .order_by("order")
        .prefetch_related("criteria")
    )


def _place_new_accounts(first_stage: Stage, as_of: datetime) -> list[int]:
    """Put accounts that existed by as_of and have no stage into the first stage.

    Returns the ids of the accounts placed.
    """
    newcomers = list(
        subjects_as_of("account", as_of)
        .filter(lifecycle__isnull=True)
        .values_list("pk", "signup_date")
    )
    if not newcomers:
        return []

    placements = []
    changes = []
    for account_id, signup_date in newcomers:
        entered_at = utc_day_start(signup_date)
        placements.append(
            AccountStage(
                account_id=account_id, stage=first_stage, entered_at=entered_at
            )
        )
        changes.append(
            StageChange(
                account_id=account_id,
                from_stage=None,
                to_stage=first_stage,
                changed_at=entered_at,
                source=StageChangeSource.INITIAL,
                reason=f"Signed up on {signup_date.isoformat()}",
            )
        )
    AccountStage.objects.bulk_create(placements)
    StageChange.objects.bulk_create(changes)
    return [account_id for account_id, _ in newcomers]


def _record_criterion(criterion: SuccessCriterion, as_of: datetime) -> int | None:
    """Record the criterion for accounts in its stage that meet it at as_of.

    Return how many records were written or moved back to as_of, or None
    when the stored condition is invalid.
    """
    try:
        condition = compile_condition(
            criterion.condition, EvaluationContext("account", as_of)
        )
    except ConditionError as exc:
        logger.error(
            "Skipped success criterion %s (%s): invalid condition: %s",
            criterion.pk,
            criterion.name,
            exc,
        )
        return None

    # Only accounts whose stay in the criterion's stage began by as_of count;
    # an account's later history is not rewritten from an earlier instant.
    recorded_by_then = CriterionMet.objects.filter(
        account=OuterRef("pk"), criterion=criterion, met_at__lte=as_of
    )
    account_ids = list(
        subjects_as_of("account", as_of)
        .filter(
            lifecycle__stage=criterion.stage_id,
            lifecycle__entered_at__lte=as_of,
        )
        .filter(condition)
        .exclude(Exists(recorded_by_then))
        .values_list("pk", flat=True)
    )
    if not account_ids:
        return 0

    CriterionMet.objects.bulk_create(
        [
            CriterionMet(account_id=account_id, criterion=criterion, met_at=as_of)
            for account_id in account_ids
        ],
        ignore_conflicts=True,
    )
    # A record written by an evaluation at a later instant moves back to the
    # earliest instant the criterion was seen met.
    CriterionMet.objects.filter(
        criterion=criterion, account_id__in=account_ids, met_at__gt=as_of
    ).update(met_at=as_of)
    return len(account_ids)


def _advance_complete_accounts(
    stages: list[Stage], pending: list[Stage], as_of: datetime
) -> list[StageChange]:
    """Move accounts that met the required criteria of their stage one stage on.

    The required criteria are all of the stage's, or the chosen ones when
    the stage advances on chosen criteria (Stage.advancement).
    """
    following = {stage.pk: after for stage, after in itertools.pairwise(stages)}
    met_by_then = CriterionMet.objects.filter(
        required_criteria_q("criterion__"),
        account=OuterRef("account"),
        criterion__stage=OuterRef("stage"),
        met_at__lte=as_of,
    )
    criteria_of_stage = SuccessCriterion.objects.filter(
        required_criteria_q(), stage=OuterRef("stage")
    )
    complete = list(
        AccountStage.objects.filter(
            stage__in=[stage.pk for stage in pending if stage.pk in following],
            entered_at__lte=as_of,
        )
        .annotate(
            criteria_total=count_rows(criteria_of_stage),
            met_total=count_rows(met_by_then),
            last_met_at=Subquery(met_by_then.order_by("-met_at").values("met_at")[:1]),
        )
        # A stage without required criteria keeps its accounts until a CSM
        # moves them.
        .filter(criteria_total__gt=0, met_total=F("criteria_total"))
    )
    if not complete:
        return []

    by_id = {stage.pk: stage for stage in stages}
    now = timezone.now()
    changes = []
    for placement in complete:
        stage = by_id[placement.stage_id]
        next_stage = following[stage.pk]
        # The stage completed when its last required criterion was met, or on entry
        # when all were met already. It is never before entry, so the
        # history stays in time order.
        changed_at = max(placement.entered_at, placement.last_met_at)
        changes.append(
            StageChange(
                account_id=placement.account_id,
                from_stage=stage,
                to_stage=next_stage,
                changed_at=changed_at,
                source=StageChangeSource.CRITERIA,
                reason=_criteria_reason(stage),
            )
        )
        placement.stage = next_stage
        placement.entered_at = changed_at
        placement.updated_at = now

    StageChange.objects.bulk_create(changes)
    AccountStage.objects.bulk_update(complete, ["stage", "entered_at", "updated_at"])
    return changes


def _announce_stage_changes(account_ids: set[int], as_of: datetime) -> None:
    """Send data_changed ("stage") for accounts placed or moved by a current evaluation.

    Must run inside the evaluation's transaction: the receiver hands the
    accounts on only once it commits.
    """
    if not account_ids:
        return
    if as_of < timezone.now() - ANNOUNCE_WITHIN:
        # A backfill rebuilds history, and an evaluation as of now for each
        # account would cost more than the next sweep.
        return
    if len(account_ids) > MAX_ANNOUNCED_ACCOUNTS:
        logger.info(
            "Evaluation as of %s placed or moved %s accounts, more than %s; "
            "the next sweep evaluates the triggers that read stages",
            as_of.isoformat(),
            len(account_ids),
            MAX_ANNOUNCED_ACCOUNTS,
        )
        return
    for account_id in sorted(account_ids):
        send_data_changed(StageChange, account_id, "stage")


def _criteria_reason(stage: Stage) -> str:
    required = [
        criterion.name for criterion in stage.criteria.all() if is_required(criterion)
    ]
    if stage.advancement == Advancement.CHOSEN:
        return f"Met the chosen success criteria of {stage.name}: {'; '.join(required)}"
    return f"Met every success criterion of {stage.name}: {'; '.join(required)}"


# -- manual override ------------------------------------------------------------


def set_stage(
    account: Account,
    stage: Stage,
    *,
    by: AbstractBaseUser,
    reason: str,
    at: datetime | None = None,
) -> StageChange | None:
    """Move an account to a stage by hand and record who did it and why.

    Return the new StageChange, or None when the account is already in the
    stage. A move sends data_changed ("stage") for the account. Moving an
    account back to an earlier stage clears the criteria it met in that
    stage and the later ones, so they must be met again before evaluation
    moves it on.
    """
    reason = (reason or "").strip()
    if not reason:
        raise ValueError(
            f"a reason is required to move account {account.pk} to stage "
            f"{stage.slug!r} by hand; state why the success criteria do not decide it"
        )
    at = _aware(at or timezone.now())

    with transaction.atomic():
        _lock_stages()
        current = (
            AccountStage.objects.select_related("stage").filter(account=account).first()
        )
        if current is not None and current.stage_id == stage.pk:
            return None
        if current is not None and at < current.entered_at:
            raise ValueError(
                f"cannot move account {account.pk} at {at.isoformat()}: it entered "
                f"{current.stage.name} later, at {current.entered_at.isoformat()}; "
                "give a time at or after that"
            )

        if current is not None and stage.order < current.stage.order:
            CriterionMet.objects.filter(
                account=account, criterion__stage__order__gte=stage.order
            ).delete()

        change = StageChange.objects.create(
            account=account,
            from_stage=current.stage if current is not None else None,
            to_stage=stage,
            changed_at=at,
            source=StageChangeSource.MANUAL,
            reason=reason,
            changed_by_id=by.pk,
        )
        AccountStage.objects.update_or_create(
            account=account, defaults={"stage": stage, "entered_at": at}
        )
        # The triggers that read stages are evaluated for this account once
        # the move commits.
        send_data_changed(StageChange, account.pk, "stage")

    logger.info(
        "User %s moved account %s to stage %s by hand",
        by.pk,
        account.pk,
        stage.slug,
    )
    return change


# -- reading -------------------------------------------------------------------


def stage_history(
    account: Account, *, as_of: datetime | None = None
) -> list[StageVisit]:
    """Return the account's stays in stages in time order, with time in each."""
    as_of = _aware(as_of or timezone.now())
    changes = list(
        StageChange.objects.filter(account=account, changed_at__lte=as_of)
        .select_related("to_stage", "changed_by")
        .order_by("changed_at", "id")
    )
    visits = []
    for index, change in enumerate(changes):
        left_at = changes[index + 1].changed_at if index + 1 < len(changes) else None
        visits.append(
            StageVisit(
                stage=change.to_stage,
                entered_at=change.changed_at,
                left_at=left_at,
                time_in_stage=(left_at or as_of) - change.changed_at,
                source=change.source,
                reason=change.reason,
                changed_by_id=change.changed_by_id,
                changed_by_name=(
                    change.changed_by.get_username() if change.changed_by else ""
                ),
            )
        )
    return visits


def _aware(instant: datetime) -> datetime:
    if instant.tzinfo is None:
        raise ValueError(
            f"instant {instant.isoformat()} has no time zone; pass an aware datetime"
        )
    return instant
