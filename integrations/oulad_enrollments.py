"""OULAD registrations and final results as enrollments of linked contacts."""

from dataclasses import dataclass

from django.db import transaction

from courses.models import Course, Enrollment, EnrollmentSource, EnrollmentStatus
from integrations.bulk import progress_bar, upsert
from integrations.csvfiles import CsvRow, Fields, RowError
from integrations.oulad_courses import (
    CourseKey,
    CoursePlan,
    find_course,
    lessons_by_external_id,
)
from integrations.report import ImportReport

LEARNERS = "studentInfo_2013.csv"
REGISTRATIONS = "studentRegistration_2013.csv"

ENROLLMENT_COLUMNS = {
    LEARNERS: ("code_module", "code_presentation", "id_student", "final_result"),
    REGISTRATIONS: (
        "code_module", "code_presentation", "id_student", "date_registration",
        "date_unregistration",
    ),
}  # fmt: skip

FINAL_RESULTS = {
    "Pass": EnrollmentStatus.COMPLETED,
    "Distinction": EnrollmentStatus.COMPLETED,
    "Fail": EnrollmentStatus.FAILED,
    "Withdrawn": EnrollmentStatus.WITHDRAWN,
}

# A (course external id, id_student) pair.
LearnerKey = tuple[str, int]


@dataclass
class Registration:
    line: int
    course: CoursePlan
    id_student: int
    registered_day: int
    unregistered_day: int | None
    final_result: str = ""


def link_learners(rows: list[CsvRow], contacts: list[int]) -> dict[int, int]:
    """Map each id_student to a contact primary key.

    Learners sorted by id_student ascending take contacts (sorted by
    external_id) in turn, wrapping around when there are more learners than
    contacts. Every id_student in the registrations file counts, even on a
    row that is skipped, so one bad row does not shift everyone after it.
    """
    learners = sorted(
        {
            int(row.values["id_student"])
            for row in rows
            if is_int(row.values["id_student"])
        }
    )
    return {
        learner: contacts[index % len(contacts)]
        for index, learner in enumerate(learners)
    }


def is_int(value: str) -> bool:
    try:
        int(value)
    except ValueError:
        return False
    return True


def parse_final_results(
    rows: list[CsvRow], courses: dict[CourseKey, CoursePlan], report: ImportReport
) -> dict[LearnerKey, tuple[int, str]]:
    """Return each learner's final_result and line, by course and id_student."""
    results: dict[LearnerKey, tuple[int, str]] = {}
    for row in rows:
        fields = Fields(row.values)
        try:
            course = find_course(fields, courses)
            key = (course.external_id, fields.integer("id_student"))
            result = fields.choice("final_result", FINAL_RESULTS)
        except RowError as exc:
            report.skip(LEARNERS, row.line, str(exc))
            continue
        if key in results:
            report.skip(
                LEARNERS,
                row.line,
                f"duplicate learner {key[1]} in {course.name}; "
                f"line {results[key][0]} is imported instead",
            )
            continue
        results[key] = (row.line, result)
    return results


def parse_registration(
    fields: Fields, courses: dict[CourseKey, CoursePlan]
) -> Registration:
    return Registration(
        line=0,
        course=find_course(fields, courses),
        id_student=fields.integer("id_student"),
        registered_day=fields.integer("date_registration"),
        unregistered_day=fields.optional_integer("date_unregistration"),
    )


def parse_registrations(
    tables: dict[str, list[CsvRow]],
    courses: dict[CourseKey, CoursePlan],
    report: ImportReport,
) -> list[Registration]:
    """Pair each registration with the learner's final_result from studentInfo.

    Returns the registrations sorted by course and id_student.
    """
    results = parse_final_results(tables[LEARNERS], courses, report)
    registrations: dict[LearnerKey, Registration] = {}
    for row in tables[REGISTRATIONS]:
        try:
            registration = parse_registration(Fields(row.values), courses)
        except RowError as exc:
            report.skip(REGISTRATIONS, row.line, str(exc))
            continue
        registration.line = row.line
        key = (registration.course.external_id, registration.id_student)
        name = f"learner {registration.id_student} in {registration.course.name}"
        if key in registrations:
            first = registrations[key].line
            report.skip(
                REGISTRATIONS,
                row.line,
                f"duplicate {name}; line {first} is imported instead",
            )
            continue
        if key not in results:
            report.skip(
                REGISTRATIONS, row.line, f"{LEARNERS} has no final_result for {name}"
            )
            continue
        registration.final_result = results[key][1]
        registrations[key] = registration
    report_unregistered(tables[REGISTRATIONS], results, report)
    return sorted(
        registrations.values(),
        key=lambda item: (item.course.external_id, item.id_student),
    )


def report_unregistered(
    rows: list[CsvRow], results: dict[LearnerKey, tuple[int, str]], report: ImportReport
) -> None:
    """Skip studentInfo rows that no registration row names, valid or not."""
    named = {
        (
            f"{row.values['code_module']}-{row.values['code_presentation']}",
            int(row.values["id_student"]),
        )
        for row in rows
        if is_int(row.values["id_student"])
    }
    for key, (line, _) in results.items():
        if key not in named:
            report.skip(
                LEARNERS,
                line,
                f"{REGISTRATIONS} has no row for learner {key[1]} in "
                f"{key[0].replace('-', ' ')}",
            )


