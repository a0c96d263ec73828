"""Portal input checks: heartbeat fields, ranges, calendar text, embeds, images."""

from datetime import timedelta

import pytest
from django.core.files.base import ContentFile
from django.test import Client

from courses.content import render_markdown, session_ics, video_embed_url
from courses.forms import LessonAdminForm
from courses.heartbeats import Heartbeat, parse_heartbeat, record_heartbeat
from courses.models import LessonKind, LessonProgress
from courses.services import portal_user_for, record_lesson_view
from tests.factories import NOW, make_contact
from tests.portal.helpers import enroll_contact, lesson_url, make_course, sign_in

pytestmark = pytest.mark.django_db

PDF_BYTES = b"%PDF-1.4\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
WEBM_HEAD = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\x00" * 64


@pytest.fixture(autouse=True)
def lesson_files(settings, tmp_path):
    settings.LESSON_FILE_ROOT = tmp_path / "lesson-files"


def viewed_lesson(kind: str):
    """Return (contact, user, course, lesson) for a lesson opened at NOW."""
    contact = make_contact()
    course, lessons = make_course(1)
    lesson = lessons[0]
    lesson.kind = kind
    lesson.save()
    enrollment = enroll_contact(contact, course)
    record_lesson_view(enrollment, lesson, at=NOW)
    return contact, portal_user_for(contact), course, lesson


# --- Heartbeat fields ------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("active_seconds", "\u0661\u0662"),  # Arabic-Indic digits
        ("active_seconds", "1_000"),
        ("active_seconds", "+5"),
        ("active_seconds", " 5"),
        ("sequence", "²"),
        ("view", "1_0"),
        ("position", "\u0663"),
        ("page_count", "1_0"),
    ],
)
def test_parse_accepts_only_ascii_digits(field, value):
    data = {"view": "1", "sequence": "1", "active_seconds": "1", field: value}

    with pytest.raises(ValueError, match=f"field {field} is") as raised:
        parse_heartbeat(data)

    assert "digits 0-9" in str(raised.value)


def test_parse_rejects_non_ascii_page():
    data = {
        "view": "1",
        "sequence": "1",
        "active_seconds": "1",
        "pages": "1,\u0662",
        "page_count": "3",
    }

    with pytest.raises(ValueError, match="field pages contains '\u0662'"):
        parse_heartbeat(data)


def test_endpoint_names_non_ascii_field(client):
    contact, _user, course, lesson = viewed_lesson(LessonKind.TEXT)
    sign_in(client, contact)

    response = client.post(
        lesson_url(course, lesson) + "heartbeat/",
        {"view": "1", "sequence": "1", "active_seconds": "١٢"},
    )

    assert response.status_code == 400
    assert "active_seconds" in response.json()["error"]
    assert LessonProgress.objects.get(lesson=lesson).time_spent_seconds == 0


@pytest.mark.parametrize(
    ("kind", "fields", "named"),
    [
        (LessonKind.PDF, {"position": "30"}, "position"),
        (LessonKind.TEXT, {"position": "30"}, "position"),
        (LessonKind.VIDEO, {"pages": "1", "page_count": "2"}, "pages"),
        (LessonKind.TEXT, {"page_count": "2"}, "page_count"),
        (LessonKind.PDF, {"duration": "60"}, "duration"),
    ],
)
def test_endpoint_rejects_field_of_other_kind(client, kind, fields, named):
    contact, _user, course, lesson = viewed_lesson(kind)
    sign_in(client, contact)

    response = client.post(
        lesson_url(course, lesson) + "heartbeat/",
        {"view": "1", "sequence": "1", "active_seconds": "5", **fields},
    )

    progress = LessonProgress.objects.get(lesson=lesson)
    assert response.status_code == 400
    assert f"field {named} is for" in response.json()["error"]
    assert progress.position_seconds == 0
    assert progress.pages_viewed == []
    assert progress.page_count is None
    assert progress.time_spent_seconds == 0


def test_pages_without_page_count_rejected():
    with pytest.raises(ValueError, match="page_count is missing"):
        parse_heartbeat(
            {"view": "1", "sequence": "1", "active_seconds": "1", "pages": "1,2"}
        )


def test_pages_clamped_to_page_count():
    contact, _user, course, lesson = viewed_lesson(LessonKind.PDF)
    # The PDF had 10 pages, then was replaced by one of 3 pages.
    before = Heartbeat(1, 1, 5, None, pages=frozenset({1, 2, 9, 10}), page_count=10)
    after = Heartbeat(1, 2, 5, None, pages=frozenset({3}), page_count=3)

    record_heartbeat(
        contact.pk, course.slug, lesson.pk, before, NOW + timedelta(seconds=5)
    )
    record_heartbeat(
        contact.pk, course.slug, lesson.pk, after, NOW + timedelta(seconds=10)
    )

    progress = LessonProgress.objects.get(lesson=lesson)
    assert progress.page_count == 3
    assert progress.pages_viewed == [1, 2, 3]


