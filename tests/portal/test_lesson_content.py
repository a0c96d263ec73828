"""Lesson kinds with content: Markdown, video, PDF, files, checklists, live sessions."""

import io
from datetime import UTC, datetime

import pytest
from django.contrib.auth.models import User
from django.core.exceptions import ValidationError
from django.core.files.base import ContentFile
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.utils.datastructures import MultiValueDict

from courses.content import (
    record_attendance,
    render_markdown,
    save_checklist,
    session_ics,
    tick_by_events,
    video_embed_url,
)
from courses.forms import LessonAdminForm
from courses.models import (
    Attendance,
    ChecklistItem,
    ChecklistTick,
    EnrollmentStatus,
    LessonKind,
    LessonProgress,
)
from courses.uploads import MEGABYTE, validate_lesson_file
from tests.factories import NOW, make_account, make_contact, make_event
from tests.portal.helpers import enroll_contact, lesson_url, make_course, sign_in

pytestmark = pytest.mark.django_db

# The smallest byte strings that start like each format.
WEBM_HEAD = b"\x1a\x45\xdf\xa3\x9f\x42\x86\x81\x01\x42\x82\x84webm" + b"\x00" * 64
MP4_HEAD = b"\x00\x00\x00\x18ftypmp42" + b"\x00" * 64
PDF_BYTES = (
    b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<<>>\nendobj\ntrailer\n<<>>\n%%EOF\n"
)


@pytest.fixture(autouse=True)
def lesson_files(settings, tmp_path):
    settings.LESSON_FILE_ROOT = tmp_path / "lesson-files"
    return settings.LESSON_FILE_ROOT


@pytest.fixture
def learner():
    return make_contact()


def lesson_of_kind(kind: str, **fields):
    course, lessons = make_course(2)
    lesson = lessons[0]
    lesson.kind = kind
    for name, value in fields.items():
        setattr(lesson, name, value)
    lesson.save()
    return course, lesson


def attach(lesson, name: str, content: bytes) -> None:
    lesson.file.save(name, ContentFile(content), save=True)


# --- Markdown ------------------------------------------------------------------


def test_markdown_renders_formatting():
    html = render_markdown("# Title\n\n**bold** and [docs](https://docs.example.com)")

    assert "<h1>Title</h1>" in html
    assert "<strong>bold</strong>" in html
    assert 'href="https://docs.example.com"' in html
    assert 'rel="noopener noreferrer"' in html


def test_markdown_shows_html_as_typed():
    html = render_markdown('<img src=x onerror="alert(1)"> <b>hi</b>')

    assert "<img" not in html
    assert "<b>" not in html
    assert "&lt;b&gt;hi&lt;/b&gt;" in html


@pytest.mark.parametrize(
    "link",
    [
        "[x](javascript:alert(1))",
        "[x](JAVASCRIPT:alert(1))",
        "[x](vbscript:msgbox)",
        "[x](data:text/html;base64,PHNjcmlwdD4=)",
    ],
)
def test_markdown_drops_unsafe_links(link):
    html = render_markdown(link)

    # The link stays as text, never as an address the browser follows.
    assert "<a" not in html
    assert "href" not in html


def test_markdown_keeps_single_line_breaks():
    assert render_markdown("one\ntwo") == "<p>one<br>\ntwo</p>\n"


# --- Video embeds --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "https://www.youtube.com/watch?v=dQw4w9WgXcQ&t=10",
            "https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ",
        ),
        (
            "https://youtu.be/abc_DEF-1",
            "https://www.youtube-nocookie.com/embed/abc_DEF-1",
        ),
        ("https://vimeo.com/76979871", "https://player.vimeo.com/video/76979871"),
        (
            "https://player.vimeo.com/video/76979871",
            "https://player.vimeo.com/video/76979871",
        ),
        (
            "https://www.loom.com/share/0281766fa2d04bb788eaf19e65135184",
            "https://www.loom.com/embed/0281766fa2d04bb788eaf19e65135184",
        ),
        (
            "https://fast.wistia.net/embed/iframe/26sk4lmiix",
            "https://fast.wistia.net/embed/iframe/26sk4lmiix",
        ),
    ],
)
def test_video_embed_url_of_allowed_host(url, expected):
    assert video_embed_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "https://videos.example.com/intro.mp4",
        "http://www.youtube.com/watch?v=dQw4w9WgXcQ",
        "https://youtube.com.evil.example/watch?v=dQw4w9WgXcQ",
        "https://www.youtube.com/watch?v=<script>",
        "javascript:alert(1)",
        "",
    ],
)
def test_video_embed_url_rejects_others(url):
    assert video_embed_url(url) is None


