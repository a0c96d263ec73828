"""Course versions: completions record their version, and recertification."""

from datetime import timedelta

import pytest
from django.test import Client

from courses.models import (
    Certificate,
    CourseVersion,
    Enrollment,
    EnrollmentStatus,
    Lesson,
)
from courses.services import complete_lesson
from courses.versions import VersionError, publish_version, version_state
from tests.factories import NOW, make_contact
from tests.portal.helpers import enroll_contact, make_course, sign_in, staff_client

pytestmark = pytest.mark.django_db

LATER = NOW + timedelta(days=30)


def completed(course, lessons, contact=None):
    enrollment = enroll_contact(contact or make_contact(), course)
    for lesson in lessons:
        complete_lesson(enrollment, lesson, at=NOW)
    enrollment.refresh_from_db()
    return enrollment


def add_lesson(course, title="New lesson", *, required=True):
    module = course.modules.first()
    return Lesson.objects.create(
        module=module, title=title, order=99, is_required=required
    )


def test_completion_records_course_version():
    course, lessons = make_course(2)
    enrollment = completed(course, lessons)

    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert enrollment.completed_version == 1
    assert Certificate.objects.get(enrollment=enrollment).course_version == 1


def test_completion_on_later_version():
    course, _lessons = make_course(1)
    add_lesson(course)
    publish_version(course, requires_recertification=False, at=NOW)

    enrollment = completed(course, course_lessons(course))

    assert enrollment.completed_version == 2
    assert enrollment.certificates.get().course_version == 2


def course_lessons(course):
    return list(Lesson.objects.filter(module__course=course))


def test_added_lesson_keeps_completion():
    course, lessons = make_course(2)
    enrollment = completed(course, lessons)

    add_lesson(course)
    version = publish_version(course, requires_recertification=False, at=LATER)
    enrollment.refresh_from_db()

    assert version.number == 2
    assert version.recertification_count == 0
    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert enrollment.completed_at == NOW
    assert enrollment.completed_version == 1
    assert enrollment.recertification_version is None
    assert enrollment.certificates.get().expires_at is None


def test_recertification_marks_learners_behind():
    course, lessons = make_course(2)
    behind = completed(course, lessons)
    new_lesson = add_lesson(course)
    # Completed the new lesson before the version was published, so
    # nothing is left for them under the completion rule.
    ahead = completed(course, lessons)
    complete_lesson(ahead, new_lesson, at=NOW)
    active = enroll_contact(make_contact(), course)

    version = publish_version(course, requires_recertification=True, at=LATER)

    behind.refresh_from_db()
    ahead.refresh_from_db()
    active.refresh_from_db()
    assert version.recertification_count == 1
    assert behind.recertification_version == 2
    assert behind.status == EnrollmentStatus.COMPLETED
    assert ahead.recertification_version is None
    assert active.recertification_version is None
    assert active.status == EnrollmentStatus.ACTIVE


def test_optional_lesson_asks_no_recertification():
    course, lessons = make_course(2)
    enrollment = completed(course, lessons)
    add_lesson(course, required=False)

    version = publish_version(course, requires_recertification=True, at=LATER)
    enrollment.refresh_from_db()

    assert version.recertification_count == 0
    assert enrollment.recertification_version is None


def test_recertification_issues_new_certificate():
    course, lessons = make_course(2)
    enrollment = completed(course, lessons)
    first_certificate = enrollment.certificates.get()
    new_lesson = add_lesson(course)
    publish_version(course, requires_recertification=True, at=LATER)

    complete_lesson(enrollment, new_lesson, at=LATER + timedelta(days=1))
    enrollment.refresh_from_db()

    assert enrollment.completed_version == 2
    assert enrollment.recertification_version is None
    assert enrollment.recertified_at == LATER + timedelta(days=1)
    # The first completion stays the one conditions and dashboards count.
    assert enrollment.completed_at == NOW
    versions = sorted(enrollment.certificates.values_list("course_version", flat=True))
    assert versions == [1, 2]
    first_certificate.refresh_from_db()
    assert first_certificate.revoked_at is None


