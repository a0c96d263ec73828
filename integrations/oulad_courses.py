"""Turn OULAD module-presentations, assessments and materials into courses.

Each module-presentation (such as AAA 2013J) becomes a course. Its
assessments cut it into modules: module k runs from the day after the
previous assessment date to its own date, and the final exam ends the last
module. Materials go into the module whose days contain their planned start
week; each assessment is the last lesson of its module.
"""

from collections import Counter
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal

from django.db import transaction

from courses.models import Course, Lesson, LessonKind, Module
from integrations.bulk import progress_bar, upsert
from integrations.csvfiles import CsvRow, Fields, RowError, days_after
from integrations.report import ImportReport

COURSES = "courses_2013.csv"
ASSESSMENTS = "assessments_2013.csv"
MATERIALS = "vle_2013.csv"

COURSE_COLUMNS = {
    COURSES: ("code_module", "code_presentation", "module_presentation_length"),
    ASSESSMENTS: (
        "code_module", "code_presentation", "id_assessment", "assessment_type",
        "date", "weight",
    ),
    MATERIALS: (
        "id_site", "code_module", "code_presentation", "activity_type", "week_from",
    ),
}  # fmt: skip

# OULAD presentations ran in 2013-2014; moving them ten years later makes
# them overlap the 2023-2024 customer data they are linked to.
DATE_SHIFT_YEARS = 10

# OULAD's presentation codes: B starts in February, J in October.
PRESENTATION_START_MONTH = {"B": 2, "J": 10}

ASSESSMENT_KINDS = {
    "TMA": LessonKind.QUIZ,
    "CMA": LessonKind.QUIZ,
    "Exam": LessonKind.EXAM,
}

# The lesson kind and title word for each VLE activity type.
MATERIAL_KINDS = {
    "resource": (LessonKind.TEXT, "Resource"),
    "oucontent": (LessonKind.TEXT, "Content"),
    "subpage": (LessonKind.TEXT, "Subpage"),
    "sharedsubpage": (LessonKind.TEXT, "Shared subpage"),
    "page": (LessonKind.TEXT, "Page"),
    "homepage": (LessonKind.TEXT, "Home page"),
    "glossary": (LessonKind.TEXT, "Glossary"),
    "dualpane": (LessonKind.TEXT, "Dual pane"),
    "htmlactivity": (LessonKind.TEXT, "HTML activity"),
    "dataplus": (LessonKind.TEXT, "Data"),
    "folder": (LessonKind.TEXT, "Folder"),
    "repeatactivity": (LessonKind.TEXT, "Repeated activity"),
    "url": (LessonKind.LINK, "Link"),
    "quiz": (LessonKind.QUIZ, "Quiz"),
    "externalquiz": (LessonKind.QUIZ, "External quiz"),
    "questionnaire": (LessonKind.QUIZ, "Questionnaire"),
    "forumng": (LessonKind.DISCUSSION, "Forum"),
    "ouwiki": (LessonKind.DISCUSSION, "Wiki"),
    "oucollaborate": (LessonKind.LIVE_SESSION, "Live session"),
    "ouelluminate": (LessonKind.LIVE_SESSION, "Live session"),
}


@dataclass
class LessonPlan:
    external_id: str
    title: str
    kind: str
    # Orders lessons within a module: materials by week then id, assessments last.
    sort_key: tuple[int, int, int]
    weight: int | None = None


@dataclass
class ModulePlan:
    order: int
    starts_day: int
    ends_day: int
    lessons: list[LessonPlan] = field(default_factory=list)

    @property
    def title(self) -> str:
        if self.order == 1:
            return f"Course materials, to day {self.ends_day}"
        return f"Days {self.starts_day} to {self.ends_day}"

    def ordered_lessons(self) -> list[LessonPlan]:
        return sorted(self.lessons, key=lambda lesson: lesson.sort_key)


