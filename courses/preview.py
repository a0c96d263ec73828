"""Preview a course as the portal shows it, for staff, without writing anything.

The preview reads the course (published or a draft) and, when staff pick a
contact, that contact's enrollment and progress. It never records a view,
a heartbeat, a tick or an attempt, and it never signs anyone in: every
function here only reads. A contact who is not enrolled is shown as a new
learner with no progress, from an unsaved enrollment.
"""

from dataclasses import dataclass, replace
from datetime import timedelta

from django.utils import timezone

from courses.assessments import AssessmentState, assessment_state, attempt_counts
from courses.catalogue import catalogue_for
from courses.content import (
    ChecklistEntry,
    SessionTime,
    checklist_state,
    session_time,
)
from courses.models import (
    ChecklistItem,
    CompletionRule,
    Course,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonProgress,
    Question,
)
from courses.recertification import rule_counts
from courses.services import (
    LESSON_ORDER,
    LessonEntry,
    LessonState,
    ModuleEntry,
    Progress,
    course_outline,
    enrollment_progress,
)
from customers.models import Contact

# Shown where a learner would start an attempt; a preview starts none.
PREVIEW_ATTEMPT_NOTE = "Attempts are not started in a preview."


@dataclass(frozen=True)
class PreviewLearner:
    """Whom the preview shows the course to, and what they see of it."""

    contact: Contact | None
    enrollment: Enrollment
    # Whether the enrollment is a saved row (the contact is enrolled).
    enrolled: bool
    # A sentence on whether the contact can open the course, for the banner.
    access: str


def preview_learner(course: Course, contact: Contact | None) -> PreviewLearner:
    """Return the contact's enrollment in the course, or an unsaved stand-in.

    Drafts are previewed too, so the enrollment is read without the
    portal's published filter.
    """
    if contact is not None:
        enrollment = (
            Enrollment.objects.filter(contact=contact, course=course)
            .select_related("course")
            .first()
        )
        if enrollment is not None:
            return PreviewLearner(
                contact=contact,
                enrollment=enrollment,
                enrolled=True,
                access=_access_of(course, contact, enrollment),
            )
    stand_in = Enrollment(
        contact=contact,
        course=course,
        status=EnrollmentStatus.ACTIVE,
        enrolled_at=timezone.now(),
    )
    access = _access_of(course, contact, None) if contact else ""
    return PreviewLearner(
        contact=contact, enrollment=stand_in, enrolled=False, access=access
    )


def _access_of(course: Course, contact: Contact, enrollment: Enrollment | None) -> str:
    """Describe whether the contact could open the course in the portal now."""
    if not course.is_published:
        return "This course is a draft: no learner can open it until it is published."
    if enrollment is not None and enrollment.status != EnrollmentStatus.UNENROLLED:
        return f"{contact} is enrolled ({enrollment.get_status_display().lower()})."
    listed = any(entry.course.pk == course.pk for entry in catalogue_for(contact))
    if listed:
        return f"{contact} is not enrolled but finds this course in the catalogue."
    return f"{contact} is not enrolled and cannot find this course in the catalogue."


def preview_outline(learner: PreviewLearner) -> list[ModuleEntry]:
    """Return the modules and lessons with the learner's states, as in the portal."""
    if learner.enrolled:
        return course_outline(learner.enrollment)
    lessons = (
        Lesson.objects.filter(module__course_id=learner.enrollment.course_id)
        .select_related("module")
        .order_by(*LESSON_ORDER)
    )
    outline: list[ModuleEntry] = []
    for lesson in lessons:
        if not outline or outline[-1].module.pk != lesson.module_id:
            outline.append(ModuleEntry(module=lesson.module, lessons=[]))
        outline[-1].lessons.append(
            LessonEntry(lesson=lesson, state=LessonState.NOT_STARTED, progress=None)
        )
    return outline


def preview_progress(learner: PreviewLearner, outline: list[ModuleEntry]) -> Progress:
    if learner.enrolled:
        return enrollment_progress([learner.enrollment])[learner.enrollment.pk]
    # A new learner, counted and started as enrollment_progress would.
    rule = learner.enrollment.course.completion_rule
    lessons = [entry.lesson for module in outline for entry in module.lessons]
    counted = [lesson for lesson in lessons if rule_counts(lesson, rule)]
    first = lessons[0].pk if lessons else None
    if rule == CompletionRule.PASS_EXAM and counted:
        first = counted[0].pk
    return Progress.of(completed=0, total=len(counted), next_lesson_id=first)


def preview_lesson_progress(
    learner: PreviewLearner, lesson: Lesson
) -> LessonProgress | None:
    if not learner.enrolled:
        return None
    return LessonProgress.objects.filter(
        enrollment=learner.enrollment, lesson=lesson
    ).first()


def preview_checklist(learner: PreviewLearner, lesson: Lesson) -> list[ChecklistEntry]:
    if learner.enrolled:
        return checklist_state(learner.enrollment, lesson)
    return [
        ChecklistEntry(item=item, ticked=False)
        for item in ChecklistItem.objects.filter(lesson=lesson)
    ]


def preview_assessment(
    learner: PreviewLearner, lesson: Lesson
) -> AssessmentState | None:
    """Return the learner's attempts at the lesson, with starting blocked.

    None when the lesson has no questions, as on the portal's lesson page.
    """
    if not Question.objects.filter(lesson=lesson).exists():
        return None
    if not learner.enrolled:
        return AssessmentState(
            lesson=lesson,
            attempts=[],
            open_attempt=None,
            questions=[],
            counts=attempt_counts(lesson, 0),
            blocked_reason=PREVIEW_ATTEMPT_NOTE,
        )
    # The contact's attempts and counts as the portal shows them, including
    # a retake after a course version changed the lesson.
    state = assessment_state(learner.enrollment, lesson)
    return replace(
        state, open_attempt=None, questions=[], blocked_reason=PREVIEW_ATTEMPT_NOTE
    )


def preview_session(learner: PreviewLearner, lesson: Lesson) -> SessionTime | None:
    """Return a live session's time in the contact's zone, else the site's."""
    if learner.contact is not None:
        return session_time(lesson, learner.contact)
    if lesson.starts_at is None:
        return None
    zone_name = timezone.get_default_timezone_name()
    starts_at = timezone.localtime(lesson.starts_at, timezone.get_default_timezone())
    ends_at = None
    if lesson.duration_minutes:
        ends_at = starts_at + timedelta(minutes=lesson.duration_minutes)
    return SessionTime(starts_at=starts_at, ends_at=ends_at, zone_name=zone_name)
