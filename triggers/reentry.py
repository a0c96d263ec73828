"""Re-entry policies that depend on a trigger's own history.

"At most once every N days" keys a firing by the firing before it: "first"
for a subject that never fired, "after:<id>" once the latest firing is at
least N days old, and the latest firing's own key while it is younger, so
that the subject is recognised as fired. Two concurrent sweeps that read
the same latest firing compute the same key, and the unique constraint on
firings lets only one of them insert.

"Each new match" keys a firing by the start of the subject's match
episode, a TriggerMatch row that stays open while the subject matches at
consecutive sweeps and is closed by the first sweep that finds it not
matching. One open episode per subject is a unique constraint, so two
concurrent sweeps agree on its start.
"""

import logging
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

from django.db.models import (
    CharField,
    DateTimeField,
    Exists,
    OuterRef,
    Q,
    Subquery,
    Value,
)
from django.db.models.expressions import Case, Combinable, When
from django.db.models.functions import Cast, Coalesce, Concat

from conditions import EvaluationContext
from triggers.models import Firing, Occurrence, SubjectType, Trigger, TriggerMatch

logger = logging.getLogger(__name__)

FIRST_FIRING = "first"
AFTER_PREFIX = "after:"
EPISODE_PREFIX = "since:"

# (contact id or None, account id, occurrence key), as evaluation returns them.
Match = tuple[int | None, int, str]


def key_expression(
    occurrence: str, trigger: Trigger, context: EvaluationContext
) -> Combinable:
    """Return the per-subject key expression of a policy that reads trigger history."""
    if occurrence == Occurrence.EVERY_N_DAYS:
        return _after_latest_firing(trigger, context)
    if occurrence == Occurrence.EACH_NEW_MATCH:
        return _episode_start(trigger, context)
    raise ValueError(f"occurrence policy {occurrence!r} does not read trigger history")


def key_text(occurrence: str, value: object) -> str:
    """Turn an annotated key value into the text stored on the firing."""
    if occurrence == Occurrence.EACH_NEW_MATCH and isinstance(value, datetime):
        return episode_key(value)
    return str(value)


def episode_key(since: datetime) -> str:
    """Return the occurrence key of the episode that started at since, in UTC."""
    return EPISODE_PREFIX + since.astimezone(UTC).isoformat()


def _subject_filter(trigger: Trigger) -> Q:
    if trigger.subject_type == SubjectType.CONTACT:
        return Q(subject_type=SubjectType.CONTACT, contact=OuterRef("pk"))
    return Q(subject_type=SubjectType.ACCOUNT, account=OuterRef("pk"))


def _after_latest_firing(trigger: Trigger, context: EvaluationContext) -> Combinable:
    if not trigger.reentry_days:
        raise ValueError(
            f"trigger {trigger.slug!r} uses 'at most once every N days' without N; "
            "set its reentry_days to 1 or more"
        )
    earlier = Firing.objects.filter(
        _subject_filter(trigger), trigger_id=trigger.pk, fired_at__lte=context.as_of
    ).order_by("-fired_at", "-pk")
    window_start = context.as_of - timedelta(days=trigger.reentry_days)
    latest_key = Subquery(earlier.values("occurrence_key")[:1])
    latest_id = Subquery(earlier.values("pk")[:1])
    return Case(
        # Fired less than N days ago: repeat that firing's key, so the
        # subject counts as fired for it.
        When(Exists(earlier.filter(fired_at__gt=window_start)), then=latest_key),
        When(
            Exists(earlier),
            then=Concat(Value(AFTER_PREFIX), Cast(latest_id, output_field=CharField())),
        ),
        default=Value(FIRST_FIRING),
        output_field=CharField(),
    )


def _episode_start(trigger: Trigger, context: EvaluationContext) -> Combinable:
    open_episode = TriggerMatch.objects.filter(
        _subject_filter(trigger), trigger_id=trigger.pk, ended_at__isnull=True
    )
    # A subject without an open episode starts one at this sweep; the
    # episode row itself is written by record_matches.
    return Coalesce(
        Subquery(open_episode.values("since")[:1]),
        Value(context.as_of),
        output_field=DateTimeField(),
    )


def record_matches(
    trigger: Trigger,
    matches: list[Match],
    as_of: datetime,
    account_ids: Sequence[int] | None = None,
) -> list[Match]:
    """Update the match episodes of an 'each new match' trigger; return keyed matches.

    Closes the open episodes of subjects that no longer match, extends
    those that still match and opens one for each new match, then keys
    every match by its episode's start. Other policies are returned as
    they are. Must run in the sweep's transaction, before the firings are
    inserted. account_ids limits the episodes closed to those accounts,
    because a scoped sweep evaluates no other subject.
    """
    if trigger.occurrence != Occurrence.EACH_NEW_MATCH:
        return matches

    is_contact = trigger.subject_type == SubjectType.CONTACT
    subject_field = "contact_id" if is_contact else "account_id"
    subject_ids = [match[0] if is_contact else match[1] for match in matches]
    open_episodes = TriggerMatch.objects.filter(
        trigger=trigger, subject_type=trigger.subject_type, ended_at__isnull=True
    )
    if account_ids is not None:
        open_episodes = open_episodes.filter(account_id__in=account_ids)

    closed = (
        open_episodes.exclude(**{f"{subject_field}__in": subject_ids})
        .filter(since__lte=as_of)
        .update(ended_at=as_of)
    )
    continuing = open_episodes.filter(**{f"{subject_field}__in": subject_ids})
    continuing.update(last_seen=as_of)
    starts = dict(continuing.values_list(subject_field, "since"))

    new_matches = [
        match
        for match, subject_id in zip(matches, subject_ids, strict=True)
        if subject_id not in starts
    ]
    # ON CONFLICT DO NOTHING: a concurrent sweep that opened the episode
    # first keeps its start, which the read below picks up.
    TriggerMatch.objects.bulk_create(
        [
            TriggerMatch(
                trigger=trigger,
                subject_type=trigger.subject_type,
                account_id=account_id,
                contact_id=contact_id,
                since=as_of,
                last_seen=as_of,
            )
            for contact_id, account_id, _ in new_matches
        ],
        ignore_conflicts=True,
    )
    if new_matches:
        new_ids = [match[0] if is_contact else match[1] for match in new_matches]
        opened = open_episodes.filter(**{f"{subject_field}__in": new_ids})
        starts.update(opened.values_list(subject_field, "since"))
    if closed:
        logger.info(
            "Trigger %s: %s match episodes ended as of %s",
            trigger.slug,
            closed,
            as_of.isoformat(),
        )
    return [
        (contact_id, account_id, episode_key(starts.get(subject_id, as_of)))
        for (contact_id, account_id, _), subject_id in zip(
            matches, subject_ids, strict=True
        )
    ]
