"""Course versions: publishing changed content, and recertification.

A course's published content has a version number, Course.version, which
starts at 1. A CSM raises it by publishing a new version after changing
lessons, and chooses then whether learners who completed an older version
must recertify. Completing a course records the version completed on the
enrollment and on its certificate, so later edits never change what a
learner completed (docs/decisions/0020-course-versions-and-recertification.md).
"""

import hashlib
import json
import logging
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from courses.models import (
    Certificate,
    CompletionRule,
    Course,
    CourseVersion,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonKind,
    LessonProgress,
)
from customers.services import send_data_changed

logger = logging.getLogger(__name__)

# Above this many accounts, publishing leaves the marked learners to the next
# sweep: one evaluation per account would cost more than the sweep's one
# query per trigger. Lifecycle stage changes use the same limit.
MAX_ANNOUNCED_ACCOUNTS = 500

# The lesson columns whose change a learner would notice. Order and titles of
# modules are left out: moving a lesson between modules keeps its content.
FINGERPRINT_FIELDS = (
    "id",
    "kind",
    "is_required",
    "title",
    "body",
    "url",
    "file",
    "pass_mark",
)


class VersionError(ValueError):
    """A version that cannot be published, with the reason for the CSM."""


def content_fingerprint(course: Course) -> tuple[str, int]:
    """Return the SHA-256 of the course's lessons and completion rule, and the lessons.

    Two queries. Editing a lesson's text, kind, link, file, pass mark or
    required flag, and adding or deleting a lesson, changes the fingerprint.
    """
    rows = list(
        Lesson.objects.filter(module__course_id=course.pk)
        .order_by("id")
        .values_list(*FINGERPRINT_FIELDS)
    )
    rule = Course.objects.values_list("completion_rule", flat=True).get(pk=course.pk)
    payload = json.dumps([rule, rows], default=str, separators=(",", ":"))
    return hashlib.sha256(payload.encode()).hexdigest(), len(rows)


@dataclass(frozen=True)
class VersionState:
    number: int
    latest: CourseVersion | None
    # Whether the lessons differ from the latest published version; None
    # when no version was recorded yet, so there is nothing to compare with.
    changed: bool | None


def version_state(course: Course) -> VersionState:
    """Return the course's version and whether its content changed since then."""
    latest = CourseVersion.objects.filter(course=course).order_by("-number").first()
    if latest is None:
        return VersionState(number=course.version, latest=None, changed=None)
    fingerprint, _count = content_fingerprint(course)
    return VersionState(
        number=course.version,
        latest=latest,
        changed=fingerprint != latest.fingerprint,
    )


@transaction.atomic
def publish_version(
    course: Course,
    *,
    requires_recertification: bool,
    expire_certificates: bool = False,
    note: str = "",
    published_by: User | None = None,
    at: datetime | None = None,
) -> CourseVersion:
    """Publish the course's current lessons as its next version and return it.

    With requires_recertification, every learner who completed an older
    version and has a lesson left under the completion rule (a new lesson,
    or a required one they skipped) is marked as needing recertification.
    Their status stays completed. expire_certificates then also ends their
    current certificates now. Without it, every completion is kept as it is.

    Raises VersionError when nothing changed since the latest version, or
    when expire_certificates is asked without recertification. The course
    row is locked, so two CSMs publishing at once get consecutive numbers.
    """
    if expire_certificates and not requires_recertification:
        raise VersionError(
            "Expiring certificates needs recertification: tick "
            "'Requires recertification' too, or leave certificates as they are."
        )
    published_at = at or timezone.now()
    locked = Course.objects.select_for_update().get(pk=course.pk)
    fingerprint, lesson_count = content_fingerprint(locked)
    latest = CourseVersion.objects.filter(course=locked).order_by("-number").first()
    if latest is not None and latest.fingerprint == fingerprint:
        raise VersionError(
            f"Course {locked.title!r} has not changed since version "
            f"{latest.number}; change a lesson before publishing a new version."
        )

    number = locked.version + 1
    flagged: dict[int, int] = {}
    if requires_recertification:
        flagged = _mark_for_recertification(locked, number)
    if expire_certificates and flagged:
        _expire_certificates(list(flagged), published_at)
    _announce_marked(locked, set(flagged.values()))

    version = CourseVersion.objects.create(
        course=locked,
        number=number,
        fingerprint=fingerprint,
        lesson_count=lesson_count,
        note=note,
        requires_recertification=requires_recertification,
        expired_certificates=expire_certificates,
        recertification_count=len(flagged),
        published_at=published_at,
        published_by=published_by,
    )
    locked.version = number
    locked.save(update_fields=["version", "updated_at"])
    course.version = number
    logger.info(
        "Published version %s of course %s (recertification=%s, marked=%s)",
        number,
        locked.pk,
        requires_recertification,
        len(flagged),
    )
    return version


