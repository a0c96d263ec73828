"""Unenrolling the contacts a trigger enrolled once they stop matching it.

Optional per trigger (Trigger.unenroll_when_unmatched, off by default). At
each sweep the trigger's own active enrollments, those with source
automatic and origin trigger:<slug>, end for the contacts whose subject no
longer matches. courses.services.end_trigger_enrollments decides which rows
may change: never a manual, imported or other trigger's enrollment, and
never a completed one.
"""

import logging
from collections.abc import Sequence
from datetime import datetime

from courses.services import end_trigger_enrollments, restore_trigger_enrollments
from triggers.journeys import journey_recipients
from triggers.models import Firing, FiringOutcome, SubjectType, Trigger

logger = logging.getLogger(__name__)

# (contact id or None, account id, occurrence key), as evaluation returns them.
Match = tuple[int | None, int, str]


def end_unmatched_enrollments(
    trigger: Trigger,
    matches: Sequence[Match],
    as_of: datetime,
    account_ids: Sequence[int] | None = None,
) -> int:
    """Unenroll the trigger's enrollments whose subject is not in matches.

    For a contact trigger a contact keeps its enrollments while it matches;
    for an account trigger every contact of a matching account keeps
    theirs. account_ids limits the change to those accounts, because a
    scoped sweep has not evaluated the others. Returns how many ended. One
    query, or none when the trigger does not unenroll.
    """
    if not trigger.unenroll_when_unmatched:
        return 0
    if trigger.subject_type == SubjectType.CONTACT:
        ended = end_trigger_enrollments(
            trigger.origin,
            keep_contact_ids={contact_id for contact_id, _, _ in matches if contact_id},
            account_ids=account_ids,
            at=as_of,
        )
    else:
        ended = end_trigger_enrollments(
            trigger.origin,
            keep_account_ids={account_id for _, account_id, _ in matches},
            account_ids=account_ids,
            at=as_of,
        )
    if ended:
        logger.info(
            "Trigger %s unenrolled %s contacts that no longer match as of %s",
            trigger.slug,
            ended,
            as_of.isoformat(),
        )
    return ended


def restore_enrollments(
    trigger: Trigger, firings: Sequence[Firing], as_of: datetime
) -> int:
    """Make the enrollments this trigger ended active again for its new firings.

    A subject that stops matching, is unenrolled, and fires again gets its
    course back with its progress. Only the trigger's own course and its own
    unenrolled rows change. Returns how many were restored.
    """
    course = trigger.enroll_course
    acted = [firing for firing in firings if firing.outcome == FiringOutcome.ACTED]
    if not trigger.unenroll_when_unmatched or course is None or not acted:
        return 0
    recipients = journey_recipients(trigger, acted, as_of)
    pairs = [(contact.pk, course.pk) for _, contact in recipients]
    return restore_trigger_enrollments(trigger.origin, pairs, at=as_of)
