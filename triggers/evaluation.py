"""Sweeps: evaluating triggers as one query each, recording firings, taking actions.

For each trigger, one query selects the subjects that match as of the
sweep's instant together with their occurrence key. When that key is the
same for every subject ("once", "once a day"), the query also leaves out
the subjects that already fired for it, so a steady-state sweep fetches
almost nothing. The firings are
inserted with ON CONFLICT DO NOTHING and tagged with the sweep id, so the
rows that carry this sweep's id afterwards are exactly the new firings. The
actions of those firings (enrollments and outbox emails) are written in the
same transaction with a fixed number of queries, and the emails are queued
for sending after it commits. Emails of firings older than an optional
delivery horizon are written as skipped and never queued.
"""

import logging
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import cast

from django.db import transaction
from django.db.models import Count, Exists, OuterRef, Q, Window
from django.db.models.functions import RowNumber
from django.utils import timezone
from tqdm import tqdm

from conditions import (
    ConditionError,
    EvaluationContext,
    MissingReferenceError,
    Subject,
    compile_condition,
    validate,
)
from customers.services import subjects_as_of
from triggers.actions import INSERT_BATCH_SIZE, EmailPolicy, take_actions
from triggers.holdouts import holdout_bucket
from triggers.journeys import start_journeys
from triggers.models import Firing, FiringOutcome, SubjectType, Sweep, Trigger
from triggers.occurrences import key_expression, key_text, key_text_expression
from triggers.reentry import record_matches
from triggers.unenrollment import end_unmatched_enrollments, restore_enrollments

logger = logging.getLogger(__name__)

# Sweeps and replays before this instant are rejected. Near year 1 the
# windows of a condition (N days before the instant) overflow Python's
# dates and every trigger would fail, and no customer data is that old.
EARLIEST_INSTANT = datetime(2000, 1, 1, tzinfo=UTC)
# The maximum number of sweeps one replay may plan: ten years of daily
# sweeps. Each sweep writes a Sweep row, so a longer period is split into
# several replays that can be checked one by one.
MAX_REPLAY_SWEEPS = 3660


@dataclass(frozen=True)
class SweepReport:
    """Counts of one sweep, or the sums over the sweeps of a replay."""

    sweeps: int = 0
    triggers_evaluated: int = 0
    matched: int = 0
    fired: int = 0
    enrollments: int = 0
    emails_queued: int = 0
    emails_skipped: int = 0
    # (trigger slug, error message) for each trigger that failed.
    failures: tuple[tuple[str, str], ...] = ()
    sweep_ids: tuple[int, ...] = ()

    def __add__(self, other: "SweepReport") -> "SweepReport":
        return SweepReport(
            sweeps=self.sweeps + other.sweeps,
            triggers_evaluated=self.triggers_evaluated + other.triggers_evaluated,
            matched=self.matched + other.matched,
            fired=self.fired + other.fired,
            enrollments=self.enrollments + other.enrollments,
            emails_queued=self.emails_queued + other.emails_queued,
            emails_skipped=self.emails_skipped + other.emails_skipped,
            failures=self.failures + other.failures,
            sweep_ids=self.sweep_ids + other.sweep_ids,
        )


@dataclass(frozen=True)
class TriggerOutcome:
    matched: int = 0
    fired: int = 0
    enrollments: int = 0
    emails_queued: int = 0
    emails_skipped: int = 0


def run_sweep(
    as_of: datetime | None = None,
    triggers: Iterable[Trigger] | None = None,
    *,
    deliver_after: datetime | None = None,
    queue_email: bool = True,
    account_ids: Sequence[int] | None = None,
) -> SweepReport:
    """Evaluate triggers as of an instant and act on the new firings.

    as_of defaults to now and must carry a time zone. triggers defaults to
    every active trigger. When given, exactly those are evaluated, active or
    not, which is how a CSM backtests a draft. A trigger that fails is
    logged and reported in SweepReport.failures. Its transaction is rolled
    back, so it leaves no firing without its actions, and the other
    triggers still run.

    deliver_after is the delivery horizon of a replay or backfill: when
    as_of is before it, the emails are still written, but with status
    skipped, and are never sent. queue_email=False writes the emails as
    pending without queuing their send tasks, so the periodic
    send_pending_email job or send_due_email() sends them later.

    account_ids restricts the evaluation to those accounts and their
    contacts, which is how a new event re-evaluates only the subjects it
    concerns.
    """
    as_of = as_of or timezone.now()
    _require_aware(as_of, "as_of")
    _require_not_too_early(as_of, "as_of")
    if deliver_after is not None:
        _require_aware(deliver_after, "deliver_after")
    selected = _select_triggers(triggers)
    started = time.monotonic()
    sweep = Sweep.objects.create(as_of=as_of, started_at=timezone.now())
    policy = EmailPolicy(
        skip_reason=_skip_reason(as_of, deliver_after), queue=queue_email
    )
    scope = None if account_ids is None else tuple(account_ids)

    report = SweepReport(sweeps=1, sweep_ids=(sweep.pk,))
    for trigger in selected:
        report += _evaluate_guarded(trigger, sweep, policy, scope)

    _record_counts(sweep, report)
    _log_sweep(sweep, report, elapsed_ms=(time.monotonic() - started) * 1000)
    return report


