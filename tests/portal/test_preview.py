"""Staff preview of a course as the portal renders it: read-only, permission-checked."""

import re

import pytest
from django.core.files.base import ContentFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from courses.assessments import start_attempt, submit_attempt
from courses.models import ChecklistItem, LessonKind, LessonProgress
from courses.services import complete_lesson
from tests.factories import NOW, make_contact
from tests.portal.helpers import (
    add_question,
    correct_choice,
    enroll_contact,
    make_assessment,
    make_course,
    sign_in,
    staff_client,
)

pytestmark = pytest.mark.django_db

WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.IGNORECASE)

PDF_BYTES = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
WEBM_BYTES = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + bytes(range(256))


@pytest.fixture(autouse=True)
def lesson_files(settings, tmp_path):
    settings.LESSON_FILE_ROOT = tmp_path / "lesson-files"


def owned_by(contact, user):
    contact.account.owner = user
    contact.account.save(update_fields=["owner"])


def preview_url(course, lesson=None, contact=None):
    url = f"/admin/courses/course/preview/{course.slug}/"
    if lesson is not None:
        url += f"lessons/{lesson.pk}/"
    return url + (f"?contact={contact.pk}" if contact else "")


def file_url(course, lesson, contact=None):
    url = f"/admin/courses/course/preview/{course.slug}/lessons/{lesson.pk}/file/"
    return url + (f"?contact={contact.pk}" if contact else "")


def file_lesson(kind, name, content):
    course, lessons = make_course(2)
    lesson = lessons[0]
    lesson.kind = kind
    lesson.file.save(name, ContentFile(content), save=True)
    return course, lesson


def body_of(response):
    return b"".join(response.streaming_content)


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
def test_missing_file_gets_no_link(kind):
    course, lessons = make_course(1)
    lessons[0].kind = kind
    # A stored name only: the file is gone from storage.
    lessons[0].file.name = f"lessons/{lessons[0].pk}/material.pdf"
    lessons[0].save()
    client, _user = staff_client("view_course")

    response = client.get(preview_url(course, lessons[0]))

    assert response.status_code == 200
    assert "/file/" not in response.content.decode()
    assert client.get(file_url(course, lessons[0])).status_code == 404


@pytest.mark.parametrize(
    ("kind", "name", "content", "content_type", "disposition"),
    [
        (LessonKind.VIDEO, "intro.webm", WEBM_BYTES, "video/webm", "inline"),
        (LessonKind.PDF, "guide.pdf", PDF_BYTES, "application/pdf", "inline"),
        (LessonKind.FILE, "seats.csv", b"name,seats\n", "text/csv", "attachment"),
    ],
)
def test_preview_serves_lesson_file(kind, name, content, content_type, disposition):
    course, lesson = file_lesson(kind, name, content)
    client, _user = staff_client("view_course")

    page, page_writes = writes_during(lambda: client.get(preview_url(course, lesson)))
    response, file_writes = writes_during(lambda: client.get(file_url(course, lesson)))
    body = body_of(response)

    assert f'"{file_url(course, lesson)}"' in page.content.decode()
    # The page links to the preview's file URL, not the portal's.
    assert f"/learn/courses/{course.slug}/lessons/{lesson.pk}/file/" not in (
        page.content.decode()
    )
    assert response.status_code == 200
    assert body == content
    assert response["Content-Type"].split(";")[0] == content_type
    assert response["Content-Disposition"].startswith(disposition)
    assert response["Accept-Ranges"] == "bytes"
    assert response["X-Frame-Options"] == "SAMEORIGIN"
    assert [sql for sql in page_writes + file_writes if "courses_" in sql] == []


def test_preview_file_range_request():
    course, lesson = file_lesson(LessonKind.VIDEO, "intro.webm", WEBM_BYTES)
    client, _user = staff_client("view_course")
    url = file_url(course, lesson)
    size = len(WEBM_BYTES)

    middle = client.get(url, HTTP_RANGE="bytes=10-19")
    tail = client.get(url, HTTP_RANGE="bytes=-5")
    outside = client.get(url, HTTP_RANGE=f"bytes={size}-")

    assert middle.status_code == 206
    assert body_of(middle) == WEBM_BYTES[10:20]
    assert middle["Content-Range"] == f"bytes 10-19/{size}"
    assert middle["Content-Length"] == "10"
    assert middle["Content-Type"] == "video/webm"
    assert body_of(tail) == WEBM_BYTES[-5:]
    assert outside.status_code == 416
    assert outside["Content-Range"] == f"bytes */{size}"


def test_preview_file_as_contact_writes_nothing():
    course, lesson = file_lesson(LessonKind.VIDEO, "intro.webm", WEBM_BYTES)
    contact = make_contact()
    enrollment = enroll_contact(contact, course)
    complete_lesson(enrollment, course.modules.first().lessons.last(), at=NOW)
    progress_before = list(
        LessonProgress.objects.values_list("pk", "views", "position_seconds")
    )
    client, user = staff_client("view_course")
    owned_by(contact, user)

    response, writes = writes_during(
        lambda: client.get(file_url(course, lesson, contact), HTTP_RANGE="bytes=0-9")
    )

    assert response.status_code == 206
    assert [sql for sql in writes if "courses_" in sql] == []
    assert not LessonProgress.objects.filter(lesson=lesson).exists()
    assert (
        list(LessonProgress.objects.values_list("pk", "views", "position_seconds"))
        == progress_before
    )


def test_preview_file_needs_permission_and_visible_contact():
    course, lesson = file_lesson(LessonKind.PDF, "guide.pdf", PDF_BYTES)
    _other_course, other_lessons = make_course(1)
    contact = make_contact()
    no_permission, _user = staff_client(username="no-permission")
    client, _user = staff_client("view_course")

    assert no_permission.get(file_url(course, lesson)).status_code == 403
    # A contact of another CSM's account, and a lesson of another course.
    assert client.get(file_url(course, lesson, contact)).status_code == 404
    assert client.get(file_url(course, other_lessons[0])).status_code == 404
    assert client.post(file_url(course, lesson)).status_code == 405


def test_learners_cannot_use_preview_file_url():
    course, lesson = file_lesson(LessonKind.PDF, "guide.pdf", PDF_BYTES)
    contact = make_contact()
    enroll_contact(contact, course)
    learner = sign_in(Client(), contact)

    response = learner.get(file_url(course, lesson))

    # The admin's login check redirects to its sign-in page; no file is sent.
    assert response.status_code == 302
    assert "/admin/login/" in response["Location"]
    assert Client().get(file_url(course, lesson)).status_code == 302


def test_preview_omits_attempt_result_links():
    course, quiz = make_assessment()
    question = add_question(
        quiz, "single_choice", "Where?", (("Here", True), ("No", False))
    )
    contact = make_contact()
    enrollment = enroll_contact(contact, course)
    attempt = start_attempt(enrollment, quiz, at=NOW)
    submit_attempt(
        enrollment, attempt.pk, {question.pk: [correct_choice(question)]}, at=NOW
    )
    client, user = staff_client("view_course")
    owned_by(contact, user)

    page = client.get(preview_url(course, quiz, contact)).content.decode()

    assert "Attempt 1" in page
    assert f"/attempts/{attempt.pk}/" not in page
    assert "A preview does not open attempt results" in page
