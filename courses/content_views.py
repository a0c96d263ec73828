"""Portal endpoints of lesson content: files, calendar files, checklists, heartbeats.

Each looks the lesson up through the signed-in contact's own enrollment,
so another learner's lesson is a 404, as on the lesson page.
"""

import logging
import re
from collections.abc import Iterator
from typing import IO

from django.contrib import messages
from django.http import (
    FileResponse,
    Http404,
    HttpRequest,
    HttpResponse,
    JsonResponse,
    StreamingHttpResponse,
)
from django.http.response import HttpResponseBase
from django.shortcuts import redirect
from django.urls import Resolver404, ResolverMatch, resolve
from django.views.csrf import csrf_failure as django_csrf_failure
from django.views.decorators.cache import never_cache
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET, require_POST

from courses.content import save_checklist, session_ics
from courses.heartbeats import parse_heartbeat, record_heartbeat
from courses.models import Lesson, LessonKind
from courses.portal_session import signed_in_contact_id
from courses.services import lesson_path
from courses.uploads import file_type_of
from courses.views import contact_required, enrolled_lesson
from customers.models import Contact

logger = logging.getLogger(__name__)

# Lesson kinds whose file the browser shows in the page; others download.
INLINE_KINDS = (LessonKind.VIDEO, LessonKind.PDF)

# Bytes per chunk when streaming part of a file.
CHUNK_BYTES = 64 * 1024

# A byte range as RFC 9110 (14.1.2) writes it: "bytes=first-last",
# "bytes=first-" or "bytes=-suffix". The unit is case-insensitive.
RANGE_PATTERN = re.compile(r"bytes=([0-9]*)-([0-9]*)", re.ASCII | re.IGNORECASE)


class UnsatisfiableRange(ValueError):
    """A valid byte range that starts at or past the end of the file."""


def _requested_range(request: HttpRequest, size: int) -> tuple[int, int] | None:
    """Return the (first, last) byte of a single-range request, or None to send all.

    Follows RFC 9110, section 14.2: a Range header that is not one valid
    byte range is ignored, so the whole file is sent. That covers another
    unit, a syntax error, "bytes=5-2" (last before first), several ranges,
    which this server may ignore, and any If-Range, whose validator cannot
    match because these responses carry none. Raises UnsatisfiableRange
    for a valid range that starts at or past the end of the file, and for
    "bytes=-0", which get a 416 response.
    """
    header = request.headers.get("Range", "")
    if not header or "If-Range" in request.headers or size == 0:
        return None
    match = RANGE_PATTERN.fullmatch(header)
    if match is None:
        return None
    first_text, last_text = match.groups()
    if not first_text:
        if not last_text:
            return None
        # "bytes=-N" requests the last N bytes; the whole file when N is larger.
        suffix = int(last_text)
        if suffix == 0:
            raise UnsatisfiableRange("bytes=-0 selects no byte")
        return max(0, size - suffix), size - 1
    first = int(first_text)
    if last_text and int(last_text) < first:
        return None
    last = int(last_text) if last_text else size - 1
    if first >= size:
        raise UnsatisfiableRange(f"range {first}-{last} starts past byte {size - 1}")
    return first, min(last, size - 1)


def _read_range(handle: IO[bytes], first: int, last: int) -> Iterator[bytes]:
    try:
        handle.seek(first)
        remaining = last - first + 1
        while remaining > 0:
            chunk = handle.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield chunk
    finally:
        handle.close()


@contact_required
@require_GET
@xframe_options_sameorigin
def lesson_file(
    request: HttpRequest, contact: Contact, slug: str, lesson_id: int
) -> HttpResponseBase:
    """Send the lesson's file to an enrolled learner, whole or the range requested."""
    _enrollment, lesson = enrolled_lesson(contact, slug, lesson_id)
    return lesson_file_response(request, lesson)


def lesson_file_response(request: HttpRequest, lesson: Lesson) -> HttpResponseBase:
    """Send the lesson's file, whole or the byte range requested, and write nothing.

    Browsers request byte ranges to seek in a video and to start it at a
    saved position, so a single range gets a 206 response. The caller has
    checked who may read the file. The portal and the staff preview share
    this function, so both send the same content types and ranges. Raises
    404 when the lesson has no file or the stored file is gone.
    """
    file_type = file_type_of(lesson.file.name) if lesson.file else None
    if file_type is None or not lesson.file.storage.exists(lesson.file.name):
        raise Http404("This lesson has no file.")
    size = lesson.file.size
    as_attachment = lesson.kind not in INLINE_KINDS
    filename = lesson.file.name.rsplit("/", 1)[-1]

    try:
        byte_range = _requested_range(request, size)
    except UnsatisfiableRange:
        response = HttpResponse(status=416)
        response["Content-Range"] = f"bytes */{size}"
        return response

    if byte_range is None:
        whole = FileResponse(
            lesson.file.open("rb"),
            as_attachment=as_attachment,
            filename=filename,
            content_type=file_type.content_type,
        )
        whole["Accept-Ranges"] = "bytes"
        whole["Cache-Control"] = "private, max-age=3600"
        return whole

    first, last = byte_range
    partial = StreamingHttpResponse(
        _read_range(lesson.file.open("rb"), first, last),
        status=206,
        content_type=file_type.content_type,
    )
    partial["Content-Range"] = f"bytes {first}-{last}/{size}"
    partial["Content-Length"] = str(last - first + 1)
    partial["Accept-Ranges"] = "bytes"
    partial["Cache-Control"] = "private, max-age=3600"
    return partial