def replay(
    start: datetime,
    end: datetime,
    step: timedelta = timedelta(days=1),
    progress: bool = False,
    *,
    deliver_after: datetime | None = None,
) -> SweepReport:
    """Run a sweep at start, start + step, ... up to and including end.

    Replaying history in order makes each firing happen at the instant it
    would have happened had the sweeps run back then. Emails of sweeps
    before deliver_after are written as skipped, never sent; None sends all.

    Raises ValueError, before any sweep runs, when the period is reversed,
    starts before EARLIEST_INSTANT, ends after now (a replay must not act
    on what has not happened) or plans more than MAX_REPLAY_SWEEPS sweeps.
    """
    _check_replay(start, end, step)
    instants: Iterable[datetime] = _instants(start, end, step)
    if progress:
        instants = tqdm(instants, desc="Replaying sweeps", unit="sweep")

    report = SweepReport()
    for as_of in instants:
        report += run_sweep(as_of, deliver_after=deliver_after)
    logger.info(
        "Replay from %s to %s: %s sweeps, %s firings, %s emails queued, "
        "%s emails skipped",
        start.isoformat(),
        end.isoformat(),
        report.sweeps,
        report.fired,
        report.emails_queued,
        report.emails_skipped,
    )
    return report


def _require_aware(instant: datetime, name: str) -> None:
    if timezone.is_naive(instant):
        raise ValueError(
            f"{name} {instant.isoformat()} has no time zone; pass an aware datetime "
            "such as datetime(2024, 6, 15, tzinfo=UTC)"
        )


def _require_not_too_early(instant: datetime, name: str) -> None:
    if instant < EARLIEST_INSTANT:
        raise ValueError(
            f"{name} {instant.isoformat()} is before "
            f"{EARLIEST_INSTANT.date().isoformat()}; sweeps evaluate instants from "
            f"{EARLIEST_INSTANT.isoformat()} on"
        )


def _check_replay(start: datetime, end: datetime, step: timedelta) -> None:
    if step <= timedelta(0):
        raise ValueError(f"step {step} must be positive, for example timedelta(days=1)")
    _require_aware(start, "replay start")
    _require_aware(end, "replay end")
    if end < start:
        raise ValueError(
            f"replay end {end.isoformat()} is before its start {start.isoformat()}"
        )
    _require_not_too_early(start, "replay start")
    now = timezone.now()
    if end > now:
        raise ValueError(
            f"replay end {end.isoformat()} is in the future (now is "
            f"{now.isoformat()}); a replay evaluates the past only, so end it at "
            "or before now"
        )
    sweeps = replay_sweep_count(start, end, step)
    if sweeps > MAX_REPLAY_SWEEPS:
        raise ValueError(
            f"a replay from {start.isoformat()} to {end.isoformat()} every {step} "
            f"plans {sweeps:,} sweeps, more than the limit of {MAX_REPLAY_SWEEPS:,}; "
            "split the period into shorter replays or use a longer step"
        )


def replay_sweep_count(start: datetime, end: datetime, step: timedelta) -> int:
    """Return how many sweeps a replay from start to end, both included, runs."""
    return (end - start) // step + 1


def _skip_reason(as_of: datetime, deliver_after: datetime | None) -> str:
    # A replay or backfill must not mail people about events long past.
    if deliver_after is None or as_of >= deliver_after:
        return ""
    return (
        f"Replayed history: the firing at {as_of.isoformat()} is older than the "
        f"delivery horizon {deliver_after.isoformat()}."
    )


