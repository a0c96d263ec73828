"""A trigger's holdout as the comparison group of the changes around training.

A trigger with a holdout acts on most subjects that fire it and leaves a
share untreated, chosen by a hash of the trigger and the subject
(triggers.holdouts). Treated and held-out subjects then differ only by
chance and by the trigger's actions, so a difference in differences
between them estimates the effect of those actions, where trained against
untrained only shows an association.

Each subject is placed on the UTC day of its first acted or held-out
firing of the trigger, so both groups have days of their own and need no
aligned days. The windows and statistics are those of metrics.changes.
"""

import logging
from datetime import date, timedelta
from typing import Any

from django.db.models import Min

from customers.models import Contact
from customers.services import utc_date, utc_day_start
from metrics.cohorts import (
    DAYS_AFTER,
    SAMPLE_LIMIT,
    Anchor,
    AnchoredCohorts,
    SubjectLevel,
    sample_key,
)
from metrics.scope import Scope
from triggers.models import Firing, FiringOutcome, SubjectType, Trigger

logger = logging.getLogger(__name__)

COMPARED_OUTCOMES = (FiringOutcome.ACTED, FiringOutcome.HELD_OUT)


def first_firing_days(
    trigger: Trigger, scope: Scope, level: SubjectLevel, as_of: date
) -> dict[int, tuple[date, bool]]:
    """Return subject id -> (day of its first firing, treated) up to as_of.

    The holdout hash gives a subject the same outcome at every firing of a
    trigger. An account whose contacts fired a contact trigger takes the
    outcome of its earliest firing, the first of its contacts to be drawn.
    """
    firings = Firing.objects.filter(
        trigger=trigger,
        outcome__in=COMPARED_OUTCOMES,
        fired_at__lt=utc_day_start(as_of + timedelta(days=1)),
    ).filter(scope.accounts("account__"))
    by_contact = (
        level == SubjectLevel.CONTACT and trigger.subject_type == SubjectType.CONTACT
    )
    subject_field = "contact_id" if by_contact else "account_id"
    rows = (
        firings.order_by()
        .values(subject_field, "outcome")
        .annotate(first=Min("fired_at"))
        .values_list(subject_field, "outcome", "first")
    )
    first: dict[int, tuple[Any, bool]] = {}
    for subject, outcome, fired_at in rows:
        if subject not in first or fired_at < first[subject][0]:
            first[subject] = (fired_at, outcome == FiringOutcome.ACTED)
    days = {
        subject: (utc_date(fired_at), treated)
        for subject, (fired_at, treated) in first.items()
    }
    if level == SubjectLevel.CONTACT and not by_contact:
        return _contacts_of_accounts(days, scope)
    return days


def _contacts_of_accounts(
    accounts: dict[int, tuple[date, bool]], scope: Scope
) -> dict[int, tuple[date, bool]]:
    """Give each contact of a fired account that account's day and group."""
    contacts = Contact.objects.filter(account_id__in=list(accounts)).filter(
        scope.accounts("account__")
    )
    return {
        contact: accounts[account]
        for contact, account in contacts.values_list("pk", "account_id")
    }


def _hashed_sample(anchors: list[Anchor]) -> list[Anchor]:
    ordered = sorted(anchors, key=lambda anchor: sample_key(anchor.subject_id))
    return ordered[:SAMPLE_LIMIT]


def holdout_cohorts(
    trigger: Trigger, scope: Scope, level: SubjectLevel, as_of: date
) -> AnchoredCohorts:
    """Place treated and held-out subjects of ``trigger`` on their first firing day.

    The treated take the place of the trained and the held out that of the
    untrained. Subjects whose window after the firing has not ended by
    ``as_of`` wait, and the period of ``scope`` keeps the firings made in it.
    Each group is capped at SAMPLE_LIMIT by a hash of the subject id.
    """
    anchors: dict[bool, list[Anchor]] = {True: [], False: []}
    awaiting = 0
    first_days = first_firing_days(trigger, scope, level, as_of)
    for subject, (day, treated) in first_days.items():
        in_period = (scope.start is None or day >= scope.start) and (
            scope.end is None or day <= scope.end
        )
        if not in_period:
            continue
        if day + timedelta(days=DAYS_AFTER) > as_of:
            awaiting += 1
            continue
        anchors[treated].append(Anchor(subject_id=subject, trained=treated, day=day))

    eligible = {treated: len(group) for treated, group in anchors.items()}
    measured = {treated: _hashed_sample(group) for treated, group in anchors.items()}
    logger.info(
        "Anchored %s holdout cohorts of trigger %s: %s treated, %s held out, "
        "%s awaiting",
        level,
        trigger.pk,
        eligible[True],
        eligible[False],
        awaiting,
    )
    return AnchoredCohorts(
        level=level,
        trained_days=sorted(anchor.day for anchor in measured[True]),
        untrained=measured[False],
        trained_awaiting_follow_up=awaiting,
        untrained_eligible=eligible[False],
        trained_eligible=eligible[True],
        trained=measured[True],
    )