@dataclass
class CoursePlan:
    line: int
    code_module: str
    code_presentation: str
    length_days: int
    modules: list[ModulePlan] = field(default_factory=list)
    last_lessons: dict[int, LessonPlan | None] = field(default_factory=dict)

    @property
    def external_id(self) -> str:
        return f"{self.code_module}-{self.code_presentation}"

    @property
    def name(self) -> str:
        return f"{self.code_module} {self.code_presentation}"

    @property
    def starts_on(self) -> date:
        year = int(self.code_presentation[:4]) + DATE_SHIFT_YEARS
        return date(year, PRESENTATION_START_MONTH[self.code_presentation[4]], 1)

    def at_day(self, day: int) -> datetime:
        """Return midnight UTC of a day counted from the course start."""
        return days_after(self.starts_on, day)

    def module_index(self, day: int) -> int:
        """Return the module whose days contain `day`; earlier days fall in the
        first module and later days in the last."""
        for index, module in enumerate(self.modules):
            if day <= module.ends_day:
                return index
        return len(self.modules) - 1

    def last_lesson(self, up_to_module: int) -> LessonPlan | None:
        """Return the last lesson of a module, or of the nearest earlier one.

        Call it only once every lesson is placed: the result is cached per
        module, because every enrollment needs one.
        """
        if up_to_module not in self.last_lessons:
            self.last_lessons[up_to_module] = None
            for module in reversed(self.modules[: up_to_module + 1]):
                if module.lessons:
                    self.last_lessons[up_to_module] = max(
                        module.lessons, key=lambda lesson: lesson.sort_key
                    )
                    break
        return self.last_lessons[up_to_module]


@dataclass
class AssessmentPlan:
    line: int
    course: CoursePlan
    id_assessment: str
    kind: str
    day: int
    weight: Decimal
    lesson: LessonPlan | None = None


CourseKey = tuple[str, str]


def course_key(fields: Fields) -> CourseKey:
    return (fields.text("code_module"), fields.text("code_presentation"))


def find_course(fields: Fields, courses: dict[CourseKey, CoursePlan]) -> CoursePlan:
    key = course_key(fields)
    if key not in courses:
        raise RowError(
            f"module-presentation {key[0]} {key[1]} is not in {COURSES} "
            "or its row was skipped"
        )
    return courses[key]


def parse_course(line: int, fields: Fields) -> CoursePlan:
    code_module, code_presentation = course_key(fields)
    if not (
        len(code_presentation) == 5
        and code_presentation[:4].isdigit()
        and code_presentation[4] in PRESENTATION_START_MONTH
    ):
        raise RowError(
            f"code_presentation {code_presentation!r} is not a year followed by B or J"
        )
    length = fields.integer("module_presentation_length", minimum=1)
    return CoursePlan(line, code_module, code_presentation, length)


def parse_courses(
    rows: list[CsvRow], report: ImportReport
) -> dict[CourseKey, CoursePlan]:
    courses: dict[CourseKey, CoursePlan] = {}
    for row in rows:
        try:
            course = parse_course(row.line, Fields(row.values))
        except RowError as exc:
            report.skip(COURSES, row.line, str(exc))
            continue
        key = (course.code_module, course.code_presentation)
        if key in courses:
            report.skip(
                COURSES,
                row.line,
                f"duplicate module-presentation {course.name}; "
                f"line {courses[key].line} is imported instead",
            )
            continue
        courses[key] = course
    return courses


def parse_assessment(
    line: int, fields: Fields, courses: dict[CourseKey, CoursePlan]
) -> AssessmentPlan:
    course = find_course(fields, courses)
    kind = fields.choice("assessment_type", ASSESSMENT_KINDS)
    day = fields.optional_integer("date")
    if day is None:
        if kind != "Exam":
            raise RowError("date is blank; only an Exam may leave it blank")
        # An exam without a date is taken to be on the course's last day.
        day = course.length_days
    weight = fields.decimal("weight", minimum=0)
    if weight > 100:
        raise RowError(f"weight {weight} is above 100 percent")
    return AssessmentPlan(
        line, course, fields.text("id_assessment", max_length=40), kind, day, weight
    )


def parse_assessments(
    rows: list[CsvRow], courses: dict[CourseKey, CoursePlan], report: ImportReport
) -> dict[str, AssessmentPlan]:
    assessments: dict[str, AssessmentPlan] = {}
    for row in rows:
        try:
            assessment = parse_assessment(row.line, Fields(row.values), courses)
        except RowError as exc:
            report.skip(ASSESSMENTS, row.line, str(exc))
            continue
        if assessment.id_assessment in assessments:
            first = assessments[assessment.id_assessment].line
            report.skip(
                ASSESSMENTS,
                row.line,
                f"duplicate id_assessment {assessment.id_assessment}; "
                f"line {first} is imported instead",
            )
            continue
        assessments[assessment.id_assessment] = assessment
    return assessments