def _instants(start: datetime, end: datetime, step: timedelta) -> list[datetime]:
    instants = []
    current = start
    while current <= end:
        instants.append(current)
        current += step
    return instants


def _select_triggers(triggers: Iterable[Trigger] | None) -> list[Trigger]:
    if triggers is not None:
        return list(triggers)
    active = Trigger.objects.filter(is_active=True).order_by("pk")
    return list(active.select_related("enroll_course", "enroll_path", "email_template"))


def _evaluate_guarded(
    trigger: Trigger,
    sweep: Sweep,
    policy: EmailPolicy,
    account_ids: Sequence[int] | None = None,
) -> SweepReport:
    """Evaluate one trigger in its own transaction; report an error, do not raise it."""
    if _disable_if_unresolved(trigger):
        return SweepReport()
    try:
        with transaction.atomic():
            outcome = evaluate_trigger(trigger, sweep, policy, account_ids)
    except Exception as exc:
        # One broken trigger (a condition saved before validation, a template
        # that fails to render) must not stop the other triggers of the sweep.
        logger.exception("Trigger %s failed in sweep %s", trigger.slug, sweep.pk)
        return SweepReport(triggers_evaluated=1, failures=((trigger.slug, str(exc)),))
    return SweepReport(
        triggers_evaluated=1,
        matched=outcome.matched,
        fired=outcome.fired,
        enrollments=outcome.enrollments,
        emails_queued=outcome.emails_queued,
        emails_skipped=outcome.emails_skipped,
    )


def _disable_if_unresolved(trigger: Trigger) -> bool:
    """Switch off a trigger whose condition names a row that no longer exists.

    A condition such as completed("course-x") becomes unresolvable when the
    course is deleted. Evaluating it would silently match nobody, so the
    trigger is deactivated with the reason, for a CSM to fix, and the sweep
    goes on with the others. Other invalid conditions fail as before.
    """
    try:
        validate(trigger.condition, cast(Subject, trigger.subject_type))
    except MissingReferenceError as exc:
        reason = f"Its condition names something that no longer exists: {exc}"
    except ConditionError:
        return False
    else:
        return False
    Trigger.objects.filter(pk=trigger.pk).update(
        is_active=False, disabled_reason=reason
    )
    trigger.is_active = False
    trigger.disabled_reason = reason
    logger.warning("Disabled trigger %s: %s", trigger.slug, reason)
    return True


def evaluate_trigger(
    trigger: Trigger,
    sweep: Sweep,
    policy: EmailPolicy | None = None,
    account_ids: Sequence[int] | None = None,
) -> TriggerOutcome:
    """Record the new firings of one trigger and write their actions.

    Must run inside a transaction, so the firings, enrollments and outbox
    rows commit together or not at all. policy defaults to queuing every
    email. account_ids, when given, limits the subjects to those accounts
    and their contacts.
    """
    policy = policy or EmailPolicy()
    context = EvaluationContext(cast(Subject, trigger.subject_type), sweep.as_of)
    if _fetches_only_new(trigger, context):
        matched, unfired = new_matching_subjects(trigger, context, account_ids)
    else:
        matches = matching_subjects(trigger, context, account_ids)
        matches = record_matches(trigger, matches, sweep.as_of, account_ids)
        end_unmatched_enrollments(trigger, matches, sweep.as_of, account_ids)
        matched = len(matches)
        unfired = _without_earlier_firings(trigger, matches)
    new_firings = _insert_firings(trigger, sweep, unfired)
    restore_enrollments(trigger, new_firings, sweep.as_of)
    actions = take_actions(trigger, new_firings, sweep.as_of, policy)
    start_journeys(trigger, new_firings, sweep.as_of, policy.skip_reason)
    return TriggerOutcome(
        matched=matched,
        fired=len(new_firings),
        enrollments=actions.enrollments,
        emails_queued=actions.emails_pending,
        emails_skipped=actions.emails_skipped,
    )


Match = tuple[int | None, int, str]


