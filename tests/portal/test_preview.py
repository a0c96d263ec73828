"""Staff preview of a course as the portal renders it: read-only, permission-checked."""

import re

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from courses.models import ChecklistItem, LessonKind, LessonProgress
from courses.services import complete_lesson
from tests.factories import NOW, make_contact
from tests.portal.helpers import (
    add_question,
    enroll_contact,
    make_course,
    sign_in,
    staff_client,
)

pytestmark = pytest.mark.django_db

WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)


def owned_by(contact, user):
    contact.account.owner = user
    contact.account.save(update_fields=["owner"])


def preview_url(course, lesson=None, contact=None):
    url = f"/admin/courses/course/preview/{course.slug}/"
    if lesson is not None:
        url += f"lessons/{lesson.pk}/"
    return url + (f"?contact={contact.pk}" if contact else "")


def writes_during(callable_):
    with CaptureQueriesContext(connection) as queries:
        response = callable_()
    return response, [q["sql"] for q in queries if WRITE.match(q["sql"])]


def test_preview_shows_draft_course():
    course, lessons = make_course(2, published=False)
    client, _user = staff_client("view_course")

    response = client.get(preview_url(course))

    page = response.content.decode()
    assert response.status_code == 200
    assert "Preview." in page
    assert lessons[0].title in page
    # Links inside the preview stay in the preview.
    assert f'href="{preview_url(course, lessons[1])}"' in page


def test_lesson_preview_writes_nothing():
    course, lessons = make_course(2, published=False)
    client, _user = staff_client("view_course")

    response, writes = writes_during(
        lambda: client.get(preview_url(course, lessons[0]))
    )

    page = response.content.decode()
    assert response.status_code == 200
    assert lessons[0].body in page
    assert "lesson-tracker" not in page
    assert "Nothing is saved in a preview" in page
    # Only the staff session may be touched; nothing of courses.
    assert [sql for sql in writes if "courses_" in sql] == []


def test_preview_as_contact_reads_progress():
    course, lessons = make_course(2)
    contact = make_contact(first_name="Grace")
    enrollment = enroll_contact(contact, course)
    complete_lesson(enrollment, lessons[0], at=NOW)
    views_before = list(LessonProgress.objects.values_list("pk", "views"))
    client, user = staff_client("view_course")
    owned_by(contact, user)

    response, writes = writes_during(
        lambda: client.get(preview_url(course, lessons[1], contact))
    )
    course_page = client.get(preview_url(course, contact=contact)).content.decode()

    assert response.status_code == 200
    assert [sql for sql in writes if "courses_" in sql] == []
    assert list(LessonProgress.objects.values_list("pk", "views")) == views_before
    assert "Shown as Grace" in response.content.decode()
    assert "is enrolled" in response.content.decode()
    assert "1 of 2 required lessons completed" in course_page
    assert f"?contact={contact.pk}" in course_page
    # The staff user stays signed in as themselves.
    assert int(client.session["_auth_user_id"]) == user.pk


def test_preview_of_checklist_and_quiz():
    course, lessons = make_course(2)
    ChecklistItem.objects.create(lesson=lessons[0], text="Invite a teammate")
    lessons[0].kind = LessonKind.CHECKLIST
    lessons[0].save()
    lessons[1].kind = LessonKind.QUIZ
    lessons[1].save()
    add_question(lessons[1], "single_choice", "Where?", (("Here", True), ("No", False)))
    client, _user = staff_client("view_course")

    checklist = client.get(preview_url(course, lessons[0])).content.decode()
    quiz = client.get(preview_url(course, lessons[1])).content.decode()

    assert "Invite a teammate" in checklist
    assert "Attempts are not started in a preview." in quiz


def test_preview_needs_view_permission():
    course, _lessons = make_course(1)
    client, _user = staff_client()

    assert client.get(preview_url(course)).status_code == 403


def test_preview_rejects_learners_and_visitors():
    course, _lessons = make_course(1)
    contact = make_contact()
    enroll_contact(contact, course)
    learner = sign_in(Client(), contact)

    assert learner.get(preview_url(course)).status_code == 302
    assert Client().get(preview_url(course)).status_code == 302


def test_preview_unknown_ids_are_404():
    course, _lessons = make_course(1)
    _other_course, other_lessons = make_course(1)
    client, _user = staff_client("view_course")

    assert client.get(preview_url(course, other_lessons[0])).status_code == 404
    assert client.get(preview_url(course) + "?contact=999999").status_code == 404
    assert client.get(preview_url(course) + "?contact=abc").status_code == 404
    assert client.get("/admin/courses/course/preview/no-such/").status_code == 404


def test_preview_as_contact_says_access():
    course, _lessons = make_course(1)
    contact = make_contact(first_name="Linus")
    client, user = staff_client("view_course")
    owned_by(contact, user)

    page = client.get(preview_url(course, contact=contact)).content.decode()

    assert "cannot find this course in the catalogue" in page


def test_live_session_preview_shows_time():
    course, lessons = make_course(1)
    lessons[0].kind = LessonKind.LIVE_SESSION
    lessons[0].starts_at = NOW
    lessons[0].duration_minutes = 30
    lessons[0].save()
    client, _user = staff_client("view_course")

    page = client.get(preview_url(course, lessons[0])).content.decode()

    assert "The date of this session is not set yet." not in page
    # Without a contact the time is in the site's zone, UTC in the tests.
    assert 'datetime="2024-06-15T12:00:00+00:00"' in page
    assert "(UTC time)" in page


def test_preview_of_other_csm_contact_is_404():
    course, _lessons = make_course(1)
    contact = make_contact(first_name="Ines")
    enroll_contact(contact, course)
    client, _user = staff_client("view_course")

    response = client.get(preview_url(course, contact=contact))

    assert response.status_code == 404
    assert "Ines" not in response.content.decode()


@pytest.mark.parametrize("kind", [LessonKind.VIDEO, LessonKind.PDF, LessonKind.FILE])
def test_file_lesson_preview_renders(kind):
    course, lessons = make_course(1)
    lessons[0].kind = kind
    # A stored name only; the preview never reads or serves the file.
    lessons[0].file.name = f"lessons/{lessons[0].pk}/material.bin"
    lessons[0].save()
    client, _user = staff_client("view_course")

    response = client.get(preview_url(course, lessons[0]))

    assert response.status_code == 200
    assert f"/lessons/{lessons[0].pk}/file/" not in response.content.decode()