def write_enrollments(
    registrations: list[Registration],
    contact_of: dict[int, int],
    report: ImportReport,
    progress: bool,
) -> dict[LearnerKey, int]:
    """Write one enrollment per registration; return enrollment keys by learner.

    When two learners share a contact in one course, the learner with the
    lower id_student keeps the enrollment and the other row is skipped.
    """
    course_pks = dict(Course.objects.values_list("external_id", "pk"))
    lesson_pks = lessons_by_external_id("oulad-")
    # Enrollments that a person or a trigger made are not overwritten.
    kept_elsewhere = set(
        Enrollment.objects.filter(course_id__in=course_pks.values())
        .exclude(source=EnrollmentSource.IMPORT)
        .values_list("contact_id", "course_id")
    )
    taken: dict[tuple[int, int], int] = {}
    enrollments = []
    learners: dict[tuple[int, int], LearnerKey] = {}
    for registration in registrations:
        course_pk = course_pks[registration.course.external_id]
        contact_pk = contact_of[registration.id_student]
        pair = (contact_pk, course_pk)
        reason = sharing_reason(registration, pair, taken, kept_elsewhere)
        if reason:
            report.skip(REGISTRATIONS, registration.line, reason)
            continue
        taken[pair] = registration.id_student
        learners[pair] = (registration.course.external_id, registration.id_student)
        enrollments.append(
            build_enrollment(registration, contact_pk, course_pk, lesson_pks, report)
        )

    with (
        transaction.atomic(),
        progress_bar(REGISTRATIONS, len(enrollments), progress) as bar,
    ):
        upsert(
            Enrollment,
            enrollments,
            unique_fields=["contact", "course"],
            update_fields=[
                "source", "origin", "status", "enrolled_at", "started_at",
                "completed_at", "ended_at", "furthest_lesson", "updated_at",
            ],
            bar=bar,
        )  # fmt: skip
    report.finish_file(REGISTRATIONS)
    report.finish_file(LEARNERS)
    saved = Enrollment.objects.filter(course_id__in=course_pks.values()).values_list(
        "contact_id", "course_id", "pk"
    )
    return {
        learners[(contact, course)]: pk
        for contact, course, pk in saved
        if (contact, course) in learners
    }


def sharing_reason(
    registration: Registration,
    pair: tuple[int, int],
    taken: dict[tuple[int, int], int],
    kept_elsewhere: set[tuple[int, int]],
) -> str:
    """Return why a registration cannot become an enrollment, or "" when it can."""
    course = registration.course.name
    if pair in taken:
        return (
            f"learner {registration.id_student} maps to the same contact as learner "
            f"{taken[pair]}, who is enrolled in {course}; there are more learners "
            "than contacts and a contact is enrolled in a course once"
        )
    if pair in kept_elsewhere:
        return (
            f"the contact of learner {registration.id_student} is already enrolled in "
            f"{course} by hand or by a trigger, and that enrollment is kept"
        )
    return ""


def build_enrollment(
    registration: Registration,
    contact_pk: int,
    course_pk: int,
    lesson_pks: dict[str, int],
    report: ImportReport,
) -> Enrollment:
    """Describe the enrollment; dates are days from the course start.

    Passed learners complete on the course's last day and failed ones end
    then, unless they unregistered earlier. A withdrawn learner ends on the
    unregistration day and reached the last lesson of the module that
    contains that day. Everyone else reached the course's last lesson.
    """
    course = registration.course
    status = FINAL_RESULTS[registration.final_result]
    unregistered = registration.unregistered_day
    enrollment = Enrollment(
        contact_id=contact_pk,
        course_id=course_pk,
        source=EnrollmentSource.IMPORT,
        origin=f"oulad:{course.external_id}",
        status=status,
        enrolled_at=course.at_day(registration.registered_day),
    )
    # A learner still registered on the first day started the course then.
    if unregistered is None or unregistered >= 0:
        enrollment.started_at = course.at_day(max(registration.registered_day, 0))
    last_module = len(course.modules) - 1
    if status == EnrollmentStatus.COMPLETED:
        enrollment.completed_at = course.at_day(course.length_days)
    elif status == EnrollmentStatus.FAILED:
        enrollment.ended_at = course.at_day(
            course.length_days if unregistered is None else unregistered
        )
    elif unregistered is not None:
        enrollment.ended_at = course.at_day(unregistered)
        last_module = course.module_index(unregistered)
    else:
        report.warn(
            REGISTRATIONS,
            registration.line,
            f"learner {registration.id_student} withdrew from {course.name} but "
            "date_unregistration is blank; ended_at and the furthest lesson are "
            "left blank",
        )
        return enrollment
    lesson = course.last_lesson(last_module)
    enrollment.furthest_lesson_id = (
        lesson_pks.get(lesson.external_id) if lesson else None
    )
    return enrollment