def matching_subjects(
    trigger: Trigger,
    context: EvaluationContext,
    account_ids: Sequence[int] | None = None,
) -> list[Match]:
    """Return (contact id or None, account id, occurrence key) for each match.

    One query whatever the number of subjects: the condition compiles to
    columns and correlated subqueries, and the occurrence key is annotated
    on the same rows. Subjects count only if they existed as of the instant.
    """
    condition = compile_condition(trigger.condition, context)
    key = key_expression(trigger.occurrence, trigger.condition, context, trigger)
    subjects = subjects_as_of(context.subject, context.as_of)
    if account_ids is not None:
        account_column = "account_id" if context.subject == "contact" else "pk"
        subjects = subjects.filter(**{f"{account_column}__in": account_ids})
    matching = subjects.filter(condition).annotate(occurrence_value=key).order_by()
    if context.subject == SubjectType.CONTACT:
        contact_rows = matching.values_list("pk", "account_id", "occurrence_value")
        matches = {
            (pk, account_id, key_text(trigger.occurrence, value))
            for pk, account_id, value in contact_rows
        }
    else:
        account_rows = matching.values_list("pk", "occurrence_value")
        matches = {
            (None, pk, key_text(trigger.occurrence, value))
            for pk, value in account_rows
        }
    # A set, because a future kind that joins a to-many relation could
    # repeat a subject.
    return sorted(matches, key=lambda match: (match[1], match[0] or 0))


def _fetches_only_new(trigger: Trigger, context: EvaluationContext) -> bool:
    """Tell whether the matching query itself can leave out earlier firings.

    It can when the query can compute each subject's occurrence key. A
    trigger that unenrolls unmatched contacts needs every match, fired or
    not, so it keeps fetching them all.
    """
    if trigger.unenroll_when_unmatched:
        return False
    expression = key_text_expression(trigger.occurrence, trigger.condition, context)
    return expression is not None


def new_matching_subjects(
    trigger: Trigger,
    context: EvaluationContext,
    account_ids: Sequence[int] | None = None,
) -> tuple[int, list[Match]]:
    """Return how many subjects match, and the matches that never fired before.

    Only for occurrence policies whose key the query can compute (see
    key_text_expression). Most subjects that match a trigger day after day
    fired long ago, so fetching them only to drop them in Python would cost
    most of a steady-state sweep. Instead a correlated NOT EXISTS on the
    firings, served by the index of the unique constraint, leaves them in
    the database. A window count over all matches, fired or not, gives
    SweepReport.matched in the same query.

    It is only a shortcut: the unique constraints still decide, so a firing
    that a concurrent sweep inserts first is dropped by ON CONFLICT DO NOTHING.
    """
    key = key_text_expression(trigger.occurrence, trigger.condition, context)
    if key is None:
        raise ValueError(
            f"occurrence policy {trigger.occurrence!r} reads the trigger's "
            "history for its key; use matching_subjects for it"
        )
    is_contact = context.subject == SubjectType.CONTACT
    subjects = subjects_as_of(context.subject, context.as_of)
    if account_ids is not None:
        account_column = "account_id" if is_contact else "pk"
        subjects = subjects.filter(**{f"{account_column}__in": account_ids})
    earlier = Firing.objects.filter(
        trigger_id=trigger.pk,
        subject_type=trigger.subject_type,
        occurrence_key=OuterRef("occurrence_key"),
        **{"contact" if is_contact else "account": OuterRef("pk")},
    )
    columns = ["pk", "occurrence_key", "fired_before", "matched_total"]
    if is_contact:
        columns.append("account_id")
    condition = compile_condition(trigger.condition, context)
    rows = (
        subjects.filter(condition)
        .annotate(occurrence_key=key)
        .annotate(
            fired_before=Exists(earlier),
            # NOTE: counts rows, so a future kind that repeats a subject
            # would count it twice here, unlike matching_subjects.
            matched_total=Window(Count("pk")),
            position=Window(RowNumber()),
        )
        # Filtering on a window makes Django compute the windows in a
        # subquery and filter its rows outside, so matched_total counts
        # every match. The first row is kept so that the count arrives
        # even when no match is new.
        .filter(Q(fired_before=False) | Q(position=1))
        .order_by()
        .values_list(*columns)
    )
    matched = 0
    new: set[Match] = set()
    for pk, occurrence_key, fired_before, total, *contact_account in rows:
        matched = total
        if not fired_before:
            # An account subject is its own account.
            account_id = contact_account[0] if is_contact else pk
            new.add((pk if is_contact else None, account_id, occurrence_key))
    # A set, because a future kind that joins a to-many relation could
    # repeat a subject.
    return matched, sorted(new, key=lambda match: (match[1], match[0] or 0))


