"""Pushing learning values to HubSpot and course completions as timeline events.

The values of each linked contact and company are computed, compared
with the values HubSpot last accepted for that record (pushed_learning
on its link), and only the changed ones go out, in batch updates of at
most NUDGEPATH_HUBSPOT_PAGE_SIZE records. HubSpot returns 200 when every
input was applied and 207 with the failed ids otherwise. A record that
failed keeps its old pushed values, so the next push tries it again.

A push holds a lock on the connection's row, so two workers never push
for one connection at once. A push that finds the row locked returns,
and the running push or the next periodic one sends what changed.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from hubspot.crm.companies import BatchInputSimplePublicObjectBatchInput as CompanyBatch
from hubspot.crm.contacts import BatchInputSimplePublicObjectBatchInput as ContactBatch
from hubspot.crm.timeline import TimelineEvent

from courses.models import Enrollment, EnrollmentStatus
from integrations.hubspot.api import HubSpotError, build_client, call
from integrations.hubspot.crm_models import TimelineEventSent
from integrations.hubspot.learning import account_values, contact_values
from integrations.hubspot.models import (
    PLURALS,
    HubSpotConnection,
    HubSpotLink,
    ObjectType,
)
from integrations.hubspot.writeback import failed_ids

logger = logging.getLogger(__name__)


@dataclass
class LearningPushCounts:
    records_pushed: int = 0
    records_failed: int = 0
    records_unchanged: int = 0
    events_sent: int = 0
    events_failed: int = 0


def push_learning(
    connection: HubSpotConnection, account_ids: Iterable[int] | None = None
) -> LearningPushCounts | None:
    """Push changed learning values and new completion events; return the counts.

    account_ids limits the push to those accounts and their contacts; None
    pushes every linked record. Returns None when another worker holds the
    connection's lock. A rate limit or server error that outlasts the
    retries raises HubSpotError, and what was not pushed goes next time.
    """
    counts = LearningPushCounts()
    ids = None if account_ids is None else list(account_ids)
    with transaction.atomic():
        locked = (
            HubSpotConnection.objects.select_for_update(skip_locked=True)
            .filter(pk=connection.pk)
            .first()
        )
        if locked is None:
            logger.info("HubSpot connection %s is pushing already", connection.pk)
            return None
        config = connection.learning_properties or {}
        if config.get("company"):
            _push_object(connection, ObjectType.COMPANY, config["company"], ids, counts)
        if config.get("contact"):
            _push_object(connection, ObjectType.CONTACT, config["contact"], ids, counts)
        if connection.completion_event_template_id:
            _send_completions(connection, ids, counts)
    logger.info("HubSpot connection %s learning push: %s", connection.pk, counts)
    return counts


def _push_object(
    connection: HubSpotConnection,
    object_type: str,
    names: dict[str, str],
    account_ids: list[int] | None,
    counts: LearningPushCounts,
) -> None:
    links = _links(connection, object_type, account_ids)
    page = settings.NUDGEPATH_HUBSPOT_PAGE_SIZE
    for start in range(0, len(links), page):
        chunk = links[start : start + page]
        by_link = _values_by_link(object_type, chunk)
        changes = {}
        for link in chunk:
            current = {names[m]: v for m, v in by_link[link.pk].items() if m in names}
            changed = {
                name: value
                for name, value in current.items()
                if link.pushed_learning.get(name) != value
            }
            if changed:
                changes[link.hubspot_id] = (link, changed)
            else:
                counts.records_unchanged += 1
        if changes:
            _send_updates(connection, object_type, changes, counts)


def _values_by_link(
    object_type: str, links: list[HubSpotLink]
) -> dict[int, dict[str, str]]:
    # _links selects links with an account (companies) or a contact.
    if object_type == ObjectType.COMPANY:
        subjects = {link.pk: link.account_id or 0 for link in links}
        values = account_values(subjects.values())
    else:
        subjects = {link.pk: link.contact_id or 0 for link in links}
        values = contact_values(subjects.values())
    return {pk: values[subject] for pk, subject in subjects.items()}


def _links(
    connection: HubSpotConnection, object_type: str, account_ids: list[int] | None
) -> list[HubSpotLink]:
    links = HubSpotLink.objects.filter(
        connection=connection,
        object_type=object_type,
        merged_into="",
        archived_at__isnull=True,
    )
    if object_type == ObjectType.COMPANY:
        links = links.filter(account__isnull=False)
        if account_ids is not None:
            links = links.filter(account_id__in=account_ids)
    else:
        links = links.filter(contact__isnull=False)
        if account_ids is not None:
            links = links.filter(contact__account_id__in=account_ids)
    return list(links.order_by("pk"))


def _send_updates(
    connection: HubSpotConnection,
    object_type: str,
    changes: dict[str, tuple[HubSpotLink, dict[str, str]]],
    counts: LearningPushCounts,
) -> None:
    inputs = [
        {"id": hubspot_id, "properties": changed}
        for hubspot_id, (_, changed) in changes.items()
    ]
    client = build_client(connection)
    if object_type == ObjectType.COMPANY:
        batch: Any = CompanyBatch(inputs=inputs)
        api = client.crm.companies.batch_api
    else:
        batch = ContactBatch(inputs=inputs)
        api = client.crm.contacts.batch_api
    try:
        response = call(
            connection,
            lambda: api.update(batch_input_simple_public_object_batch_input=batch),
            description=(
                f"update learning properties of {len(inputs)} {PLURALS[object_type]}"
            ),
        )
    except HubSpotError as error:
        if error.transient:
            raise
        # HubSpot rejected the whole request, for example a property that
        # does not exist. The records stay as they were and are tried again.
        counts.records_failed += len(inputs)
        logger.warning("HubSpot rejected learning properties: %s", error)
        return
    failed = failed_ids(response)
    accepted = []
    for hubspot_id, (link, changed) in changes.items():
        if hubspot_id in failed:
            counts.records_failed += 1
            logger.warning(
                "HubSpot %s %s kept its learning properties: %s",
                object_type,
                hubspot_id,
                failed[hubspot_id],
            )
            continue
        link.pushed_learning = {**link.pushed_learning, **changed}
        accepted.append(link)
    HubSpotLink.objects.bulk_update(accepted, ["pushed_learning"])
    counts.records_pushed += len(accepted)


def _send_completions(
    connection: HubSpotConnection,
    account_ids: list[int] | None,
    counts: LearningPushCounts,
) -> None:
    """Send each completion that no row records yet as one timeline event."""
    contact_links = dict(
        HubSpotLink.objects.filter(
            connection=connection,
            object_type=ObjectType.CONTACT,
            contact__isnull=False,
            merged_into="",
            archived_at__isnull=True,
        ).values_list("contact_id", "hubspot_id")
    )
    enrollments = (
        Enrollment.objects.filter(
            status=EnrollmentStatus.COMPLETED,
            completed_at__isnull=False,
            contact_id__in=list(contact_links),
        )
        .select_related("course")
        .order_by("completed_at", "pk")
    )
    if account_ids is not None:
        enrollments = enrollments.filter(contact__account_id__in=account_ids)
    sent = set(
        TimelineEventSent.objects.filter(connection=connection).values_list(
            "enrollment_id", "course_version"
        )
    )
    api = build_client(connection).crm.timeline.events_api
    for enrollment in enrollments:
        version = enrollment.completed_version or 1
        if (enrollment.pk, version) in sent:
            continue
        _send_completion(connection, api, enrollment, version, contact_links, counts)


def _send_completion(
    connection: HubSpotConnection,
    api: Any,
    enrollment: Enrollment,
    version: int,
    contact_links: dict[int, str],
    counts: LearningPushCounts,
) -> None:
    assert enrollment.completed_at is not None
    event_id = f"nudgepath-completion-{enrollment.pk}-v{version}"
    hubspot_contact_id = contact_links[enrollment.contact_id]
    event = TimelineEvent(
        event_template_id=connection.completion_event_template_id,
        object_id=hubspot_contact_id,
        id=event_id,
        timestamp=enrollment.completed_at,
        tokens={
            "course": enrollment.course.title,
            "course_version": str(version),
            "completed_at": enrollment.completed_at.date().isoformat(),
            "score": "" if enrollment.score is None else str(enrollment.score),
        },
    )
    error = ""
    try:
        call(
            connection,
            lambda: api.create(timeline_event=event),
            description=f"create timeline event {event_id}",
        )
    except HubSpotError as failure:
        if failure.transient:
            raise
        # 409: HubSpot has the event already, from a push whose row was
        # rolled back; the event id makes the second send a no-op there.
        if failure.status != 409:
            error = str(failure)
    TimelineEventSent.objects.create(
        connection=connection,
        enrollment=enrollment,
        course_version=version,
        event_id=event_id,
        hubspot_contact_id=hubspot_contact_id,
        sent_at=None if error else timezone.now(),
        last_error=error,
    )
    if error:
        counts.events_failed += 1
        logger.warning("HubSpot rejected timeline event %s: %s", event_id, error)
    else:
        counts.events_sent += 1