def plan_modules(
    courses: dict[CourseKey, CoursePlan], assessments: dict[str, AssessmentPlan]
) -> None:
    """Cut each course into modules at its assessment dates; place the assessments."""
    by_course: dict[str, list[AssessmentPlan]] = {}
    for assessment in assessments.values():
        by_course.setdefault(assessment.course.external_id, []).append(assessment)
    for course in courses.values():
        course_assessments = sorted(
            by_course.get(course.external_id, []),
            key=lambda item: (item.day, int_or_zero(item.id_assessment)),
        )
        # Assessments on the same day end the same module.
        end_days = sorted({item.day for item in course_assessments}) or [
            course.length_days
        ]
        course.modules = [
            ModulePlan(
                order=index + 1,
                starts_day=0 if index == 0 else end_days[index - 1] + 1,
                ends_day=end_day,
            )
            for index, end_day in enumerate(end_days)
        ]
        place_assessments(course, course_assessments)


def place_assessments(course: CoursePlan, assessments: list[AssessmentPlan]) -> None:
    """Make each assessment the last lesson of its module, numbered per type."""
    totals = Counter(assessment.kind for assessment in assessments)
    numbers: Counter[str] = Counter()
    for position, assessment in enumerate(assessments):
        numbers[assessment.kind] += 1
        title = assessment.kind
        if totals[assessment.kind] > 1:
            title = f"{assessment.kind} {numbers[assessment.kind]}"
        module = course.modules[course.module_index(assessment.day)]
        assessment.lesson = LessonPlan(
            external_id=f"oulad-assessment-{assessment.id_assessment}",
            title=title,
            kind=ASSESSMENT_KINDS[assessment.kind],
            sort_key=(1, assessment.day, position),
            weight=whole_percent(assessment.weight),
        )
        module.lessons.append(assessment.lesson)


