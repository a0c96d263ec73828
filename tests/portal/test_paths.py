"""Learning paths: joining opens the first courses, completions open the next."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from courses.models import Enrollment, LearningPath, PathCourse, PathEnrollment
from courses.paths import enroll_in_paths, open_path_courses
from courses.services import complete_lesson
from tests.factories import NOW, make_contact
from tests.portal.helpers import make_course

pytestmark = pytest.mark.django_db


def make_path(*steps):
    """Create a path of (course, prerequisite courses) steps, in order."""
    path = LearningPath.objects.create(slug=f"path-{len(steps)}", title="Path")
    for order, (course, prerequisites) in enumerate(steps, start=1):
        step = PathCourse.objects.create(path=path, course=course, order=order)
        step.prerequisites.set(prerequisites)
    return path


def courses_of(contact):
    return set(
        Enrollment.objects.filter(contact=contact).values_list("course_id", flat=True)
    )


def finish(contact, course, lessons, at):
    enrollment = Enrollment.objects.get(contact=contact, course=course)
    for lesson in lessons:
        complete_lesson(enrollment, lesson, at=at)


def test_joining_opens_courses_without_prerequisites():
    basics, _ = make_course(1)
    reports, _ = make_course(1)
    admin, _ = make_course(1)
    path = make_path((basics, []), (reports, [basics]), (admin, []))
    contact = make_contact()

    added = enroll_in_paths([(contact.pk, path.pk)], source="automatic", at=NOW)

    assert added == {(contact.pk, path.pk)}
    assert courses_of(contact) == {basics.pk, admin.pk}
    opened = Enrollment.objects.get(contact=contact, course=basics)
    assert opened.source == "automatic"
    assert opened.origin == f"path:{path.slug}"


def test_path_opens_next_course_then_completes():
    basics, basics_lessons = make_course(2)
    reports, reports_lessons = make_course(1)
    path = make_path((basics, []), (reports, [basics]))
    contact = make_contact()
    enroll_in_paths([(contact.pk, path.pk)], at=NOW)

    finish(contact, basics, basics_lessons[:1], NOW + timedelta(days=1))
    assert courses_of(contact) == {basics.pk}

    finish(contact, basics, basics_lessons[1:], NOW + timedelta(days=2))
    assert courses_of(contact) == {basics.pk, reports.pk}
    on_path = PathEnrollment.objects.get(contact=contact, path=path)
    assert on_path.completed_at is None

    finish(contact, reports, reports_lessons, NOW + timedelta(days=3))
    on_path.refresh_from_db()
    assert on_path.completed_at == NOW + timedelta(days=3)


def test_joining_twice_changes_nothing():
    basics, _ = make_course(1)
    path = make_path((basics, []))
    contact = make_contact()
    enroll_in_paths([(contact.pk, path.pk)], at=NOW)

    again = enroll_in_paths([(contact.pk, path.pk)], at=NOW + timedelta(days=1))

    assert again == set()
    assert PathEnrollment.objects.filter(contact=contact).count() == 1
    assert Enrollment.objects.filter(contact=contact).count() == 1


def test_path_counts_earlier_completion():
    basics, basics_lessons = make_course(1)
    reports, _ = make_course(1)
    path = make_path((basics, []), (reports, [basics]))
    contact = make_contact()
    Enrollment.objects.create(
        contact=contact, course=basics, source="manual", enrolled_at=NOW
    )
    finish(contact, basics, basics_lessons, NOW)

    enroll_in_paths([(contact.pk, path.pk)], at=NOW + timedelta(days=1))

    assert courses_of(contact) == {basics.pk, reports.pk}


def query_count(contacts, path):
    with CaptureQueriesContext(connection) as queries:
        enroll_in_paths([(contact.pk, path.pk) for contact in contacts], at=NOW)
        open_path_courses([contact.pk for contact in contacts], NOW)
    return len(queries)


def test_queries_do_not_grow_with_contacts():
    basics, _ = make_course(1)
    reports, _ = make_course(1)
    path = make_path((basics, []), (reports, [basics]))

    few = query_count([make_contact() for _ in range(2)], path)
    many = query_count([make_contact() for _ in range(30)], path)

    assert many == few


def post_path(admin_client, steps):
    """Post the add form of a path with (course, prerequisite courses) rows."""
    data: dict[str, object] = {
        "slug": "cycle",
        "title": "Cycle",
        "is_published": "on",
        "steps-TOTAL_FORMS": str(len(steps)),
        "steps-INITIAL_FORMS": "0",
        "steps-MIN_NUM_FORMS": "0",
        "steps-MAX_NUM_FORMS": "1000",
    }
    for index, (course, prerequisites) in enumerate(steps):
        data[f"steps-{index}-order"] = str(index + 1)
        data[f"steps-{index}-course"] = str(course.pk)
        data[f"steps-{index}-prerequisites"] = [str(item.pk) for item in prerequisites]
    return admin_client.post("/admin/courses/learningpath/add/", data)


def test_admin_rejects_prerequisite_cycle(admin_client):
    first, _ = make_course(1)
    second, _ = make_course(1)

    response = post_path(admin_client, [(first, [second]), (second, [first])])

    assert response.status_code == 200
    assert "form a cycle" in response.content.decode()
    assert not LearningPath.objects.exists()


def test_admin_rejects_prerequisite_outside_path(admin_client):
    first, _ = make_course(1)
    elsewhere, _ = make_course(1)

    response = post_path(admin_client, [(first, [elsewhere])])

    assert "which is not in this path" in response.content.decode()
    assert not LearningPath.objects.exists()


def test_admin_saves_valid_path(admin_client):
    first, _ = make_course(1)
    second, _ = make_course(1)

    response = post_path(admin_client, [(first, []), (second, [first])])

    assert response.status_code == 302
    step = PathCourse.objects.get(course=second)
    assert list(step.prerequisites.all()) == [first]