def test_recertification_can_expire_certificates():
    course, lessons = make_course(1)
    enrollment = completed(course, lessons)
    add_lesson(course)

    publish_version(
        course, requires_recertification=True, expire_certificates=True, at=LATER
    )

    assert enrollment.certificates.get().expires_at == LATER


def test_expiry_alone_is_rejected():
    course, _lessons = make_course(1)
    add_lesson(course)

    with pytest.raises(VersionError, match="needs recertification"):
        publish_version(
            course, requires_recertification=False, expire_certificates=True
        )
    assert CourseVersion.objects.count() == 0


def test_unchanged_content_is_rejected():
    course, _lessons = make_course(1)
    add_lesson(course)
    publish_version(course, requires_recertification=False, at=NOW)

    with pytest.raises(VersionError, match="has not changed since version 2"):
        publish_version(course, requires_recertification=False, at=LATER)
    course.refresh_from_db()
    assert course.version == 2


def test_lesson_edit_shows_as_changed():
    course, lessons = make_course(1)
    publish_version(course, requires_recertification=False, at=NOW)
    assert version_state(course).changed is False

    lessons[0].body = "Rewritten"
    lessons[0].save()

    assert version_state(course).changed is True


def test_course_page_tells_learner_version():
    course, lessons = make_course(1)
    contact = make_contact()
    completed(course, lessons, contact)
    add_lesson(course, "Audit logs")
    publish_version(course, requires_recertification=True, at=LATER)
    client = sign_in(Client(), contact)

    page = client.get(f"/learn/courses/{course.slug}/").content.decode()

    assert "Recertification due" in page
    assert "You completed version 1" in page
    assert "Complete the lessons that version 2 added" in page
    home = client.get("/learn/").content.decode()
    assert "Recertification due" in home


def test_course_page_says_completion_stands():
    course, lessons = make_course(1)
    contact = make_contact()
    completed(course, lessons, contact)
    add_lesson(course)
    publish_version(course, requires_recertification=False, at=LATER)

    page = sign_in(Client(), contact).get(f"/learn/courses/{course.slug}/")

    assert "your completion stands" in page.content.decode()


@pytest.fixture
def csm_client():
    def client_with(*codenames):
        client, _user = staff_client(*codenames)
        return client

    return client_with


def test_admin_publishes_version(csm_client):
    course, lessons = make_course(1)
    enrollment = completed(course, lessons)
    add_lesson(course)
    client = csm_client("view_course", "change_course")
    url = f"/admin/courses/course/{course.pk}/publish-version/"

    assert "Publish version 2" in client.get(url).content.decode()
    response = client.post(
        url, {"requires_recertification": "on", "note": "Adds audit logs"}
    )

    assert response.status_code == 302
    version = CourseVersion.objects.get(course=course)
    assert version.number == 2
    assert version.note == "Adds audit logs"
    assert version.published_by is not None
    assert version.published_by.username == "csm"
    assert Enrollment.objects.get(pk=enrollment.pk).recertification_version == 2


def test_admin_shows_rejection(csm_client):
    course, _lessons = make_course(1)
    client = csm_client("view_course", "change_course")
    url = f"/admin/courses/course/{course.pk}/publish-version/"

    response = client.post(url, {"expire_certificates": "on"})

    assert response.status_code == 200
    assert "needs recertification" in response.content.decode()


def test_admin_publish_needs_change_permission(csm_client):
    course, _lessons = make_course(1)
    client = csm_client("view_course")

    response = client.get(f"/admin/courses/course/{course.pk}/publish-version/")

    assert response.status_code == 403


def test_admin_filters_recertification_due(csm_client):
    course, lessons = make_course(1)
    due = completed(course, lessons, make_contact(email="due@example.com"))
    add_lesson(course)
    publish_version(course, requires_recertification=True, at=LATER)
    completed(course, course_lessons(course), make_contact(email="done@example.com"))
    client = csm_client("view_enrollment")

    page = client.get("/admin/courses/enrollment/?recertification=due")

    text = page.content.decode()
    assert page.status_code == 200
    assert "due@example.com" in text
    assert "done@example.com" not in text
    assert Enrollment.objects.get(pk=due.pk).recertification_version == 2
