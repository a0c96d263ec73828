"""Switching a trigger on, with or without backfill, and switching it off.

With backfill, activation only switches the trigger on, and the next sweep
acts on every subject that matches and has not fired for its current
occurrence. Without backfill, the subjects that match at the instant of
activation are recorded as firings with outcome "baseline" and no action,
under the occurrence keys a sweep would use. The sweep's unique constraints
then keep those subjects from firing for that occurrence, so only subjects
that start matching later, or reach a new occurrence, are acted on.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from django.db import transaction
from django.utils import timezone

from conditions import EvaluationContext, Subject, validate
from triggers.evaluation import Match, matching_subjects
from triggers.models import Firing, FiringOutcome, SubjectType, Trigger
from triggers.reentry import record_matches

logger = logging.getLogger(__name__)

# Rows per INSERT statement. A firing row has about 10 columns, which keeps
# PostgreSQL's limit of 65,535 bound parameters out of reach.
INSERT_BATCH_SIZE = 2000


@dataclass(frozen=True)
class Activation:
    """The result of activate_trigger."""

    trigger_id: int
    # False when the trigger was already active, so nothing changed.
    activated: bool
    backfill: bool
    matched: int = 0
    baseline_recorded: int = 0


def activate_trigger(
    trigger: Trigger, backfill: bool, at: datetime | None = None
) -> Activation:
    """Switch a trigger on, recording a baseline of current matches unless backfill.

    at defaults to now and must carry a time zone. The whole activation is
    one transaction with the trigger's row locked, so two requests that
    activate the same trigger do it once, and a trigger already active is
    left as it is. Baseline firings are inserted with ON CONFLICT DO NOTHING,
    so a subject that fired for its current occurrence keeps that firing.
    Raises ConditionError when the stored condition is invalid.
    """
    at = at or timezone.now()
    if timezone.is_naive(at):
        raise ValueError(
            f"activation time {at.isoformat()} has no time zone; pass an aware "
            "datetime such as datetime(2024, 6, 15, tzinfo=UTC)"
        )

    with transaction.atomic():
        locked = Trigger.objects.select_for_update().get(pk=trigger.pk)
        if locked.is_active:
            logger.info("Trigger %s is already active; nothing to do", locked.slug)
            return Activation(trigger.pk, activated=False, backfill=locked.backfill)

        validate(locked.condition, cast(Subject, locked.subject_type))
        matched = 0
        recorded = 0
        if not backfill:
            context = EvaluationContext(cast(Subject, locked.subject_type), at)
            # Under "each new match" the key is the start of the subject's
            # match episode, so the episodes must open now, as a sweep
            # would open them, for the next sweep to see the same keys.
            matches = record_matches(locked, matching_subjects(locked, context), at)
            matched = len(matches)
            recorded = _record_baseline(locked, matches, at)

        locked.is_active = True
        locked.backfill = backfill
        locked.activated_at = at
        locked.disabled_reason = ""
        locked.save(
            update_fields=[
                "is_active",
                "backfill",
                "activated_at",
                "disabled_reason",
                "updated_at",
            ]
        )

    _copy_state(locked, trigger)
    logger.info(
        "Activated trigger %s at %s, backfill=%s: %s matched, %s baseline firings",
        locked.slug,
        at.isoformat(),
        backfill,
        matched,
        recorded,
    )
    return Activation(
        trigger.pk,
        activated=True,
        backfill=backfill,
        matched=matched,
        baseline_recorded=recorded,
    )


def deactivate_trigger(trigger: Trigger) -> bool:
    """Switch a trigger off; return False when it was already off.

    Firings, baseline ones too, stay, so a later activation does not act
    again on subjects that fired for their current occurrence.
    """
    updated = Trigger.objects.filter(pk=trigger.pk, is_active=True).update(
        is_active=False, updated_at=timezone.now()
    )
    trigger.is_active = False
    if updated:
        logger.info("Deactivated trigger %s", trigger.slug)
    return bool(updated)


def _record_baseline(trigger: Trigger, matches: Sequence[Match], at: datetime) -> int:
    """Insert a baseline firing per match that has none; return how many.

    The count is of the matches that had no firing when read. A firing
    that a concurrent manual evaluation inserts in between makes its
    baseline row conflict and be dropped, so the count can then be high by
    that many.
    """
    unfired = unfired_matches(trigger, matches)
    Firing.objects.bulk_create(
        [
            Firing(
                trigger=trigger,
                subject_type=trigger.subject_type,
                account_id=account_id,
                contact_id=contact_id,
                occurrence_key=occurrence_key,
                fired_at=at,
                outcome=FiringOutcome.BASELINE,
                note="Matched when the trigger was activated without backfill.",
            )
            for contact_id, account_id, occurrence_key in unfired
        ],
        batch_size=INSERT_BATCH_SIZE,
        ignore_conflicts=True,
    )
    return len(unfired)


def unfired_matches(trigger: Trigger, matches: Sequence[Match]) -> list[Match]:
    """Return the matches whose subject has no firing for the same key, in one query."""
    if not matches:
        return []
    is_contact = trigger.subject_type == SubjectType.CONTACT
    subject_field = "contact_id" if is_contact else "account_id"
    subject_index = 0 if is_contact else 1
    earlier = Firing.objects.filter(
        trigger=trigger,
        subject_type=trigger.subject_type,
        occurrence_key__in={match[2] for match in matches},
        **{f"{subject_field}__in": {match[subject_index] for match in matches}},
    )
    fired = set(earlier.values_list(subject_field, "occurrence_key"))
    return [match for match in matches if (match[subject_index], match[2]) not in fired]


def _copy_state(source: Trigger, target: Trigger) -> None:
    target.is_active = source.is_active
    target.backfill = source.backfill
    target.activated_at = source.activated_at
    target.disabled_reason = source.disabled_reason
    target.updated_at = source.updated_at


@dataclass(frozen=True)
class ActivationChoice:
    """The effect of each activation choice if the trigger were activated now."""

    # Subjects that match now; without backfill, each gets a baseline firing.
    matched: int
    # Matching subjects with no firing for their current occurrence, on whom
    # the next sweep acts after an activation with backfill.
    backfill_targets: int


def activation_choice(trigger: Trigger, at: datetime | None = None) -> ActivationChoice:
    """Count what backfill and no backfill would do, in two queries.

    Raises ConditionError when the stored condition is invalid.
    """
    at = at or timezone.now()
    subject = cast(Subject, trigger.subject_type)
    validate(trigger.condition, subject)
    matches = matching_subjects(trigger, EvaluationContext(subject, at))
    return ActivationChoice(
        matched=len(matches), backfill_targets=len(unfired_matches(trigger, matches))
    )
