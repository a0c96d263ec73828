"""Learning paths on the learner's home page: open and locked courses."""

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from courses.models import Course, LearningPath, PathCourse
from courses.paths import StepState, enroll_in_paths, path_overview
from courses.services import complete_lesson, enroll
from tests.factories import NOW, make_contact
from tests.portal.helpers import make_course, sign_in

pytestmark = pytest.mark.django_db


def make_path(slug, *steps, published=True):
    """Create a path of (course, prerequisite courses) steps, in order."""
    path = LearningPath.objects.create(
        slug=slug, title=f"Path {slug}", is_published=published
    )
    for order, (course, prerequisites) in enumerate(steps, start=1):
        step = PathCourse.objects.create(path=path, course=course, order=order)
        step.prerequisites.set(prerequisites)
    return path


@pytest.fixture
def three_step_path():
    """Basics opens at once, Reports needs Basics, Admin needs both."""
    basics, basics_lessons = make_course(1)
    reports, _ = make_course(1)
    admin, _ = make_course(1)
    path = make_path(
        "admin-track", (basics, []), (reports, [basics]), (admin, [reports, basics])
    )
    return path, (basics, reports, admin), basics_lessons


def test_overview_marks_open_and_locked(three_step_path):
    path, (basics, reports, admin), _lessons = three_step_path
    contact = make_contact()
    enroll_in_paths([(contact.pk, path.pk)], at=NOW)

    [overview] = path_overview(contact.pk)

    states = [(step.course, step.state) for step in overview.steps]
    assert states == [
        (basics, StepState.OPEN),
        (reports, StepState.LOCKED),
        (admin, StepState.LOCKED),
    ]
    assert overview.steps[1].waiting_for == [basics]
    assert overview.steps[2].waiting_for == [basics, reports]
    assert overview.completed == 0


def test_completion_opens_next_course(three_step_path):
    path, (basics, reports, _admin), basics_lessons = three_step_path
    contact = make_contact()
    enroll_in_paths([(contact.pk, path.pk)], at=NOW)
    enrollment = contact.enrollments.get(course=basics)

    complete_lesson(enrollment, basics_lessons[0], at=NOW)

    [overview] = path_overview(contact.pk)
    states = [step.state for step in overview.steps]
    assert states == [StepState.COMPLETED, StepState.OPEN, StepState.LOCKED]
    assert overview.steps[2].waiting_for == [reports]
    assert overview.completed == 1


def test_course_added_later_is_ready(three_step_path):
    path, (basics, _reports, _admin), basics_lessons = three_step_path
    contact = make_contact()
    enroll_in_paths([(contact.pk, path.pk)], at=NOW)
    complete_lesson(contact.enrollments.get(course=basics), basics_lessons[0], at=NOW)
    extra, _ = make_course(1)
    PathCourse.objects.create(path=path, course=extra, order=9).prerequisites.set(
        [basics]
    )

    [overview] = path_overview(contact.pk)

    assert overview.steps[-1].course == extra
    assert overview.steps[-1].state == StepState.READY


def test_unpublished_path_hidden(three_step_path):
    path, _courses, _lessons = three_step_path
    contact = make_contact()
    enroll_in_paths([(contact.pk, path.pk)], at=NOW)
    path.is_published = False
    path.save()

    assert path_overview(contact.pk) == []


def test_unpublished_course_unavailable(three_step_path):
    path, (basics, _reports, _admin), _lessons = three_step_path
    contact = make_contact()
    enroll_in_paths([(contact.pk, path.pk)], at=NOW)
    basics.is_published = False
    basics.save()

    [overview] = path_overview(contact.pk)

    assert overview.steps[0].state == StepState.UNAVAILABLE


def test_home_shows_paths(client, three_step_path):
    path, (basics, reports, _admin), _lessons = three_step_path
    contact = make_contact()
    enroll_in_paths([(contact.pk, path.pk)], at=NOW)
    sign_in(client, contact)

    content = client.get("/learn/").content.decode()

    assert "My learning paths" in content
    assert path.title in content
    assert "0 of 3 courses completed." in content
    assert f'<a href="/learn/courses/{basics.slug}/">{basics.title}</a>' in content
    # A locked course is named but not linked.
    assert f'href="/learn/courses/{reports.slug}/"' not in content
    assert f"Opens after you complete {basics.title}." in content
    assert f"Opens after you complete {basics.title} and {reports.title}." in content


def test_home_without_paths_has_no_section(client):
    contact = make_contact()
    course, _ = make_course(1)
    enroll(contact, course, at=NOW)
    sign_in(client, contact)

    content = client.get("/learn/").content.decode()

    assert "My learning paths" not in content
    assert "portal/paths.css" not in content


def test_other_contacts_paths_not_shown(client, three_step_path):
    path, _courses, _lessons = three_step_path
    enroll_in_paths([(make_contact().pk, path.pk)], at=NOW)
    sign_in(client, make_contact())

    content = client.get("/learn/").content.decode()

    assert path.title not in content


def count_home_queries(path_total: int, courses_per_path: int) -> int:
    contact = make_contact()
    pairs = []
    for number in range(path_total):
        courses = [make_course(1)[0] for _ in range(courses_per_path)]
        steps: list[tuple[Course, list[Course]]] = [(courses[0], [])] + [
            (course, [courses[index]]) for index, course in enumerate(courses[1:])
        ]
        path = make_path(f"count-{path_total}-{number}", *steps)
        pairs.append((contact.pk, path.pk))
    enroll_in_paths(pairs, at=NOW)
    client = sign_in(Client(), contact)

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/learn/")
    assert response.status_code == 200
    assert len(response.context["paths"]) == path_total
    return len(queries)


def test_home_query_count_with_paths_constant():
    assert count_home_queries(1, 2) == count_home_queries(4, 5)