def test_video_page_embeds_allowed_player(client, learner):
    course, lesson = lesson_of_kind(
        LessonKind.VIDEO, url="https://youtu.be/dQw4w9WgXcQ"
    )
    enroll_contact(learner, course)
    sign_in(client, learner)

    content = client.get(lesson_url(course, lesson)).content.decode()

    assert (
        'src="https://www.youtube-nocookie.com/embed/dQw4w9WgXcQ?enablejsapi=1&amp;'
        'origin=http%3A%2F%2Ftestserver&amp;rel=0"' in content
    )
    assert "Open the lesson material" not in content


def test_video_page_plays_uploaded_file(client, learner):
    course, lesson = lesson_of_kind(LessonKind.VIDEO)
    attach(lesson, "intro.webm", WEBM_HEAD)
    enrollment = enroll_contact(learner, course)
    LessonProgress.objects.create(
        enrollment=enrollment,
        lesson=lesson,
        started_at=enrollment.enrolled_at,
        position_seconds=37,
    )
    sign_in(client, learner)

    content = client.get(lesson_url(course, lesson)).content.decode()

    assert f'src="{lesson_url(course, lesson)}file/"' in content
    assert 'data-resume-position="37"' in content
    assert "Resuming at 37 s" in content


# --- Uploads ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "name", "content"),
    [
        (LessonKind.VIDEO, "intro.webm", WEBM_HEAD),
        (LessonKind.VIDEO, "intro.MP4", MP4_HEAD),
        (LessonKind.PDF, "guide.pdf", PDF_BYTES),
        (LessonKind.FILE, "data.csv", b"name,seats\nAcme,12\n"),
        (LessonKind.FILE, "guide.pdf", PDF_BYTES),
    ],
)
def test_upload_accepted(kind, name, content):
    validate_lesson_file(kind, name, len(content), io.BytesIO(content))


@pytest.mark.parametrize(
    ("kind", "name", "content", "reason"),
    [
        (LessonKind.VIDEO, "intro.avi", WEBM_HEAD, "extension .avi is not one of"),
        (LessonKind.VIDEO, "intro.webm", PDF_BYTES, "its content is not a WebM"),
        (LessonKind.PDF, "guide.pdf", b"<html>not a pdf</html>", "not a PDF"),
        (LessonKind.PDF, "guide", PDF_BYTES, "extension (none)"),
        (LessonKind.FILE, "setup.exe", b"MZ\x90\x00", "extension .exe"),
        (LessonKind.FILE, "data.csv", b"a,b\x00\x01", "not a CSV file"),
        (LessonKind.TEXT, "notes.pdf", PDF_BYTES, "Text lessons take no file"),
    ],
)
def test_upload_rejected_with_reason(kind, name, content, reason):
    with pytest.raises(ValidationError) as raised:
        validate_lesson_file(kind, name, len(content), io.BytesIO(content))

    assert reason in raised.value.messages[0]


def test_upload_over_size_rejected():
    with pytest.raises(ValidationError) as raised:
        validate_lesson_file(
            LessonKind.PDF, "big.pdf", 51 * MEGABYTE, io.BytesIO(PDF_BYTES)
        )

    assert "51.0 MB, over the limit of 50 MB" in raised.value.messages[0]


def admin_form(lesson, data: dict, files: dict | None = None) -> LessonAdminForm:
    fields = {
        "module": lesson.module_id,
        "title": lesson.title,
        "kind": lesson.kind,
        "body": "",
        "url": "",
        "order": 1,
        "is_required": "on",
    }
    fields.update(data)
    uploads = MultiValueDict({name: [file] for name, file in (files or {}).items()})
    return LessonAdminForm(data=fields, files=uploads, instance=lesson)


def test_admin_form_rejects_wrong_file_for_kind():
    _course, lesson = lesson_of_kind(LessonKind.PDF)
    upload = SimpleUploadedFile("slides.pptx", b"PK\x03\x04rest")

    form = admin_form(lesson, {}, {"file": upload})

    assert not form.is_valid()
    assert "extension .pptx is not one of .pdf" in form.errors["file"][0]


