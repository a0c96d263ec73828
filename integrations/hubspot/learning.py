"""The learning values that Nudgepath writes to HubSpot contacts and companies.

Every value is computed from the learning records as they are now and
written as HubSpot's text form, so two computations of unchanged records
compare equal and nothing is sent twice.

- courses_completed: a contact's completed enrollments; for a company,
  the sum over its contacts.
- last_completion_date: the latest completion, YYYY-MM-DD in UTC; for a
  company, the latest of its contacts.
- current_learning_path: the title of the open learning path joined
  last, over the company's contacts for a company.
- certification_status: certified (a certificate neither revoked nor
  expired), expired or none; a company takes the best of its contacts.
- learning_stage: not_enrolled, enrolled, in_progress, completed or
  certified; a company takes the furthest of its contacts.
"""

import re
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from django.db.models import Count, Max, Q
from django.utils import timezone

from courses.models import Certificate, Enrollment, EnrollmentStatus, PathEnrollment
from customers.models import Contact

MEASURES = (
    "courses_completed",
    "last_completion_date",
    "current_learning_path",
    "certification_status",
    "learning_stage",
)
# Stages in the order a learner reaches them; a company takes the furthest.
STAGES = ("not_enrolled", "enrolled", "in_progress", "completed", "certified")
CERTIFICATION_ORDER = ("none", "expired", "certified")
OBJECTS = ("contact", "company")
# HubSpot's internal property names: lower case letters, digits and _.
PROPERTY_NAME = re.compile(r"[a-z][a-z0-9_]{0,99}")


def learning_property_errors(config: Any) -> list[str]:
    """Return what is wrong with a connection's learning_properties setting."""
    if not isinstance(config, dict):
        return ['Must be a JSON object such as {"contact": {...}, "company": {...}}.']
    errors = []
    for object_name, names in config.items():
        if object_name not in OBJECTS:
            errors.append(f"{object_name!r} is not contact or company.")
            continue
        if not isinstance(names, dict):
            errors.append(f"{object_name} must map values to property names.")
            continue
        for measure, name in names.items():
            if measure not in MEASURES:
                errors.append(
                    f"{object_name}: {measure!r} is not one of {', '.join(MEASURES)}."
                )
            if not isinstance(name, str) or not PROPERTY_NAME.fullmatch(name):
                errors.append(
                    f"{object_name}.{measure}: {name!r} is not a HubSpot internal "
                    "property name (lower case letters, digits and _)."
                )
    return errors


def contact_values(
    contact_ids: Iterable[int], now: datetime | None = None
) -> dict[int, dict[str, str]]:
    """Return the learning values of each contact, by contact id."""
    now = now or timezone.now()
    ids = list(contact_ids)
    completed = dict(
        Enrollment.objects.filter(
            contact_id__in=ids,
            status=EnrollmentStatus.COMPLETED,
            completed_at__isnull=False,
        )
        .values("contact_id")
        .annotate(count=Count("id"))
        .values_list("contact_id", "count")
    )
    last = dict(
        Enrollment.objects.filter(contact_id__in=ids, completed_at__isnull=False)
        .values("contact_id")
        .annotate(last=Max("completed_at"))
        .values_list("contact_id", "last")
    )
    active = _active_enrollments(ids)
    paths = _current_paths(ids)
    certification = _certification(ids, now)
    values = {}
    for contact_id in ids:
        status = certification.get(contact_id, "none")
        values[contact_id] = {
            "courses_completed": str(completed.get(contact_id, 0)),
            "last_completion_date": _date(last.get(contact_id)),
            "current_learning_path": paths.get(contact_id, ("", None))[0],
            "certification_status": status,
            "learning_stage": _stage(
                status, completed.get(contact_id, 0), active.get(contact_id)
            ),
        }
    return values


def account_values(
    account_ids: Iterable[int], now: datetime | None = None
) -> dict[int, dict[str, str]]:
    """Return the learning values of each account, from those of its contacts."""
    ids = list(account_ids)
    contacts = defaultdict(list)
    for contact_id, account_id in Contact.objects.filter(
        account_id__in=ids
    ).values_list("pk", "account_id"):
        contacts[account_id].append(contact_id)
    per_contact = contact_values(
        [pk for members in contacts.values() for pk in members], now
    )
    paths = _current_paths(list(per_contact))
    values = {}
    for account_id in ids:
        members = [per_contact[pk] for pk in contacts.get(account_id, [])]
        joined = [paths[pk] for pk in contacts.get(account_id, []) if pk in paths]
        values[account_id] = {
            "courses_completed": str(sum(int(m["courses_completed"]) for m in members)),
            "last_completion_date": max(
                (m["last_completion_date"] for m in members), default=""
            ),
            "current_learning_path": max(joined, key=lambda p: p[1])[0]
            if joined
            else "",
            "certification_status": max(
                (m["certification_status"] for m in members),
                key=CERTIFICATION_ORDER.index,
                default="none",
            ),
            "learning_stage": max(
                (m["learning_stage"] for m in members),
                key=STAGES.index,
                default="not_enrolled",
            ),
        }
    return values


def _active_enrollments(ids: list[int]) -> dict[int, bool]:
    """Return, per contact with an active enrollment, whether it started one."""
    rows = (
        Enrollment.objects.filter(contact_id__in=ids, status=EnrollmentStatus.ACTIVE)
        .values("contact_id")
        .annotate(started=Count("id", filter=Q(started_at__isnull=False)))
        .values_list("contact_id", "started")
    )
    return {contact_id: started > 0 for contact_id, started in rows}


def _current_paths(ids: list[int]) -> dict[int, tuple[str, datetime]]:
    """Return the title and join time of each contact's open path joined last."""
    paths: dict[int, tuple[str, datetime]] = {}
    rows = (
        PathEnrollment.objects.filter(contact_id__in=ids, completed_at__isnull=True)
        .order_by("contact_id", "enrolled_at", "pk")
        .values_list("contact_id", "path__title", "enrolled_at")
    )
    for contact_id, title, enrolled_at in rows:
        # Ordered by join time, so the last one written stays.
        paths[contact_id] = (title, enrolled_at)
    return paths


def _certification(ids: list[int], now: datetime) -> dict[int, str]:
    rows = (
        Certificate.objects.filter(
            enrollment__contact_id__in=ids, revoked_at__isnull=True
        )
        .values("enrollment__contact_id")
        .annotate(
            valid=Count("id", filter=Q(expires_at__isnull=True) | Q(expires_at__gt=now))
        )
        .values_list("enrollment__contact_id", "valid")
    )
    return {
        contact_id: "certified" if valid else "expired" for contact_id, valid in rows
    }


def _stage(certification: str, completed: int, started: bool | None) -> str:
    if certification == "certified":
        return "certified"
    if completed:
        return "completed"
    if started:
        return "in_progress"
    if started is not None:
        return "enrolled"
    return "not_enrolled"


def _date(instant: datetime | None) -> str:
    return "" if instant is None else instant.astimezone(UTC).date().isoformat()
