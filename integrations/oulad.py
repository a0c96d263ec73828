"""Import the OULAD 2013 presentations as courses, enrollments and lesson progress.

OULAD learners have no names or employers, so each is linked to an existing
contact: learners sorted by id_student, contacts sorted by external_id,
learner k gets contact k modulo the number of contacts. The contacts come
from the RavenStack import, which must therefore run first.
"""

import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

from courses.models import Course
from courses.versions import record_first_version
from customers.models import Contact
from integrations.csvfiles import CsvRow, DatasetFiles, read_csv, require_folder
from integrations.oulad_courses import (
    ASSESSMENTS,
    COURSE_COLUMNS,
    COURSES,
    MATERIALS,
    parse_assessments,
    parse_courses,
    place_materials,
    plan_modules,
    write_assessments,
    write_courses,
    write_materials,
)
from integrations.oulad_enrollments import (
    ENROLLMENT_COLUMNS,
    REGISTRATIONS,
    link_learners,
    parse_registrations,
    write_enrollments,
)
from integrations.oulad_progress import (
    CLICK_COLUMNS,
    CLICKS_PATTERN,
    RESULT_COLUMNS,
    RESULTS_FILES,
    write_clicks,
    write_results,
)
from integrations.report import ImportDataError, ImportReport

logger = logging.getLogger(__name__)

COLUMNS = {**COURSE_COLUMNS, **ENROLLMENT_COLUMNS}

WHAT_TO_DO = (
    "Pass the folder that holds the *_2013.csv files of the Open University Learning "
    "Analytics Dataset (see docs/data.md), or make a small sample with: "
    "python manage.py generate_sample FOLDER"
)


@dataclass
class OuladFiles(DatasetFiles):
    # The studentVle*.csv click logs by file name, which are optional.
    click_tables: dict[str, list[CsvRow]] = field(default_factory=dict)


def import_oulad(folder: Path, progress: bool = False) -> ImportReport:
    """Import courses, modules, lessons, enrollments and progress from OULAD files."""
    return write_oulad(read_oulad(folder), progress)


def read_oulad(folder: Path) -> OuladFiles:
    """Read every OULAD file; raise ImportDataError if one cannot be imported."""
    started = time.monotonic()
    folder = Path(folder)
    file_columns = check_folder(folder)
    report = ImportReport(source="OULAD", folder=folder)
    logger.info("OULAD import from %s started", folder)

    tables = {
        name: read_csv(folder / name, columns, report)
        for name, columns in file_columns.items()
    }
    click_tables = {
        path.name: read_csv(path, CLICK_COLUMNS, report)
        for path in sorted(folder.glob(CLICKS_PATTERN))
    }
    report.seconds = time.monotonic() - started
    return OuladFiles(report, tables, click_tables)


def write_oulad(files: OuladFiles, progress: bool = False) -> ImportReport:
    """Check the rows that read_oulad read and write the valid ones.

    Raises ImportDataError before writing when there are no contacts to
    enroll learners as.
    """
    started = time.monotonic()
    report = files.report
    tables = files.tables
    contacts = sorted(Contact.objects.values_list("external_id", "pk"))
    if not contacts:
        raise ImportDataError(
            "There are no contacts to enroll OULAD learners as. Import RavenStack "
            "first (python manage.py import_ravenstack FOLDER), or run both with "
            "python manage.py import_data FOLDER."
        )

    courses = parse_courses(tables[COURSES], report)
    assessments = parse_assessments(tables[ASSESSMENTS], courses, report)
    plan_modules(courses, assessments)
    materials = place_materials(tables[MATERIALS], courses, report)
    registrations = parse_registrations(tables, courses, report)
    contact_of = link_learners(tables[REGISTRATIONS], [pk for _, pk in contacts])

    write_courses(courses, report, progress)
    write_assessments(courses, assessments, report, progress)
    write_materials(courses, materials, report, progress)
    # Before the enrollments, so version 1 records the lessons as imported
    # and a later publication lists what a CSM changed since.
    for course in Course.objects.filter(
        external_id__in=[plan.external_id for plan in courses.values()]
    ):
        record_first_version(course)
    enrollments = write_enrollments(registrations, contact_of, report, progress)
    results = RESULTS_FILES[0] if RESULTS_FILES[0] in tables else RESULTS_FILES[1]
    write_results(results, tables[results], assessments, enrollments, report, progress)
    for file, rows in files.click_tables.items():
        write_clicks(file, rows, courses, enrollments, report, progress)

    report.seconds += time.monotonic() - started
    logger.info(
        "OULAD import from %s finished in %d ms with %d rows skipped",
        report.folder,
        report.seconds * 1000,
        len(report.errors),
    )
    return report


def check_folder(folder: Path) -> dict[str, tuple[str, ...]]:
    """Return the columns to read from each file; raise if a file is missing."""
    require_folder(folder, COLUMNS, WHAT_TO_DO)
    for name in RESULTS_FILES:
        if (folder / name).is_file():
            return {**COLUMNS, name: RESULT_COLUMNS}
    raise ImportDataError(
        f"Neither {folder / RESULTS_FILES[0]} nor {RESULTS_FILES[1]} found. "
        f"{WHAT_TO_DO}"
    )
