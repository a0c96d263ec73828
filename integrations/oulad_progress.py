"""OULAD assessment results and clicks as lesson progress of imported enrollments."""

from collections import defaultdict

from django.db import transaction

from courses.models import Lesson, LessonProgress
from integrations.bulk import progress_bar, upsert
from integrations.csvfiles import CsvRow, Fields, RowError
from integrations.oulad_courses import (
    ASSESSMENTS,
    MATERIALS,
    AssessmentPlan,
    CourseKey,
    CoursePlan,
    find_course,
    lessons_by_external_id,
)
from integrations.oulad_enrollments import REGISTRATIONS, LearnerKey
from integrations.report import ImportReport

# The full dataset's results filtered to 2013, or the subset the tests use.
RESULTS_FILES = ("studentAssessment_2013.csv", "studentAssessment_subset_2013.csv")
RESULT_COLUMNS = ("id_assessment", "id_student", "date_submitted", "is_banked", "score")

# Click logs are optional and may be split into several files.
CLICKS_PATTERN = "studentVle*.csv"
CLICK_COLUMNS = (
    "code_module", "code_presentation", "id_student", "id_site", "date", "sum_click",
)  # fmt: skip


def write_results(
    file: str,
    rows: list[CsvRow],
    assessments: dict[str, AssessmentPlan],
    enrollments: dict[LearnerKey, int],
    report: ImportReport,
    progress: bool,
) -> None:
    """Write each assessment result as completed progress on the assessment lesson.

    A blank score is a submission without a mark, imported with no score.
    """
    lesson_pks = lessons_by_external_id("oulad-assessment-")
    progress_rows: dict[tuple[int, int], LessonProgress] = {}
    lines: dict[tuple[int, int], int] = {}
    for row in rows:
        fields = Fields(row.values)
        try:
            assessment = known_assessment(fields, assessments)
            enrollment = enrolled(
                assessment.course, fields.integer("id_student"), enrollments
            )
            submitted_at = assessment.course.at_day(fields.integer("date_submitted"))
            fields.boolean("is_banked")
            score = (
                None
                if not fields.values["score"]
                else fields.decimal("score", minimum=0)
            )
        except RowError as exc:
            report.skip(file, row.line, str(exc))
            continue
        if score is not None and score > 100:
            report.skip(file, row.line, f"score {score} is above 100")
            continue
        assert assessment.lesson is not None
        key = (enrollment, lesson_pks[assessment.lesson.external_id])
        if key in progress_rows:
            report.skip(
                file,
                row.line,
                f"duplicate result of learner {fields.values['id_student']} for "
                f"assessment {assessment.id_assessment}; line {lines[key]} is "
                "imported instead",
            )
            continue
        lines[key] = row.line
        progress_rows[key] = LessonProgress(
            enrollment_id=key[0],
            lesson_id=key[1],
            started_at=submitted_at,
            completed_at=submitted_at,
            score=score,
        )
    values = list(progress_rows.values())
    with transaction.atomic(), progress_bar(file, len(values), progress) as bar:
        upsert(
            LessonProgress,
            values,
            unique_fields=["enrollment", "lesson"],
            update_fields=["started_at", "completed_at", "score", "updated_at"],
            bar=bar,
        )
    report.finish_file(file)


def known_assessment(
    fields: Fields, assessments: dict[str, AssessmentPlan]
) -> AssessmentPlan:
    id_assessment = fields.text("id_assessment")
    if id_assessment not in assessments:
        raise RowError(
            f"id_assessment {id_assessment} is not in {ASSESSMENTS} "
            "or its row was skipped"
        )
    return assessments[id_assessment]


def enrolled(
    course: CoursePlan, id_student: int, enrollments: dict[LearnerKey, int]
) -> int:
    key = (course.external_id, id_student)
    if key not in enrollments:
        raise RowError(
            f"learner {id_student} has no imported enrollment in {course.name}; "
            f"see the {REGISTRATIONS} errors"
        )
    return enrollments[key]


def write_clicks(
    file: str,
    rows: list[CsvRow],
    courses: dict[CourseKey, CoursePlan],
    enrollments: dict[LearnerKey, int],
    report: ImportReport,
    progress: bool,
) -> None:
    """Count a learner's clicks on a material as views of that lesson.

    Each (learner, material) pair becomes one progress row whose views are
    the summed clicks and whose start is the first day clicked. Time spent is
    not in the click log and stays 0.
    """
    lesson_pks = lessons_by_external_id("oulad-site-")
    lesson_course = dict(
        Lesson.objects.filter(external_id__startswith="oulad-site-").values_list(
            "external_id", "module__course__external_id"
        )
    )
    views: dict[tuple[int, int], int] = defaultdict(int)
    first_day: dict[tuple[int, int], tuple[int, CoursePlan]] = {}
    for row in rows:
        fields = Fields(row.values)
        try:
            course = find_course(fields, courses)
            enrollment = enrolled(course, fields.integer("id_student"), enrollments)
            lesson_id = f"oulad-site-{fields.text('id_site')}"
            if lesson_course.get(lesson_id) != course.external_id:
                raise RowError(
                    f"id_site {fields.values['id_site']} is not a material of "
                    f"{course.name} in {MATERIALS}"
                )
            day = fields.integer("date")
            clicks = fields.integer("sum_click", minimum=0)
        except RowError as exc:
            report.skip(file, row.line, str(exc))
            continue
        key = (enrollment, lesson_pks[lesson_id])
        views[key] += clicks
        if key not in first_day or day < first_day[key][0]:
            first_day[key] = (day, course)
    values = [
        LessonProgress(
            enrollment_id=enrollment,
            lesson_id=lesson,
            started_at=first_day[(enrollment, lesson)][1].at_day(
                first_day[(enrollment, lesson)][0]
            ),
            views=count,
        )
        for (enrollment, lesson), count in views.items()
    ]
    with transaction.atomic(), progress_bar(file, len(values), progress) as bar:
        upsert(
            LessonProgress,
            values,
            unique_fields=["enrollment", "lesson"],
            update_fields=["started_at", "views", "updated_at"],
            bar=bar,
        )
    report.finish_file(file)
    report.derived["lesson progress rows from clicks"] = report.derived.get(
        "lesson progress rows from clicks", 0
    ) + len(values)
