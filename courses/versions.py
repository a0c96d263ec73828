"""Course versions: publishing changed content, and recertification.

A course's published content has a version number, Course.version, which
starts at 1. A CSM raises it by publishing a new version after changing
lessons, and chooses then whether learners who completed an older version
must recertify. Completing a course records the version completed on the
enrollment and on its certificate, so later edits never change what a
learner completed (docs/decisions/0020-course-versions-and-recertification.md).
Each version stores a snapshot of its lessons (courses.snapshots), from
which the next version lists what changed and which quizzes and exams
learners must pass again
(docs/decisions/0027-lesson-snapshots-and-assessment-retakes.md).
"""

import logging
from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import User
from django.db import transaction
from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from courses.models import (
    Certificate,
    Course,
    CourseVersion,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonProgress,
)
from courses.recertification import (
    Retakes,
    counted_retakes,
    lessons_counted,
    retakes_left,
    rule_counts,
    stale_passes,
    stored_versions,
)
from courses.services import LESSON_ORDER, LessonState, ModuleEntry, Progress
from courses.snapshots import (
    Snapshot,
    VersionChanges,
    compare_snapshots,
    is_comparable,
    snapshot_fingerprint,
    take_snapshot,
)
from customers.services import send_data_changed

logger = logging.getLogger(__name__)

# Above this many accounts, publishing leaves the marked learners to the next
# sweep: one evaluation per account would cost more than the sweep's one
# query per trigger. Lifecycle stage changes use the same limit.
MAX_ANNOUNCED_ACCOUNTS = 500


class VersionError(ValueError):
    """A version that cannot be published, with the reason for the CSM."""


@dataclass(frozen=True)
class VersionState:
    number: int
    latest: CourseVersion | None
    # Whether the lessons differ from the latest published version; None
    # when that version has no snapshot to compare with, or there is none.
    changed: bool | None
    # The changes since the latest version; None when changed is None.
    changes: VersionChanges | None


def version_state(course: Course) -> VersionState:
    """Return the course's version and what changed in its content since then."""
    latest = CourseVersion.objects.filter(course=course).order_by("-number").first()
    if latest is None or not is_comparable(latest.snapshot):
        return VersionState(
            number=course.version, latest=latest, changed=None, changes=None
        )
    assert latest.snapshot is not None  # is_comparable rules out None
    snapshot = take_snapshot(course)
    return VersionState(
        number=course.version,
        latest=latest,
        changed=snapshot_fingerprint(snapshot) != latest.fingerprint,
        changes=compare_snapshots(latest.snapshot, snapshot),
    )


# The note on version 1 rows that record lessons instead of a publication.
FIRST_VERSION_NOTE = "Lessons as first published."