def test_admin_form_saves_valid_pdf(lesson_files):
    _course, lesson = lesson_of_kind(LessonKind.PDF)
    upload = SimpleUploadedFile("guide.pdf", PDF_BYTES, content_type="text/html")

    form = admin_form(lesson, {}, {"file": upload})

    assert form.is_valid(), form.errors
    saved = form.save()
    assert saved.file.name.endswith("/guide.pdf")
    assert (lesson_files / saved.file.name).read_bytes() == PDF_BYTES


def test_admin_form_rejects_video_host():
    _course, lesson = lesson_of_kind(LessonKind.VIDEO)

    form = admin_form(lesson, {"url": "https://videos.example.com/intro"})

    assert not form.is_valid()
    assert "not a video address that can be embedded" in form.errors["url"][0]
    assert "youtube.com" in form.errors["url"][0]


def test_admin_form_requires_session_start():
    _course, lesson = lesson_of_kind(LessonKind.LIVE_SESSION)

    form = admin_form(lesson, {"url": "https://meet.example.com/abc"})

    assert not form.is_valid()
    assert "start date and time" in form.errors["starts_at"][0]


# --- Serving files -------------------------------------------------------------


def test_file_served_to_enrolled_learner(client, learner):
    course, lesson = lesson_of_kind(LessonKind.PDF)
    attach(lesson, "guide.pdf", PDF_BYTES)
    enroll_contact(learner, course)
    sign_in(client, learner)

    response = client.get(lesson_url(course, lesson) + "file/")

    assert response.status_code == 200
    assert b"".join(response.streaming_content) == PDF_BYTES
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"].startswith("inline")
    assert response["Accept-Ranges"] == "bytes"
    # The PDF is shown in the lesson page's frame, so same-origin framing is allowed.
    assert response["X-Frame-Options"] == "SAMEORIGIN"


def test_download_lesson_sent_as_attachment(client, learner):
    course, lesson = lesson_of_kind(LessonKind.FILE)
    attach(lesson, "seats.csv", b"name,seats\n")
    enroll_contact(learner, course)
    sign_in(client, learner)

    response = client.get(lesson_url(course, lesson) + "file/")

    assert response["Content-Disposition"].startswith("attachment")
    assert 'filename="seats.csv"' in response["Content-Disposition"]


def test_file_range_request_gets_206(client, learner):
    course, lesson = lesson_of_kind(LessonKind.VIDEO)
    content = bytes(range(256)) * 4
    attach(lesson, "intro.webm", WEBM_HEAD + content)
    enroll_contact(learner, course)
    sign_in(client, learner)
    url = lesson_url(course, lesson) + "file/"
    size = len(WEBM_HEAD + content)

    middle = client.get(url, HTTP_RANGE="bytes=10-19")
    tail = client.get(url, HTTP_RANGE="bytes=-5")
    open_end = client.get(url, HTTP_RANGE=f"bytes={size - 3}-")
    outside = client.get(url, HTTP_RANGE=f"bytes={size}-")

    assert middle.status_code == 206
    assert b"".join(middle.streaming_content) == (WEBM_HEAD + content)[10:20]
    assert middle["Content-Range"] == f"bytes 10-19/{size}"
    assert middle["Content-Length"] == "10"
    assert b"".join(tail.streaming_content) == (WEBM_HEAD + content)[-5:]
    assert b"".join(open_end.streaming_content) == (WEBM_HEAD + content)[-3:]
    assert outside.status_code == 416
    assert outside["Content-Range"] == f"bytes */{size}"


def test_file_of_other_learner_not_found(client, learner):
    course, lesson = lesson_of_kind(LessonKind.PDF)
    attach(lesson, "guide.pdf", PDF_BYTES)
    enroll_contact(learner, course)
    sign_in(client, make_contact())

    assert client.get(lesson_url(course, lesson) + "file/").status_code == 404


def test_lesson_without_file_not_found(client, learner):
    course, lesson = lesson_of_kind(LessonKind.PDF)
    enroll_contact(learner, course)
    sign_in(client, learner)

    assert client.get(lesson_url(course, lesson) + "file/").status_code == 404


def test_download_page_shows_link_and_size(client, learner):
    course, lesson = lesson_of_kind(LessonKind.FILE)
    attach(lesson, "seats.csv", b"x" * 2048)
    enroll_contact(learner, course)
    sign_in(client, learner)

    content = client.get(lesson_url(course, lesson)).content.decode()

    assert f'href="{lesson_url(course, lesson)}file/" download' in content
    assert "2.0\xa0KB" in content