def whole_percent(weight: Decimal) -> int:
    # NOTE: Lesson.weight stores whole percent, so OULAD weights such as 12.5
    # are rounded half up and a course's weights may not add up to 100.
    return int(weight.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def int_or_zero(value: str) -> int:
    return int(value) if value.isdigit() else 0


def parse_material(
    fields: Fields, courses: dict[CourseKey, CoursePlan]
) -> tuple[CoursePlan, LessonPlan]:
    course = find_course(fields, courses)
    id_site = fields.text("id_site", max_length=40)
    activity_type = fields.text("activity_type")
    kind, word = MATERIAL_KINDS.get(
        activity_type, (LessonKind.TEXT, activity_type.title())
    )
    week_from = fields.optional_integer("week_from")
    lesson = LessonPlan(
        external_id=f"oulad-site-{id_site}",
        title=f"{word} {id_site}",
        kind=kind,
        # Materials without a planned week come first, as general course material.
        sort_key=(0, -1 if week_from is None else week_from, int_or_zero(id_site)),
    )
    return course, lesson


def place_materials(
    rows: list[CsvRow], courses: dict[CourseKey, CoursePlan], report: ImportReport
) -> dict[str, tuple[CoursePlan, LessonPlan]]:
    """Put each material in the module that contains its first planned week."""
    materials: dict[str, tuple[CoursePlan, LessonPlan]] = {}
    lines: dict[str, int] = {}
    for row in rows:
        try:
            course, lesson = parse_material(Fields(row.values), courses)
        except RowError as exc:
            report.skip(MATERIALS, row.line, str(exc))
            continue
        id_site = row.values["id_site"]
        if id_site in materials:
            report.skip(
                MATERIALS,
                row.line,
                f"duplicate id_site {id_site}; "
                f"line {lines[id_site]} is imported instead",
            )
            continue
        week_from = lesson.sort_key[1]
        index = 0 if week_from < 0 else course.module_index(week_from * 7)
        course.modules[index].lessons.append(lesson)
        materials[id_site] = (course, lesson)
        lines[id_site] = row.line
    return materials


def write_courses(
    courses: dict[CourseKey, CoursePlan], report: ImportReport, progress: bool
) -> None:
    rows = [
        Course(
            external_id=course.external_id,
            slug=f"oulad-{course.external_id.lower()}",
            title=course.name,
            summary=(
                f"Open University module {course.code_module}, presentation "
                f"{course.code_presentation}, from the Open University Learning "
                "Analytics Dataset (CC BY 4.0)."
            ),
            starts_on=course.starts_on,
            length_days=course.length_days,
        )
        for course in courses.values()
    ]
    with transaction.atomic(), progress_bar(COURSES, len(rows), progress) as bar:
        upsert(
            Course,
            rows,
            unique_fields=["external_id"],
            update_fields=[
                "slug",
                "title",
                "summary",
                "starts_on",
                "length_days",
                "updated_at",
            ],
            bar=bar,
        )
    report.finish_file(COURSES)


def write_modules(courses: dict[CourseKey, CoursePlan]) -> dict[tuple[str, int], int]:
    """Create or update each course's modules, matched by their order.

    Returns module primary keys by (course external id, order).
    """
    course_pks = dict(
        Course.objects.filter(
            external_id__in=[course.external_id for course in courses.values()]
        ).values_list("external_id", "pk")
    )
    existing = {
        (module.course_id, module.order): module
        for module in Module.objects.filter(course_id__in=course_pks.values())
    }
    # NOTE: a re-import that yields fewer modules leaves the extra ones in place.
    to_create, to_update = [], []
    for course in courses.values():
        for plan in course.modules:
            module = existing.get((course_pks[course.external_id], plan.order))
            if module is None:
                module = Module(
                    course_id=course_pks[course.external_id], order=plan.order
                )
                to_create.append(module)
            else:
                to_update.append(module)
            module.title = plan.title
            module.starts_day = plan.starts_day
            module.ends_day = plan.ends_day
    Module.objects.bulk_create(to_create)
    Module.objects.bulk_update(to_update, ["title", "starts_day", "ends_day"])
    return module_pks(courses)


def module_pks(courses: dict[CourseKey, CoursePlan]) -> dict[tuple[str, int], int]:
    """Return module primary keys by (course external id, order)."""
    course_ids = {course.external_id for course in courses.values()}
    rows = Module.objects.filter(course__external_id__in=course_ids).values_list(
        "course__external_id", "order", "pk"
    )
    return {(str(external_id), order): pk for external_id, order, pk in rows}


def lesson_rows(
    courses: dict[CourseKey, CoursePlan],
    modules: dict[tuple[str, int], int],
    external_ids: set[str],
) -> list[Lesson]:
    """Describe the planned lessons whose external ids are in `external_ids`."""
    rows = []
    for course in courses.values():
        for module in course.modules:
            for order, plan in enumerate(module.ordered_lessons(), start=1):
                if plan.external_id not in external_ids:
                    continue
                rows.append(
                    Lesson(
                        module_id=modules[(course.external_id, module.order)],
                        external_id=plan.external_id,
                        title=plan.title,
                        kind=plan.kind,
                        order=order,
                        weight=plan.weight,
                    )
                )
    return rows


LESSON_FIELDS = ["module", "title", "kind", "order", "weight"]


def write_assessments(
    courses: dict[CourseKey, CoursePlan],
    assessments: dict[str, AssessmentPlan],
    report: ImportReport,
    progress: bool,
) -> None:
    """Write the modules and the assessment lessons that end them."""
    external_ids = {
        item.lesson.external_id for item in assessments.values() if item.lesson
    }
    with transaction.atomic():
        rows = lesson_rows(courses, write_modules(courses), external_ids)
        with progress_bar(ASSESSMENTS, len(rows), progress) as bar:
            upsert(
                Lesson,
                rows,
                unique_fields=["external_id"],
                update_fields=LESSON_FIELDS,
                bar=bar,
            )
    report.finish_file(ASSESSMENTS)


def write_materials(
    courses: dict[CourseKey, CoursePlan],
    materials: dict[str, tuple[CoursePlan, LessonPlan]],
    report: ImportReport,
    progress: bool,
) -> None:
    external_ids = {lesson.external_id for _, lesson in materials.values()}
    rows = lesson_rows(courses, module_pks(courses), external_ids)
    with transaction.atomic(), progress_bar(MATERIALS, len(rows), progress) as bar:
        upsert(
            Lesson,
            rows,
            unique_fields=["external_id"],
            update_fields=LESSON_FIELDS,
            bar=bar,
        )
    report.finish_file(MATERIALS)


def lessons_by_external_id(prefix: str) -> dict[str, int]:
    """Return lesson primary keys by external id, for ids that start with `prefix`."""
    rows = Lesson.objects.filter(external_id__startswith=prefix).values_list(
        "external_id", "pk"
    )
    return {str(external_id): pk for external_id, pk in rows}
