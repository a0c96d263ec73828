"""The courses admin pages a CSM uses."""

import pytest
from django.contrib.auth.models import User

from courses.models import Enrollment, EnrollmentSource, SignInLink
from courses.services import complete_lesson, create_sign_in_url
from tests.factories import make_contact
from tests.portal.helpers import enroll_contact, make_course

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("admin", "admin@example.com", "a password")
    client.force_login(user)
    return client


def test_admin_pages_open(admin_client):
    course, lessons = make_course(2)
    enrollment = enroll_contact(make_contact(), course)
    complete_lesson(enrollment, lessons[0])
    progress = enrollment.lesson_progress.get()
    create_sign_in_url(enrollment.contact)
    link = SignInLink.objects.get()
    pages = [
        "/admin/courses/course/",
        f"/admin/courses/course/{course.pk}/change/",
        "/admin/courses/module/",
        f"/admin/courses/module/{lessons[0].module_id}/change/",
        "/admin/courses/lesson/",
        f"/admin/courses/lesson/{lessons[0].pk}/change/",
        "/admin/courses/enrollment/",
        f"/admin/courses/enrollment/{enrollment.pk}/change/",
        "/admin/courses/enrollment/add/",
        "/admin/courses/lessonprogress/",
        f"/admin/courses/lessonprogress/{progress.pk}/change/",
        "/admin/courses/signinlink/",
        f"/admin/courses/signinlink/{link.pk}/change/",
    ]

    for page in pages:
        assert admin_client.get(page).status_code == 200, page


def test_admin_never_shows_token_hash(admin_client):
    contact = make_contact()
    create_sign_in_url(contact)
    link = SignInLink.objects.get()

    pages = [
        admin_client.get("/admin/courses/signinlink/"),
        admin_client.get(f"/admin/courses/signinlink/{link.pk}/change/"),
    ]

    for page in pages:
        assert link.token_hash not in page.content.decode()
        assert contact.email in page.content.decode()


def test_progress_and_links_are_read_only(admin_client):
    contact = make_contact()
    create_sign_in_url(contact)

    assert admin_client.get("/admin/courses/signinlink/add/").status_code == 403
    assert admin_client.get("/admin/courses/lessonprogress/add/").status_code == 403


def test_enrollment_search_by_email(admin_client):
    course, _lessons = make_course(1)
    found = make_contact(email="findme@example.com")
    enroll_contact(found, course)
    enroll_contact(make_contact(email="other@example.com"), course)

    response = admin_client.get("/admin/courses/enrollment/?q=findme")

    assert list(response.context["cl"].result_list) == [
        Enrollment.objects.get(contact=found)
    ]


def test_admin_enrollment_records_origin(admin_client):
    course, _lessons = make_course(1)
    contact = make_contact()

    response = admin_client.post(
        "/admin/courses/enrollment/add/",
        {
            "contact": contact.pk,
            "course": course.pk,
            "source": EnrollmentSource.MANUAL,
            "origin": "",
            "status": "active",
            "enrolled_at_0": "2024-06-01",
            "enrolled_at_1": "09:00:00",
            "lesson_progress-TOTAL_FORMS": "0",
            "lesson_progress-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    enrollment = Enrollment.objects.get()
    assert enrollment.contact == contact
    assert enrollment.origin == "admin:admin"