def _without_earlier_firings(trigger: Trigger, matches: list[Match]) -> list[Match]:
    """Drop the matches whose subject fired this trigger for the same key before.

    Most subjects that match a trigger day after day fired long ago, and
    skipping them here is cheaper than inserting rows that would conflict.
    It is only a shortcut: the unique constraints still decide, so a firing
    that a concurrent sweep inserts first is dropped by ON CONFLICT DO NOTHING.
    """
    if not matches:
        return []
    is_contact = trigger.subject_type == SubjectType.CONTACT
    subject_field = "contact_id" if is_contact else "account_id"
    subject_index = 0 if is_contact else 1
    # NOTE: SQLite accepts at most 32,766 query parameters (its default
    # since 3.32), so a trigger matching more subjects fails there.
    # PostgreSQL with Django's default client-side binding has no such limit.
    earlier = Firing.objects.filter(
        trigger=trigger,
        subject_type=trigger.subject_type,
        occurrence_key__in={match[2] for match in matches},
        **{f"{subject_field}__in": {match[subject_index] for match in matches}},
    )
    fired = set(earlier.values_list(subject_field, "occurrence_key"))
    return [match for match in matches if (match[subject_index], match[2]) not in fired]


def _insert_firings(
    trigger: Trigger, sweep: Sweep, matches: list[Match]
) -> list[Firing]:
    """Insert a firing per match unless it exists; return the firings inserted."""
    if not matches:
        return []
    Firing.objects.bulk_create(
        [
            Firing(
                trigger=trigger,
                subject_type=trigger.subject_type,
                account_id=account_id,
                contact_id=contact_id,
                occurrence_key=occurrence_key,
                fired_at=sweep.as_of,
                sweep=sweep,
                **_outcome_fields(trigger, contact_id, account_id),
            )
            for contact_id, account_id, occurrence_key in matches
        ],
        batch_size=INSERT_BATCH_SIZE,
        ignore_conflicts=True,
    )
    # Rows inserted just now carry this sweep's id; conflicting rows kept
    # the id of the sweep that inserted them.
    return list(Firing.objects.filter(sweep=sweep, trigger=trigger))


def _outcome_fields(
    trigger: Trigger, contact_id: int | None, account_id: int
) -> dict[str, str]:
    """Return the outcome and note of a new firing: held out, or acted on.

    The holdout bucket depends only on the trigger and the subject, so a
    subject stays in the same group at every occurrence and every sweep.
    """
    is_contact = trigger.subject_type == SubjectType.CONTACT
    subject_id = contact_id if is_contact and contact_id is not None else account_id
    bucket = holdout_bucket(trigger.pk, trigger.subject_type, subject_id)
    if bucket < trigger.holdout_percent:
        return {
            "outcome": FiringOutcome.HELD_OUT,
            "note": (
                f"Held out as control: holdout bucket {bucket} is below the "
                f"trigger's holdout of {trigger.holdout_percent}%."
            ),
        }
    return {"outcome": FiringOutcome.ACTED, "note": ""}


def _record_counts(sweep: Sweep, report: SweepReport) -> None:
    sweep.finished_at = timezone.now()
    sweep.triggers_evaluated = report.triggers_evaluated
    sweep.matched = report.matched
    sweep.fired = report.fired
    sweep.enrollments = report.enrollments
    sweep.emails_queued = report.emails_queued
    sweep.emails_skipped = report.emails_skipped
    sweep.errors = [
        {"trigger": slug, "error": error} for slug, error in report.failures
    ]
    sweep.save(
        update_fields=[
            "finished_at",
            "triggers_evaluated",
            "matched",
            "fired",
            "enrollments",
            "emails_queued",
            "emails_skipped",
            "errors",
        ]
    )


def _log_sweep(sweep: Sweep, report: SweepReport, elapsed_ms: float) -> None:
    # A replay runs hundreds of sweeps; only those that did something are
    # worth a line at INFO.
    level = logging.INFO if report.fired or report.failures else logging.DEBUG
    logger.log(
        level,
        "Sweep %s as of %s: %s triggers, %s matched, %s fired, %s enrollments, "
        "%s emails queued, %s emails skipped, %s failed in %.0f ms",
        sweep.pk,
        sweep.as_of.isoformat(),
        report.triggers_evaluated,
        report.matched,
        report.fired,
        report.enrollments,
        report.emails_queued,
        report.emails_skipped,
        len(report.failures),
        elapsed_ms,
    )