def test_pages_past_page_count_rejected():
    with pytest.raises(ValueError, match="pages are numbered from 1 to 3"):
        parse_heartbeat(
            {
                "view": "1",
                "sequence": "1",
                "active_seconds": "1",
                "pages": "1,4",
                "page_count": "3",
            }
        )


# --- CSRF --------------------------------------------------------------------------


def test_heartbeat_without_csrf_token_gets_json_403():
    contact, _user, course, lesson = viewed_lesson(LessonKind.TEXT)
    client = sign_in(Client(enforce_csrf_checks=True), contact)

    response = client.post(
        lesson_url(course, lesson) + "heartbeat/",
        {"view": "1", "sequence": "1", "active_seconds": "5"},
    )

    assert response.status_code == 403
    assert response["Content-Type"] == "application/json"
    assert "CSRF token" in response.json()["error"]
    assert "reload the lesson page" in response.json()["error"]


def test_other_post_without_csrf_token_gets_html_403():
    contact, _user, course, lesson = viewed_lesson(LessonKind.TEXT)
    client = sign_in(Client(enforce_csrf_checks=True), contact)

    response = client.post(lesson_url(course, lesson) + "complete/")

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


# --- Byte ranges -----------------------------------------------------------------


@pytest.fixture
def video_file(client):
    contact, _user, course, lesson = viewed_lesson(LessonKind.VIDEO)
    body = WEBM_HEAD + bytes(range(256))
    lesson.file.save("intro.webm", ContentFile(body), save=True)
    sign_in(client, contact)
    return lesson_url(course, lesson) + "file/", body


def read(response) -> bytes:
    return b"".join(response.streaming_content)


@pytest.mark.parametrize(
    "header",
    [
        "bytes=5-2",  # last before first: an invalid range spec
        "bytes=0-1,4-5",  # several ranges, which a server may ignore
        "items=0-1",  # a unit the server does not know
        "bytes=abc",
        "bytes=-",
        "bytes=\u0661-\u0662",  # Arabic-Indic digits
        "bytes = 0-1",
    ],
)
def test_invalid_range_ignored(client, video_file, header):
    url, body = video_file

    response = client.get(url, HTTP_RANGE=header)

    assert response.status_code == 200
    assert read(response) == body
    assert "Content-Range" not in response


def test_range_unit_case_insensitive(client, video_file):
    url, body = video_file

    response = client.get(url, HTTP_RANGE="Bytes=2-4")

    assert response.status_code == 206
    assert read(response) == body[2:5]


def test_range_with_if_range_sends_whole_file(client, video_file):
    # These responses carry no validator, so no If-Range can match.
    url, body = video_file

    response = client.get(url, HTTP_RANGE="bytes=2-4", HTTP_IF_RANGE='"abc"')

    assert response.status_code == 200
    assert read(response) == body


@pytest.mark.parametrize(
    ("header", "first", "last"),
    [
        ("bytes=0-0", 0, 0),
        ("bytes=10-99999", 10, None),
        ("bytes=-99999", 0, None),
    ],
)
def test_satisfiable_ranges(client, video_file, header, first, last):
    url, body = video_file
    end = len(body) - 1 if last is None else last

    response = client.get(url, HTTP_RANGE=header)

    assert response.status_code == 206
    assert read(response) == body[first : end + 1]
    assert response["Content-Range"] == f"bytes {first}-{end}/{len(body)}"


@pytest.mark.parametrize("header", ["bytes=-0", "bytes=100000-", "bytes=100000-100001"])
def test_unsatisfiable_range_gets_416(client, video_file, header):
    url, body = video_file

    response = client.get(url, HTTP_RANGE=header)

    assert response.status_code == 416
    assert response["Content-Range"] == f"bytes */{len(body)}"


# --- Calendar files -----------------------------------------------------------


def test_ics_has_no_lone_line_break():
    _course, lessons = make_course(1)
    lesson = lessons[0]
    lesson.kind = LessonKind.LIVE_SESSION
    lesson.title = "Admin\rQ&A\nPart\r\n2\x0b"
    lesson.starts_at = NOW
    lesson.url = "https://meet.example.com/a\rb"
    lesson.save()

    body = session_ics(lesson, "https://learn.example.com/x", "learn.example.com")

    assert "\r" not in body.replace("\r\n", "")
    assert "\n" not in body.replace("\r\n", "")
    assert "\x0b" not in body
    assert "SUMMARY:Admin\\nQ&A\\nPart\\n2\r\n" in body
    # A URL with a control character cannot be a URI value, so URL is left out.
    assert "\r\nURL:" not in body
    assert "LOCATION:https://meet.example.com/a\\nb\r\n" in body