@contact_required
@require_GET
def session_calendar(
    request: HttpRequest, contact: Contact, slug: str, lesson_id: int
) -> HttpResponse:
    """Send a live session as an .ics file for the learner's calendar."""
    enrollment, lesson = enrolled_lesson(contact, slug, lesson_id)
    if lesson.kind != LessonKind.LIVE_SESSION or lesson.starts_at is None:
        raise Http404("This lesson is not a scheduled live session.")
    page_url = request.build_absolute_uri(lesson_path(enrollment.course, lesson))
    body = session_ics(lesson, page_url, request.get_host())
    response = HttpResponse(body, content_type="text/calendar; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="session-{lesson.pk}.ics"'
    return response


@contact_required
@require_POST
def checklist(
    request: HttpRequest, contact: Contact, slug: str, lesson_id: int
) -> HttpResponse:
    """Save the ticked items of a checklist lesson and go back to it."""
    enrollment, lesson = enrolled_lesson(contact, slug, lesson_id)
    if lesson.kind != LessonKind.CHECKLIST:
        raise Http404("This lesson is not a checklist.")
    try:
        item_ids = [int(value) for value in request.POST.getlist("item")]
        all_ticked = save_checklist(enrollment, lesson, item_ids)
    except ValueError as exc:
        logger.info(
            "Checklist of lesson %s rejected for enrollment %s: %s",
            lesson.pk,
            enrollment.pk,
            exc,
        )
        messages.error(request, _learner_message(exc))
        return redirect(lesson_path(enrollment.course, lesson))

    if all_ticked:
        messages.success(request, f"Every step of “{lesson.title}” is done.")
    else:
        messages.success(request, "Your checklist is saved.")
    return redirect(lesson_path(enrollment.course, lesson))


def _learner_message(exc: ValueError) -> str:
    text = str(exc)
    # int() of a tampered value raises "invalid literal ...", which a learner
    # would not understand.
    if text.startswith("invalid literal"):
        return "The checklist form was not valid; reload the page and tick again."
    return text


@never_cache
@require_POST
def heartbeat(request: HttpRequest, slug: str, lesson_id: int) -> HttpResponse:
    """Count the learner's active time on a lesson; see courses.heartbeats.

    Returns JSON: 200 whether or not the heartbeat was counted (a replay is
    not an error), 400 for a malformed one, 403 when signed out, and 404
    for a lesson that is not the user's own.
    """
    if not request.user.is_authenticated:
        return JsonResponse(
            {"error": "You are signed out; sign in again to record your progress."},
            status=403,
        )
    contact_id = signed_in_contact_id(request)
    if contact_id is None:
        return JsonResponse({"error": "Lesson not found."}, status=404)
    try:
        beat = parse_heartbeat(request.POST)
        result = record_heartbeat(contact_id, slug, lesson_id, beat)
    except ValueError as exc:
        logger.info("Heartbeat for lesson %s rejected: %s", lesson_id, exc)
        return JsonResponse({"error": str(exc)}, status=400)
    if result is None:
        return JsonResponse({"error": "Lesson not found."}, status=404)
    return JsonResponse(
        {
            "accepted": result.accepted,
            "reason": result.reason,
            "credited_seconds": result.credited_seconds,
            "time_spent_seconds": result.time_spent_seconds,
            "completed": result.completed,
        }
    )


def csrf_failure(request: HttpRequest, reason: str = "") -> HttpResponse:
    """Return the response to a failed CSRF check: JSON for heartbeats, else HTML.

    The lesson page's script reads heartbeat responses as JSON, so a
    missing or stale token gets a message it can show, as other errors do.
    settings.CSRF_FAILURE_VIEW points here.
    """
    match = getattr(request, "resolver_match", None) or _resolve(request.path_info)
    if match is not None and match.view_name == "portal:heartbeat":
        logger.info("Heartbeat rejected by the CSRF check: %s", reason)
        return JsonResponse(
            {
                "error": "The heartbeat's CSRF token is missing or invalid "
                f"({reason}); reload the lesson page to get a new one."
            },
            status=403,
        )
    return django_csrf_failure(request, reason=reason)


def _resolve(path: str) -> ResolverMatch | None:
    try:
        return resolve(path)
    except Resolver404:
        return None