def test_download_page_with_file_gone_from_storage(client, learner):
    course, lesson = lesson_of_kind(LessonKind.FILE)
    attach(lesson, "seats.csv", b"name,seats\n")
    lesson.file.storage.delete(lesson.file.name)
    enroll_contact(learner, course)
    sign_in(client, learner)

    response = client.get(lesson_url(course, lesson))

    assert response.status_code == 200
    assert "This file is not available yet." in response.content.decode()
    assert f"{lesson_url(course, lesson)}file/" not in response.content.decode()


def test_pdf_page_shows_file_inline(client, learner):
    course, lesson = lesson_of_kind(LessonKind.PDF)
    attach(lesson, "guide.pdf", PDF_BYTES)
    enroll_contact(learner, course)
    sign_in(client, learner)

    content = client.get(lesson_url(course, lesson)).content.decode()

    assert f'data="{lesson_url(course, lesson)}file/" type="application/pdf"' in content


# --- Checklists --------------------------------------------------------------------


def checklist_lesson(steps: int):
    course, lesson = lesson_of_kind(LessonKind.CHECKLIST)
    items = [
        ChecklistItem.objects.create(lesson=lesson, text=f"Step {n}", order=n)
        for n in range(1, steps + 1)
    ]
    return course, lesson, items


def test_ticking_every_item_completes_lesson(learner):
    course, lesson, items = checklist_lesson(2)
    enrollment = enroll_contact(learner, course)

    partly = save_checklist(enrollment, lesson, [items[0].pk])
    fully = save_checklist(enrollment, lesson, [items[0].pk, items[1].pk])

    assert partly is False
    assert fully is True
    assert ChecklistTick.objects.filter(enrollment=enrollment).count() == 2
    progress = LessonProgress.objects.get(enrollment=enrollment, lesson=lesson)
    assert progress.completed_at is not None


def test_unticking_keeps_completion(learner):
    course, lesson, items = checklist_lesson(1)
    enrollment = enroll_contact(learner, course)
    save_checklist(enrollment, lesson, [items[0].pk])

    save_checklist(enrollment, lesson, [])

    assert not ChecklistTick.objects.filter(enrollment=enrollment).exists()
    progress = LessonProgress.objects.get(enrollment=enrollment, lesson=lesson)
    assert progress.completed_at is not None


def test_checklist_rejects_foreign_item(learner):
    course, lesson, _items = checklist_lesson(1)
    _other_course, _other_lesson, other_items = checklist_lesson(1)
    enrollment = enroll_contact(learner, course)

    with pytest.raises(ValueError, match=f"Item {other_items[0].pk} is not on"):
        save_checklist(enrollment, lesson, [other_items[0].pk])

    assert not ChecklistTick.objects.exists()


def test_checklist_page_ticks_and_saves(client, learner):
    course, lesson, items = checklist_lesson(2)
    enrollment = enroll_contact(learner, course)
    sign_in(client, learner)
    url = lesson_url(course, lesson)

    page = client.get(url).content.decode()
    response = client.post(url + "checklist/", {"item": [items[1].pk]}, follow=True)

    assert f'name="item" value="{items[0].pk}"' in page
    assert "Mark complete" not in page
    assert "Your checklist is saved." in response.content.decode()
    assert f'value="{items[1].pk}" id="item-{items[1].pk}" checked' in (
        response.content.decode()
    )
    assert list(
        ChecklistTick.objects.filter(enrollment=enrollment).values_list(
            "item_id", flat=True
        )
    ) == [items[1].pk]


def test_checklist_post_of_other_learner_not_found(client, learner):
    course, lesson, items = checklist_lesson(1)
    enroll_contact(learner, course)
    sign_in(client, make_contact())

    response = client.post(
        lesson_url(course, lesson) + "checklist/", {"item": [items[0].pk]}
    )

    assert response.status_code == 404
    assert not ChecklistTick.objects.exists()


def test_checklist_not_completed_by_button(client, learner):
    course, lesson, _items = checklist_lesson(1)
    enroll_contact(learner, course)
    sign_in(client, learner)

    response = client.post(lesson_url(course, lesson) + "complete/", follow=True)

    assert "completed by ticking every step" in response.content.decode()
    assert not LessonProgress.objects.filter(completed_at__isnull=False).exists()