# --- Video embeds -------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "https://evil.example\\@www.youtube.com/watch?v=abc",
        "https://www.youtube.com\\@evil.example/watch?v=abc",
        "https://www.youtube.com\\evil.example/watch?v=abc",
        "https://user@www.youtube.com/watch?v=abc",
        "https://www.youtube.com:8443/watch?v=abc",
        "https://www.youtube.com/watch?v=abc\x00",
        "https://www.youtube.com/watch?v=abc def",
        "https://www.y\u03bfutube.com/watch?v=abc",  # a Greek omicron
        "https:\\\\www.youtube.com/watch?v=abc",
    ],
)
def test_video_embed_rejects_ambiguous_url(url):
    assert video_embed_url(url) is None


# --- Markdown images ---------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        "https://tracker.example/pixel.png",
        "http://cdn.example/a.png",
        "//cdn.example/a.png",
        "HTTPS://cdn.example/a.png",
    ],
)
def test_markdown_drops_remote_image(source):
    html = render_markdown(f"![Chart of seats]({source})")

    assert "cdn.example" not in html
    assert "tracker.example" not in html
    assert 'alt="Chart of seats"' in html


def test_markdown_keeps_local_image():
    html = render_markdown("![Chart](/media/chart.png)")

    assert '<img src="/media/chart.png" alt="Chart">' in html


def test_markdown_keeps_remote_link():
    html = render_markdown("[Docs](https://docs.example.com/)")

    assert 'href="https://docs.example.com/"' in html


# --- Upload checks in the module page's inline ---------------------------------


def inline_form(lesson, kind: str) -> LessonAdminForm:
    """The lesson form as the module page's inline builds it: no file field."""
    form_class = type(
        "InlineLessonForm",
        (LessonAdminForm,),
        {
            "Meta": type(
                "Meta",
                (LessonAdminForm.Meta,),
                {"fields": ["order", "title", "kind", "is_required", "body", "url"]},
            )
        },
    )
    data = {
        "order": lesson.order,
        "title": lesson.title,
        "kind": kind,
        "is_required": "on",
        "body": "",
        "url": "",
    }
    return form_class(data=data, instance=lesson)


def test_inline_kind_change_rechecks_stored_file():
    _course, lessons = make_course(1)
    lesson = lessons[0]
    lesson.kind = LessonKind.PDF
    lesson.save()
    lesson.file.save("guide.pdf", ContentFile(PDF_BYTES), save=True)

    form = inline_form(lesson, LessonKind.VIDEO)

    assert not form.is_valid()
    assert "extension .pdf is not one of .mp4, .webm" in form.errors["kind"][0]


def test_inline_kind_change_accepts_fitting_file():
    _course, lessons = make_course(1)
    lesson = lessons[0]
    lesson.kind = LessonKind.PDF
    lesson.save()
    lesson.file.save("guide.pdf", ContentFile(PDF_BYTES), save=True)

    form = inline_form(lesson, LessonKind.FILE)

    assert form.is_valid(), form.errors


def test_module_page_inline_rejects_kind_change(admin_client):
    course, lessons = make_course(1)
    lesson = lessons[0]
    lesson.kind = LessonKind.PDF
    lesson.save()
    lesson.file.save("guide.pdf", ContentFile(PDF_BYTES), save=True)
    module = lesson.module
    prefix = "lessons"
    data = {
        "course": course.pk,
        "title": module.title,
        "order": module.order,
        f"{prefix}-TOTAL_FORMS": "1",
        f"{prefix}-INITIAL_FORMS": "1",
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
        f"{prefix}-0-id": lesson.pk,
        f"{prefix}-0-module": module.pk,
        f"{prefix}-0-order": lesson.order,
        f"{prefix}-0-title": lesson.title,
        f"{prefix}-0-kind": LessonKind.VIDEO,
        f"{prefix}-0-is_required": "on",
        f"{prefix}-0-weight": "",
        f"{prefix}-0-body": "",
        f"{prefix}-0-url": "",
    }

    response = admin_client.post(f"/admin/courses/module/{module.pk}/change/", data)

    lesson.refresh_from_db()
    assert response.status_code == 200
    assert "does not fit the kind Video" in response.content.decode()
    assert lesson.kind == LessonKind.PDF