def _mark_for_recertification(course: Course, number: int) -> dict[int, int]:
    """Mark completed enrollments of older versions with lessons left.

    Returns the marked enrollments' ids, each with its contact's account id.
    A learner who already completed every lesson the rule requires has
    nothing to recertify, so their completion is kept. Two queries.
    """
    candidates = (
        Enrollment.objects.filter(course=course, status=EnrollmentStatus.COMPLETED)
        .filter(Q(completed_version__lt=number) | Q(completed_version__isnull=True))
        .filter(Exists(_lessons_left(course, OuterRef("pk"))))
    )
    marked = dict(candidates.values_list("pk", "contact__account_id"))
    if marked:
        Enrollment.objects.filter(pk__in=marked).update(
            recertification_version=number, updated_at=timezone.now()
        )
    return marked


def _announce_marked(course: Course, account_ids: set[int]) -> None:
    """Send data_changed ("learning") for the accounts of newly marked learners.

    Publishing is not a learning event of any learner, but it makes
    recertification_due true for those marked, and expiring certificates
    changes certificate_expires_within. The receiver hands each account to
    the triggers' event path once the publication commits.
    """
    if len(account_ids) > MAX_ANNOUNCED_ACCOUNTS:
        logger.info(
            "Version of course %s marked learners in %s accounts, more than %s; "
            "the next sweep evaluates the triggers that read learning",
            course.pk,
            len(account_ids),
            MAX_ANNOUNCED_ACCOUNTS,
        )
        return
    for account_id in sorted(account_ids):
        send_data_changed(Enrollment, account_id, "learning")


def _lessons_left(course: Course, enrollment_id: OuterRef) -> QuerySet[Lesson]:
    """Return the lessons the completion rule requires that the enrollment lacks."""
    lessons = Lesson.objects.filter(module__course_id=course.pk)
    if course.completion_rule == CompletionRule.REQUIRED_LESSONS:
        lessons = lessons.filter(is_required=True)
    elif course.completion_rule == CompletionRule.PASS_EXAM:
        lessons = lessons.filter(kind=LessonKind.EXAM)
    completed = LessonProgress.objects.filter(
        enrollment_id=OuterRef(enrollment_id),
        lesson_id=OuterRef("pk"),
        completed_at__isnull=False,
    )
    return lessons.exclude(Exists(completed))


def _expire_certificates(enrollment_ids: list[int], at: datetime) -> int:
    expired = (
        Certificate.objects.filter(
            enrollment_id__in=enrollment_ids, revoked_at__isnull=True
        )
        .filter(Q(expires_at__isnull=True) | Q(expires_at__gt=at))
        .update(expires_at=at)
    )
    logger.info("Expired %s certificates for recertification", expired)
    return expired


@dataclass(frozen=True)
class VersionNotice:
    """The course page's notice to a learner about the version they completed."""

    completed_version: int
    current_version: int
    recertification_due: bool


def version_notice(enrollment: Enrollment) -> VersionNotice | None:
    """Return the notice for a completion of an older version; None otherwise.

    Reads only the enrollment and its course, which the portal loads with it.
    """
    if enrollment.status != EnrollmentStatus.COMPLETED:
        return None
    completed = enrollment.completed_version or 1
    current = enrollment.course.version
    due = enrollment.recertification_version is not None
    if completed >= current and not due:
        return None
    return VersionNotice(
        completed_version=completed,
        current_version=current,
        recertification_due=due,
    )