def test_usage_event_ticks_step(learner):
    course, lesson, items = checklist_lesson(2)
    items[0].event_name = "Report Created"
    items[0].save()
    enrollment = enroll_contact(learner, course)
    make_event(learner, NOW, name="Report Created")
    # Another contact's event and another name tick nothing.
    make_event(make_contact(account=learner.account), NOW, name="Logo Uploaded")
    items[1].event_name = "Logo Uploaded"
    items[1].save()

    new = tick_by_events(enrollment, lesson, at=NOW)
    again = tick_by_events(enrollment, lesson, at=NOW)

    assert new == 1
    assert again == 0
    ticked = ChecklistTick.objects.filter(enrollment=enrollment)
    assert list(ticked.values_list("item_id", flat=True)) == [items[0].pk]
    assert not LessonProgress.objects.filter(completed_at__isnull=False).exists()


def test_usage_event_on_last_step_completes(learner):
    course, lesson, items = checklist_lesson(1)
    items[0].event_name = "Report Created"
    items[0].save()
    enrollment = enroll_contact(learner, course)
    make_event(learner, NOW, name="Report Created")

    tick_by_events(enrollment, lesson, at=NOW)

    progress = LessonProgress.objects.get(enrollment=enrollment, lesson=lesson)
    assert progress.completed_at == NOW


def test_checklist_page_ticks_by_event(client, learner):
    course, lesson, items = checklist_lesson(1)
    items[0].event_name = "Report Created"
    items[0].save()
    enroll_contact(learner, course)
    make_event(learner, NOW, name="Report Created")
    sign_in(client, learner)

    content = client.get(lesson_url(course, lesson)).content.decode()

    assert f'id="item-{items[0].pk}" checked' in content
    assert "(ticked when you do it in the product)" in content
    assert "Completed on" in content


# --- Live sessions -------------------------------------------------------------

SESSION_START = datetime(2026, 3, 10, 15, 30, tzinfo=UTC)


def session_lesson():
    return lesson_of_kind(
        LessonKind.LIVE_SESSION,
        title="Admin Q&A; reports, seats",
        starts_at=SESSION_START,
        duration_minutes=45,
        url="https://meet.example.com/abc-defg",
    )


def test_session_shown_in_learner_time_zone(client):
    # Tokyo is UTC+9 all year, so 15:30 UTC is 00:30 the next day there.
    learner = make_contact(time_zone="Asia/Tokyo")
    course, lesson = session_lesson()
    enroll_contact(learner, course)
    sign_in(client, learner)

    content = client.get(lesson_url(course, lesson)).content.decode()

    assert "Wednesday 11 March 2026, 00:30" in content
    assert "to <time" in content and ">01:15</time>" in content
    assert "(Asia/Tokyo time)" in content
    assert 'href="https://meet.example.com/abc-defg"' in content
    assert "session.ics" in content


def test_session_falls_back_to_account_zone(client):
    # New York is UTC-4 on 10 March 2026, after the change to summer time on 8 March.
    learner = make_contact(account=make_account(time_zone="America/New_York"))
    course, lesson = session_lesson()
    enroll_contact(learner, course)
    sign_in(client, learner)

    content = client.get(lesson_url(course, lesson)).content.decode()

    assert "Tuesday 10 March 2026, 11:30" in content
    assert "(America/New_York time)" in content


def test_session_ics_download(client, learner):
    course, lesson = session_lesson()
    enroll_contact(learner, course)
    sign_in(client, learner)

    response = client.get(lesson_url(course, lesson) + "session.ics")

    body = response.content.decode()
    assert response["Content-Type"] == "text/calendar; charset=utf-8"
    assert response["Content-Disposition"].startswith("attachment")
    assert "DTSTART:20260310T153000Z\r\n" in body
    assert "DTEND:20260310T161500Z\r\n" in body
    assert "SUMMARY:Admin Q&A\\; reports\\, seats\r\n" in body
    assert f"UID:lesson-{lesson.pk}@testserver\r\n" in body
    assert body.startswith("BEGIN:VCALENDAR\r\n")
    assert body.endswith("END:VCALENDAR\r\n")