def record_first_version(course: Course, *, at: datetime | None = None) -> bool:
    """Record the lessons of a published course at version 1; return whether it wrote.

    A course gets version 1 without a publication, so nothing else records
    its lessons. The admin calls this after each save of the course, its
    modules or its lessons. Until the first learner completes the course,
    version 1 follows the edits. From then on it keeps the lessons as they
    were, so the next version lists the changes made since. A course first
    recorded after a completion gets its lessons as they are at that save.
    Drafts and courses past version 1 are left as they are.
    """
    with transaction.atomic():
        locked = Course.objects.select_for_update().get(pk=course.pk)
        if not locked.is_published or locked.version != 1:
            return False
        first = CourseVersion.objects.filter(course=locked, number=1).first()
        completed = Enrollment.objects.filter(
            course=locked, completed_at__isnull=False
        ).exists()
        if first is not None and completed:
            return False
        snapshot = take_snapshot(locked)
        fingerprint = snapshot_fingerprint(snapshot)
        if first is not None and first.fingerprint == fingerprint:
            return False
        CourseVersion.objects.update_or_create(
            course=locked,
            number=1,
            defaults={
                "fingerprint": fingerprint,
                "snapshot": snapshot,
                "lesson_count": len(snapshot["lessons"]),
                "note": FIRST_VERSION_NOTE,
                "published_at": at or timezone.now(),
            },
        )
    logger.info("Recorded the lessons of version 1 of course %s", course.pk)
    return True


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
    version and has something left under the completion rule is marked as
    needing recertification: a lesson not completed (a new lesson, or a
    required one they skipped), or a quiz or exam that a version changed
    after they passed it (courses.recertification). Their status stays
    completed. expire_certificates then also ends their current
    certificates now. Without it, every completion is kept as it is.

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
    snapshot = take_snapshot(locked)
    fingerprint = snapshot_fingerprint(snapshot)
    versions = stored_versions(locked.pk)
    latest = CourseVersion.objects.filter(course=locked).order_by("-number").first()
    if latest is not None and latest.fingerprint == fingerprint:
        raise VersionError(
            f"Course {locked.title!r} has not changed since version "
            f"{latest.number}; change a lesson before publishing a new version."
        )

    number = locked.version + 1
    flagged: dict[int, int] = {}
    if requires_recertification:
        retakes = _retakes_with(locked, versions, (published_at, snapshot))
        flagged = _mark_for_recertification(locked, number, retakes)
    if expire_certificates and flagged:
        _expire_certificates(list(flagged), published_at)
    _announce_marked(locked, set(flagged.values()))

    version = CourseVersion.objects.create(
        course=locked,
        number=number,
        fingerprint=fingerprint,
        snapshot=snapshot,
        lesson_count=len(snapshot["lessons"]),
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


def _retakes_with(
    course: Course,
    versions: list[tuple[datetime, Snapshot | None]],
    new: tuple[datetime, Snapshot],
) -> Retakes:
    """Return the quizzes and exams to pass again, with the version being published."""
    return counted_retakes(course.pk, course.completion_rule, [*versions, new])


def _mark_for_recertification(
    course: Course, number: int, retakes: Retakes
) -> dict[int, int]:
    """Mark completed enrollments of older versions with something left to do.

    Left to do is a lesson the rule counts and the learner has not
    completed, or a quiz or exam passed before a version changed it.
    Returns the marked enrollments' ids, each with its contact's account
    id. A learner with nothing left keeps their completion. Two queries.
    """
    left = Q(Exists(_lessons_left(course, OuterRef("pk"))))
    stale = stale_passes(retakes, OuterRef("pk"))
    if stale is not None:
        left |= stale
    candidates = (
        Enrollment.objects.filter(course=course, status=EnrollmentStatus.COMPLETED)
        .filter(Q(completed_version__lt=number) | Q(completed_version__isnull=True))
        .filter(left)
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
    lessons = lessons_counted(course.pk, course.completion_rule)
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
    # Whether a lesson the completion rule counts is not completed yet.
    lessons_left: bool = False
    # Quizzes and exams to pass again, in course order.
    retakes: tuple[Lesson, ...] = ()

    @property
    def retake_ids(self) -> frozenset[int]:
        return frozenset(lesson.pk for lesson in self.retakes)


def version_notice(enrollment: Enrollment) -> VersionNotice | None:
    """Return the notice for a completion of an older version; None otherwise.

    Reads only the enrollment and its course, which the portal loads with
    it, unless recertification is due. Then six more queries find what is
    left to do.
    """
    if enrollment.status != EnrollmentStatus.COMPLETED:
        return None
    completed = enrollment.completed_version or 1
    current = enrollment.course.version
    due = enrollment.recertification_version is not None
    if completed >= current and not due:
        return None
    if not due:
        return VersionNotice(
            completed_version=completed,
            current_version=current,
            recertification_due=False,
        )
    course = enrollment.course
    lessons_left = _lessons_left(course, OuterRef("pk"))
    retake_ids = retakes_left(enrollment)
    return VersionNotice(
        completed_version=completed,
        current_version=current,
        recertification_due=True,
        lessons_left=Enrollment.objects.filter(
            Exists(lessons_left), pk=enrollment.pk
        ).exists(),
        retakes=tuple(Lesson.objects.filter(pk__in=retake_ids).order_by(*LESSON_ORDER)),
    )


def recertification_progress(
    notice: VersionNotice, outline: list[ModuleEntry], rule: str
) -> Progress:
    """Return the course page's progress for a learner due for recertification.

    A quiz or exam to pass again counts as not completed, even though its
    progress row records a completion. Resume goes to the first lesson, in
    course order, that the rule counts and that is not completed or must be
    passed again. Reads no rows, because the outline and the notice hold them.
    """
    counted = [
        entry
        for module in outline
        for entry in module.lessons
        if rule_counts(entry.lesson, rule)
    ]
    unmet = [
        entry.lesson.pk
        for entry in counted
        if entry.state != LessonState.COMPLETED or entry.lesson.pk in notice.retake_ids
    ]
    return Progress.of(
        completed=len(counted) - len(unmet),
        total=len(counted),
        next_lesson_id=unmet[0] if unmet else None,
    )
