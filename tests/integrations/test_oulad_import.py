"""The OULAD importer: course structure, enrollments, progress and bad rows."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest

from courses.models import (
    Course,
    CourseVersion,
    Enrollment,
    Lesson,
    LessonProgress,
    Module,
)
from integrations import bulk
from integrations.services import ImportDataError, import_oulad
from tests.factories import make_account, make_contact

pytestmark = pytest.mark.django_db

AAA_START = date(2023, 10, 1)  # presentation J of 2013, shifted ten years
BBB_START = date(2023, 2, 1)  # presentation B of 2013, shifted ten years


def midnight(day: date, plus_days: int = 0) -> datetime:
    return datetime.combine(
        day + timedelta(days=plus_days), datetime.min.time(), tzinfo=UTC
    )


@pytest.fixture
def contacts():
    """Three contacts; learners 10 20 30 40 50 60 80 get contacts 1 2 3 1 2 3 1."""
    account = make_account()
    return [make_contact(account, external_id=f"C-{number}") for number in (1, 2, 3)]


def issue_lines(issues, file):
    return {issue.line: issue.reason for issue in issues if issue.file == file}


def enrollment_of(contact, course_id):
    return Enrollment.objects.get(contact=contact, course__external_id=course_id)


def test_course_per_module_presentation(oulad_folder, contacts):
    import_oulad(oulad_folder)

    aaa = Course.objects.get(external_id="AAA-2013J")
    assert aaa.slug == "oulad-aaa-2013j"
    assert aaa.title == "AAA 2013J"
    assert aaa.starts_on == AAA_START
    assert aaa.length_days == 268
    assert Course.objects.get(external_id="BBB-2013B").starts_on == BBB_START


def test_modules_end_at_assessment_dates(oulad_folder, contacts):
    import_oulad(oulad_folder)

    modules = Module.objects.filter(course__external_id="AAA-2013J").order_by("order")
    # TMA on day 19, TMA and CMA on day 54, and an exam without a date,
    # which ends the course on its last day.
    assert [(module.starts_day, module.ends_day) for module in modules] == [
        (0, 19),
        (20, 54),
        (55, 268),
    ]
    assert modules[0].title == "Course materials, to day 19"
    assert modules[1].title == "Days 20 to 54"


def test_lessons_placed_and_ordered(oulad_folder, contacts):
    import_oulad(oulad_folder)

    def lessons(order):
        return list(
            Lesson.objects.filter(
                module__course__external_id="AAA-2013J", module__order=order
            )
            .order_by("order")
            .values_list("title", "kind", "weight")
        )

    # Materials without a week come first; assessments end their module.
    assert lessons(1) == [
        ("Resource 1001", "text", None),
        ("Quiz 1004", "quiz", None),
        ("TMA 1", "quiz", 10),
    ]
    assert lessons(2) == [
        ("Forum 1002", "discussion", None),
        ("TMA 2", "quiz", 20),
        # A weight of 12.5 percent is rounded half up.
        ("CMA", "quiz", 13),
    ]
    # Week 40 is past the course's end, so it falls in the last module.
    assert lessons(3) == [("Link 1003", "link", None), ("Exam", "exam", 100)]


def test_enrollment_status_and_dates(oulad_folder, contacts):
    import_oulad(oulad_folder)
    first, second, third = contacts

    passed = enrollment_of(first, "AAA-2013J")
    assert passed.status == "completed"
    assert passed.source == "import"
    assert passed.enrolled_at == midnight(AAA_START, -50)
    assert passed.completed_at == midnight(AAA_START, 268)
    assert passed.furthest_lesson.external_id == "oulad-assessment-4"

    withdrawn = enrollment_of(second, "AAA-2013J")
    assert withdrawn.status == "withdrawn"
    assert withdrawn.ended_at == midnight(AAA_START, 30)
    assert withdrawn.started_at == midnight(AAA_START)
    # Day 30 is in module 2, whose last lesson is the CMA.
    assert withdrawn.furthest_lesson.external_id == "oulad-assessment-3"

    early = enrollment_of(third, "AAA-2013J")
    assert early.ended_at == midnight(AAA_START, -5)
    assert early.started_at is None
    assert early.furthest_lesson.external_id == "oulad-assessment-1"

    failed = enrollment_of(second, "BBB-2013B")
    assert failed.status == "failed"
    assert failed.ended_at == midnight(BBB_START, 240)
    assert failed.furthest_lesson.external_id == "oulad-assessment-6"


def test_shared_contact_keeps_lower_learner(oulad_folder, contacts):
    report = import_oulad(oulad_folder)

    errors = issue_lines(report.errors, "studentRegistration_2013.csv")
    assert set(errors) == {5, 6, 9}
    assert "learner 40 maps to the same contact as learner 10" in errors[5]
    assert errors[6] == "date_registration is blank"
    assert "ZZZ 2013J is not in courses_2013.csv" in errors[9]
    assert enrollment_of(contacts[0], "AAA-2013J").origin == "oulad:AAA-2013J"
    assert Enrollment.objects.count() == 5


def test_learner_info_without_registration(oulad_folder, contacts):
    report = import_oulad(oulad_folder)

    errors = issue_lines(report.errors, "studentInfo_2013.csv")
    assert set(errors) == {7}
    assert "no row for learner 70 in AAA 2013J" in errors[7]


def test_results_become_completed_progress(oulad_folder, contacts):
    report = import_oulad(oulad_folder)

    enrollment = enrollment_of(contacts[0], "AAA-2013J")
    first = LessonProgress.objects.get(
        enrollment=enrollment, lesson__external_id="oulad-assessment-1"
    )
    assert first.score == Decimal(78)
    assert first.completed_at == midnight(AAA_START, 18)
    unmarked = LessonProgress.objects.get(
        enrollment=enrollment, lesson__external_id="oulad-assessment-2"
    )
    assert unmarked.score is None
    errors = issue_lines(report.errors, "studentAssessment_subset_2013.csv")
    assert set(errors) == {4, 5, 6}
    assert "learner 40 has no imported enrollment" in errors[4]
    assert "id_assessment 99" in errors[5]
    assert "duplicate result" in errors[6]


def test_clicks_count_as_lesson_views(oulad_folder, contacts):
    report = import_oulad(oulad_folder)

    viewed = LessonProgress.objects.get(
        enrollment=enrollment_of(contacts[0], "AAA-2013J"),
        lesson__external_id="oulad-site-1001",
    )
    assert viewed.views == 2 + 3
    assert viewed.started_at == midnight(AAA_START, -3)
    assert viewed.completed_at is None
    errors = issue_lines(report.errors, "studentVle_prefix_AAA_2013J.csv")
    assert set(errors) == {5, 6}


def test_import_records_version_one(oulad_folder, contacts):
    import_oulad(oulad_folder)

    courses = Course.objects.filter(external_id__in=["AAA-2013J", "BBB-2013B"])
    assert len(courses) == 2
    for course in courses:
        first = CourseVersion.objects.get(course=course, number=1)
        lessons = Lesson.objects.filter(module__course=course)
        assert first.lesson_count == lessons.count()
        assert first.snapshot is not None
        assert {lesson["id"] for lesson in first.snapshot["lessons"]} == set(
            lessons.values_list("pk", flat=True)
        )


def test_reimport_adds_no_rows(oulad_folder, contacts):
    import_oulad(oulad_folder)
    models = (Course, Module, Lesson, Enrollment, LessonProgress)
    before = {
        model: set(model.objects.values_list("pk", flat=True)) for model in models
    }

    import_oulad(oulad_folder)

    for model in models:
        assert set(model.objects.values_list("pk", flat=True)) == before[model], model


def test_no_contacts_asks_for_ravenstack(oulad_folder):
    with pytest.raises(ImportDataError, match="Import RavenStack first"):
        import_oulad(oulad_folder)

    assert not Course.objects.exists()


def test_crash_in_enrollments_writes_none(oulad_folder, contacts, monkeypatch):
    monkeypatch.setattr(bulk, "BATCH_SIZE", 2)
    real_bulk_create = Enrollment._default_manager.bulk_create
    batches = []

    def fail_on_second_batch(objs, **kwargs):
        batches.append(len(objs))
        if len(batches) == 2:
            raise RuntimeError("database went away")
        return real_bulk_create(objs, **kwargs)

    monkeypatch.setattr(
        Enrollment._default_manager, "bulk_create", fail_on_second_batch
    )

    with pytest.raises(RuntimeError):
        import_oulad(oulad_folder)

    assert not Enrollment.objects.exists()
    assert Lesson.objects.count() == 4 + 2 + 4


def test_full_results_file_name_accepted(oulad_folder, contacts):
    subset = oulad_folder / "studentAssessment_subset_2013.csv"
    subset.rename(oulad_folder / "studentAssessment_2013.csv")

    report = import_oulad(oulad_folder)

    assert report.files["studentAssessment_2013.csv"].imported == 2
    assert LessonProgress.objects.filter(score=Decimal(78)).exists()


def test_missing_results_file_names_both(oulad_folder, contacts):
    (oulad_folder / "studentAssessment_subset_2013.csv").unlink()

    with pytest.raises(ImportDataError, match=r"studentAssessment_2013\.csv nor"):
        import_oulad(oulad_folder)

    assert not Course.objects.exists()