def test_ics_lines_folded_at_75_octets():
    _course, lesson = session_lesson()
    lesson.title = "Ö" * 100

    body = session_ics(lesson, "https://learn.example.com/x", "learn.example.com")

    for line in body.split("\r\n"):
        assert len(line.encode()) <= 75
    unfolded = body.replace("\r\n ", "")
    assert "SUMMARY:" + "Ö" * 100 + "\r\n" in unfolded


def test_session_ics_of_other_learner_not_found(client, learner):
    course, lesson = session_lesson()
    enroll_contact(learner, course)
    sign_in(client, make_contact())

    assert client.get(lesson_url(course, lesson) + "session.ics").status_code == 404


def test_attendance_completes_session(learner):
    course, lesson = session_lesson()
    enrollment = enroll_contact(learner, course)
    csm = User.objects.create_user("csm", password="a long password", is_staff=True)

    record_attendance(enrollment, lesson, attended=True, recorded_by=csm)
    record_attendance(enrollment, lesson, attended=False, recorded_by=csm)

    attendance = Attendance.objects.get()
    assert attendance.attended is False
    assert attendance.recorded_by == csm
    progress = LessonProgress.objects.get(enrollment=enrollment, lesson=lesson)
    assert progress.completed_at is not None


def test_attendance_of_only_lesson_completes_course(learner):
    course, lessons = make_course(1)
    lesson = lessons[0]
    lesson.kind = LessonKind.LIVE_SESSION
    lesson.starts_at = SESSION_START
    lesson.save()
    enrollment = enroll_contact(learner, course)

    record_attendance(enrollment, lesson, attended=True)

    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED


def test_attendance_rejects_other_kind(learner):
    course, lessons = make_course(1)
    enrollment = enroll_contact(learner, course)

    with pytest.raises(ValueError, match="live sessions only"):
        record_attendance(enrollment, lessons[0], attended=True)

    assert not Attendance.objects.exists()


def test_admin_records_attendance(admin_client, learner):
    course, lesson = session_lesson()
    enrollment = enroll_contact(learner, course)
    url = f"/admin/courses/lesson/{lesson.pk}/change/"
    form = admin_client.get(url).context["adminform"].form
    data = {name: form.initial.get(name, "") for name in form.fields if name != "file"}
    data.update(
        {
            "module": lesson.module_id,
            "is_required": "on",
            "starts_at_0": "2026-03-10",
            "starts_at_1": "15:30:00",
            "attendances-TOTAL_FORMS": "1",
            "attendances-INITIAL_FORMS": "0",
            "attendances-0-enrollment": str(enrollment.pk),
            "attendances-0-attended": "on",
            "attendances-0-lesson": str(lesson.pk),
        }
    )
    data = {key: value for key, value in data.items() if value is not None}

    response = admin_client.post(url, data)

    assert response.status_code == 302, response.context["errors"]
    attendance = Attendance.objects.get()
    assert attendance.attended is True
    assert attendance.recorded_by is not None
    progress = LessonProgress.objects.get(enrollment=enrollment, lesson=lesson)
    assert progress.completed_at is not None


def test_session_not_completed_by_button(client, learner):
    course, lesson = session_lesson()
    enroll_contact(learner, course)
    sign_in(client, learner)

    response = client.post(lesson_url(course, lesson) + "complete/", follow=True)

    assert "records that you attended" in response.content.decode()
    assert not LessonProgress.objects.filter(completed_at__isnull=False).exists()


# --- Query counts ------------------------------------------------------------------


def count_lesson_queries(kind: str, enrollment_total: int) -> int:
    contact = make_contact()
    course, lesson = lesson_of_kind(kind, starts_at=SESSION_START)
    if kind == LessonKind.CHECKLIST:
        ChecklistItem.objects.create(lesson=lesson, text="Step", order=1)
    enroll_contact(contact, course)
    for _ in range(enrollment_total - 1):
        other, _lessons = make_course(1)
        enroll_contact(contact, other)
    client = sign_in(Client(), contact)
    client.get(lesson_url(course, lesson))

    with CaptureQueriesContext(connection) as queries:
        response = client.get(lesson_url(course, lesson))
    assert response.status_code == 200
    return len(queries.captured_queries)


@pytest.mark.parametrize(
    "kind",
    [LessonKind.TEXT, LessonKind.VIDEO, LessonKind.CHECKLIST, LessonKind.LIVE_SESSION],
)
def test_lesson_query_count_constant(kind):
    assert count_lesson_queries(kind, 2) == count_lesson_queries(kind, 12)
