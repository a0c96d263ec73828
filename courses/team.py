"""The champion's view of their team: each contact of the account and their courses.

A champion is a contact with is_champion set; the field comes from the CRM
or the admin. The team view lists the contacts of the champion's own
account and nothing of any other account. Courses that are drafts, and enrollments a
trigger ended, are left out as in the learner's own portal.
"""

from dataclasses import dataclass
from decimal import Decimal

from django.db.models import F, QuerySet

from courses.models import (
    Certificate,
    Enrollment,
    EnrollmentStatus,
    LessonProgress,
)
from courses.services import LESSON_ORDER, Progress, enrollment_progress
from customers.models import Contact

# The contact and enrollment fields the team pages read. Loading the
# others, timestamps and JSON fields among them, took most of the
# overview's time for a large account. Reading another field of
# TeamMember.contact or MemberCourse.enrollment, the enrollment's course
# included, costs one query per row.
TEAM_CONTACT_FIELDS = ("account", "email", "first_name", "last_name", "role")
TEAM_ENROLLMENT_FIELDS = (
    "contact",
    "course",
    "status",
    "score",
    "recertification_version",
)


class NotAChampion(LookupError):
    """The contact is not their account's champion, so the team view is not theirs."""


@dataclass(frozen=True, slots=True)
class MemberCourse:
    enrollment: Enrollment
    # The course's title alone, not a Course per enrollment, because building
    # 1,600 of them and collecting them again took a fifth of the overview.
    course_title: str
    progress: Progress
    # The newest certificate that is not revoked; None when there is none.
    certificate: Certificate | None


@dataclass(frozen=True)
class TeamMember:
    contact: Contact
    courses: list[MemberCourse]

    @property
    def completed_count(self) -> int:
        return sum(
            1
            for course in self.courses
            if course.enrollment.status == EnrollmentStatus.COMPLETED
        )


@dataclass(frozen=True)
class LessonScore:
    course_title: str
    lesson_title: str
    score: Decimal


def check_champion(contact: Contact) -> None:
    """Raise NotAChampion unless the contact is their account's champion."""
    if not contact.is_champion:
        raise NotAChampion(f"Contact {contact.pk} is not a champion of an account")


def team_overview(champion: Contact) -> list[TeamMember]:
    """Return every contact of the champion's account with their courses, by name.

    Five queries however many contacts and enrollments: the contacts, the
    enrollments, two for the progress figures and one for certificates.
    """
    check_champion(champion)
    return _members(_team(champion))


def team_member(champion: Contact, contact_id: int) -> TeamMember:
    """Return one contact of the champion's account with their courses.

    Raises NotAChampion for a contact who is not a champion, and LookupError
    for a contact of another account or an unknown id. The portal returns
    404 for both.
    """
    check_champion(champion)
    members = _members(_team(champion).filter(pk=contact_id))
    if not members:
        raise LookupError(
            f"Contact {contact_id} is not in account {champion.account_id}"
        )
    return members[0]


def member_scores(member: TeamMember) -> list[LessonScore]:
    """Return the member's quiz and exam scores, in course and lesson order."""
    enrollment_ids = [course.enrollment.pk for course in member.courses]
    rows = (
        LessonProgress.objects.filter(
            enrollment_id__in=enrollment_ids, score__isnull=False
        )
        .select_related("lesson__module__course")
        .order_by("enrollment__course__title", *(f"lesson__{f}" for f in LESSON_ORDER))
    )
    return [
        LessonScore(
            course_title=row.lesson.module.course.title,
            lesson_title=row.lesson.title,
            score=row.score,
        )
        for row in rows
        if row.score is not None
    ]


def _team(champion: Contact) -> QuerySet[Contact]:
    return (
        Contact.objects.filter(account_id=champion.account_id)
        .only(*TEAM_CONTACT_FIELDS)
        .order_by("last_name", "first_name", "pk")
    )


def _members(team: QuerySet[Contact]) -> list[TeamMember]:
    contacts = list(team)
    if not contacts:
        return []
    # The contacts and enrollments go in as subqueries, not lists of ids,
    # because passing the search benchmark's 1,600 enrollment ids took
    # Django about 10 ms and the subquery runs in about 1 ms.
    shown_enrollments = Enrollment.objects.filter(
        contact__in=team, course__is_published=True
    ).exclude(status=EnrollmentStatus.UNENROLLED)
    enrollments = list(
        shown_enrollments.only(*TEAM_ENROLLMENT_FIELDS)
        .annotate(course_title=F("course__title"))
        .order_by("course__title", "pk")
    )
    # The team pages show no Resume link, so they skip the next-lesson query.
    progress = enrollment_progress(enrollments, find_next_lesson=False)
    certificates: dict[int, Certificate] = {}
    for certificate in Certificate.objects.filter(
        enrollment__in=shown_enrollments, revoked_at__isnull=True
    ).order_by("enrollment_id", "-course_version", "-issued_at"):
        certificates.setdefault(certificate.enrollment_id, certificate)

    courses_by_contact: dict[int, list[MemberCourse]] = {}
    for enrollment in enrollments:
        courses_by_contact.setdefault(enrollment.contact_id, []).append(
            MemberCourse(
                enrollment=enrollment,
                course_title=enrollment.course_title,
                progress=progress[enrollment.pk],
                certificate=certificates.get(enrollment.pk),
            )
        )
    return [
        TeamMember(contact=contact, courses=courses_by_contact.get(contact.pk, []))
        for contact in contacts
    ]
