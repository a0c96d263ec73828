"""Lesson content: Markdown text, video embeds, live sessions and checklists.

The portal's lesson page and the admin call these; what they write goes
through courses.services so completion and its signals stay in one place.
"""

import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from urllib.parse import SplitResult, parse_qs, urlencode, urlsplit

import nh3
from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.core.cache import cache as django_cache
from django.db import transaction
from django.db.models import Exists, OuterRef
from django.utils import timezone
from django.utils.safestring import SafeString, mark_safe
from markdown_it import MarkdownIt

from courses.models import (
    Attendance,
    ChecklistItem,
    ChecklistTick,
    Enrollment,
    Lesson,
    LessonKind,
)
from courses.services import complete_lesson, lesson_of_course, lock_enrollment
from customers.models import Contact, UsageEvent
from customers.time_zones import load_time_zone

logger = logging.getLogger(__name__)

# --- Markdown -------------------------------------------------------------------

# The tags that Markdown produces, and nothing else survives cleaning.
MARKDOWN_TAGS = {
    "a",
    "blockquote",
    "br",
    "code",
    "del",
    "em",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "hr",
    "img",
    "li",
    "ol",
    "p",
    "pre",
    "s",
    "strong",
    "table",
    "tbody",
    "td",
    "th",
    "thead",
    "tr",
    "ul",
}
MARKDOWN_ATTRIBUTES = {
    "a": {"href", "title"},
    "img": {"src", "alt", "title"},
    "ol": {"start"},
    "td": {"style"},
    "th": {"style"},
}
LINK_SCHEMES = {"http", "https", "mailto"}


@cache
def _markdown() -> MarkdownIt:
    # CommonMark with raw HTML off, so typed HTML is shown as text. A single
    # line break stays a line break, as lesson text was plain text before.
    return MarkdownIt("commonmark", {"html": False, "breaks": True}).enable(
        ["table", "strikethrough"]
    )


def render_markdown(text: str) -> SafeString:
    """Render lesson text from Markdown to HTML that is safe to put in a page.

    markdown-it-py escapes raw HTML and drops javascript: links, and nh3
    then keeps only MARKDOWN_TAGS with their listed attributes and links
    with LINK_SCHEMES, so a bug in either one alone lets no script through.
    An image from another host is dropped (its alt text stays), because
    the portal loads nothing from other sites.
    """
    html = _markdown().render(text)
    cleaned = nh3.clean(
        html,
        tags=MARKDOWN_TAGS,
        attributes=MARKDOWN_ATTRIBUTES,
        url_schemes=LINK_SCHEMES,
        link_rel="noopener noreferrer",
        filter_style_properties={"text-align"},
        attribute_filter=_drop_remote_image,
    )
    return mark_safe(cleaned)


# Rendered lesson text is cached per process, keyed by a hash of the
# Markdown, so an edited lesson gets a new key and never shows stale text.
LESSON_HTML_CACHE_SECONDS = 24 * 60 * 60
# Bump when render_markdown's output changes for the same text.
LESSON_HTML_VERSION = 1


def markdown_html(text: str) -> SafeString:
    """Return a lesson's text rendered by render_markdown, from the cache when there.

    Without the cache every page view renders and cleans the text again. The
    key is the SHA-256 of the text, so two lessons with the same text share it.
    """
    if not text:
        return mark_safe("")
    digest = hashlib.sha256(text.encode()).hexdigest()
    key = f"lesson-html:{LESSON_HTML_VERSION}:{digest}"
    html = django_cache.get(key)
    if html is None:
        html = str(render_markdown(text))
        django_cache.set(key, html, LESSON_HTML_CACHE_SECONDS)
    return mark_safe(html)


def is_local_url(url: str) -> bool:
    """Return whether a URL stays on this site: a path, with no scheme or host.

    Browsers read a backslash as a slash in http(s) URLs, so "/\\evil.example"
    and "\\\\evil.example" would reach another host. Any backslash, control
    character or space therefore makes the URL not local.
    """
    if not url or "\\" in url or any(ord(char) <= 0x20 for char in url):
        return False
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return not parts.scheme and not parts.netloc and not url.startswith("//")


def _drop_remote_image(tag: str, attribute: str, value: str) -> str | None:
    # nh3 calls this for each attribute it keeps; None removes the attribute.
    # An image without src loads nothing, and browsers show its alt text.
    if tag == "img" and attribute == "src" and not is_local_url(value):
        return None
    return value


# --- Video embeds -----------------------------------------------------------------

# Hosts whose players a video lesson may embed, and the player address for
# a video id on each. Any other address is rejected in the admin.
YOUTUBE_PLAYER = "https://www.youtube-nocookie.com/embed/{id}"
VIMEO_PLAYER = "https://player.vimeo.com/video/{id}"
LOOM_PLAYER = "https://www.loom.com/embed/{id}"
WISTIA_PLAYER = "https://fast.wistia.net/embed/iframe/{id}"

VIDEO_EMBED_HOSTS = (
    "youtube.com",
    "youtu.be",
    "youtube-nocookie.com",
    "vimeo.com",
    "loom.com",
    "wistia.net",
    "wistia.com",
)


def _clean_id(value: str) -> str | None:
    # Video ids of these hosts are letters, digits, hyphens and underscores.
    value = value.strip()
    if value and all(char.isalnum() or char in "-_" for char in value):
        return value
    return None


def _youtube_id(host: str, parts: list[str], query: str) -> str | None:
    if host == "youtu.be":
        return _clean_id(parts[0]) if parts else None
    if parts[:1] == ["watch"]:
        return _clean_id(parse_qs(query).get("v", [""])[0])
    if len(parts) >= 2 and parts[0] in ("embed", "shorts", "live"):
        return _clean_id(parts[1])
    return None


def video_embed_url(url: str) -> str | None:
    """Return the player address to embed for a video page on an allowed host.

    Accepts the usual share forms, such as youtube.com/watch?v=ID, youtu.be/ID,
    vimeo.com/ID, loom.com/share/ID and fast.wistia.net/embed/iframe/ID.
    Returns None for any other host, scheme or form.
    """
    parts = _strict_https_parts(url.strip())
    if parts is None:
        return None
    host = parts.netloc.lower().removeprefix("www.").removeprefix("m.")
    if host not in _embed_hosts():
        return None
    segments = [segment for segment in parts.path.split("/") if segment]

    if host in ("youtube.com", "youtu.be", "youtube-nocookie.com"):
        video_id = _youtube_id(host, segments, parts.query)
        return YOUTUBE_PLAYER.format(id=video_id) if video_id else None
    if host in ("vimeo.com", "player.vimeo.com"):
        video_id = _clean_id(segments[-1]) if segments else None
        return VIMEO_PLAYER.format(id=video_id) if video_id else None
    if host == "loom.com" and len(segments) == 2 and segments[0] in ("share", "embed"):
        video_id = _clean_id(segments[1])
        return LOOM_PLAYER.format(id=video_id) if video_id else None
    if host in ("fast.wistia.net", "fast.wistia.com") and segments[:2] == [
        "embed",
        "iframe",
    ]:
        video_id = _clean_id(segments[2]) if len(segments) > 2 else None
        return WISTIA_PLAYER.format(id=video_id) if video_id else None
    return None


# The characters of a host name: letters, digits, hyphens and dots.
HOST_NAME = re.compile(r"[a-z0-9.-]+", re.ASCII | re.IGNORECASE)


def _strict_https_parts(url: str) -> SplitResult | None:
    """Split an https URL, or return None for anything a browser might read otherwise.

    Python's urlsplit and browsers disagree on some URLs: a browser reads a
    backslash as a slash, so in "https://evil.example\\@www.youtube.com/"
    Python finds the host www.youtube.com and a browser evil.example. Such
    URLs are rejected outright: a backslash, a space or control character,
    a non-ASCII character, user information (@), a port, or a host that is
    not a plain name.
    """
    if not url.isascii() or "\\" in url or any(ord(c) <= 0x20 for c in url):
        return None
    try:
        parts = urlsplit(url)
    except ValueError:
        return None
    if parts.scheme != "https" or not HOST_NAME.fullmatch(parts.netloc):
        return None
    return parts


def embed_player_url(player_url: str, start_seconds: int, origin: str) -> str:
    """Return a player address that starts at start_seconds and reports its position.

    YouTube's and Vimeo's players send their position to the page by
    postMessage when asked (enablejsapi=1 with the page's origin, api=1),
    which static/portal/embed_player.js reads. Loom and Wistia players are
    returned unchanged, so they start at 0 and report nothing.
    """
    start = max(0, int(start_seconds))
    if player_url.startswith(YOUTUBE_PLAYER.format(id="")):
        query = {"enablejsapi": "1", "origin": origin, "rel": "0"}
        if start:
            query["start"] = str(start)
        return f"{player_url}?{urlencode(query)}"
    if player_url.startswith(VIMEO_PLAYER.format(id="")):
        return f"{player_url}?api=1" + (f"#t={start}s" if start else "")
    return player_url


@cache
def _embed_hosts() -> frozenset[str]:
    return frozenset(
        {*VIDEO_EMBED_HOSTS, "player.vimeo.com", "fast.wistia.net", "fast.wistia.com"}
    )


# --- Live sessions ----------------------------------------------------------------


@dataclass(frozen=True)
class SessionTime:
    starts_at: datetime
    ends_at: datetime | None
    # The IANA name of the zone the times are shown in.
    zone_name: str


def session_time(lesson: Lesson, contact: Contact) -> SessionTime | None:
    """Return a live session's start and end in the learner's time zone.

    The zone is the contact's, else the account's, else the site's
    (settings.TIME_ZONE). Returns None when no start time is set.
    """
    if lesson.starts_at is None:
        return None
    zone_name = _zone_name(contact)
    zone = load_time_zone(zone_name)
    starts_at = lesson.starts_at.astimezone(zone)
    ends_at = None
    if lesson.duration_minutes:
        ends_at = starts_at + timedelta(minutes=lesson.duration_minutes)
    return SessionTime(starts_at=starts_at, ends_at=ends_at, zone_name=zone_name)


def _zone_name(contact: Contact) -> str:
    for name in (contact.time_zone, contact.account.time_zone):
        if not name:
            continue
        try:
            load_time_zone(name)
        except ValueError:
            # Imported rows skip the form's check, so the next zone is used.
            logger.warning("Contact %s has an invalid time zone %r", contact.pk, name)
            continue
        return name
    return timezone.get_default_timezone_name()


# Lines of an iCalendar file are folded at 75 octets (RFC 5545, 3.1).
ICS_LINE_OCTETS = 75


def _ics_text(value: str) -> str:
    """Escape a TEXT value as RFC 5545 (3.3.11) requires.

    Backslash, semicolon and comma get a backslash, and each line break
    (CRLF, LF or a lone CR) becomes the two characters \\n. TEXT allows no
    other control characters, so they are dropped: a lone CR left in a
    value would end the content line early in some readers.
    """
    text = value.replace("\r\n", "\n").replace("\r", "\n")
    text = "".join(char for char in text if char in "\n\t" or not _is_control(char))
    return (
        text.replace("\\", "\\\\")
        .replace(";", "\\;")
        .replace(",", "\\,")
        .replace("\n", "\\n")
    )


def _is_control(char: str) -> bool:
    return ord(char) < 0x20 or ord(char) == 0x7F


def _ics_uri(value: str) -> str | None:
    """Return a URI for a URI-valued property, or None when it cannot be one.

    URI values are not escaped (RFC 5545, 3.3.13), so a value with a space
    or a control character, which could break the line, is left out.
    """
    url = value.strip()
    if not url or any(_is_control(char) or char == " " for char in url):
        return None
    return url


def _fold(line: str) -> str:
    """Fold a content line into pieces of at most 75 octets, CRLF and a space apart."""
    pieces: list[str] = []
    current = ""
    limit = ICS_LINE_OCTETS
    for char in line:
        if len((current + char).encode()) > limit:
            pieces.append(current)
            current = char
            # Continuation lines start with a space, which counts as an octet.
            limit = ICS_LINE_OCTETS - 1
        else:
            current += char
    pieces.append(current)
    return "\r\n ".join(pieces)


def _ics_utc(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


# Length of a session without a duration, in the calendar file.
DEFAULT_SESSION_MINUTES = 60


def session_ics(lesson: Lesson, page_url: str, host: str) -> str:
    """Return an iCalendar (.ics) file with one event for a live session.

    Times are in UTC, so every calendar shows them in its own zone. The UID
    is stable per lesson, so importing the file again updates the event.
    Raises ValueError when the lesson has no start time.
    """
    if lesson.starts_at is None:
        raise ValueError(f"Live session {lesson.pk} has no start time yet")
    minutes = lesson.duration_minutes or DEFAULT_SESSION_MINUTES
    ends_at = lesson.starts_at + timedelta(minutes=minutes)
    description = f"Join: {lesson.url}\n" if lesson.url else ""
    description += f"Lesson: {page_url}"
    lines = [
        "BEGIN:VCALENDAR",
        "VERSION:2.0",
        "PRODID:-//Nudgepath//Live sessions//EN",
        "CALSCALE:GREGORIAN",
        "METHOD:PUBLISH",
        "BEGIN:VEVENT",
        f"UID:lesson-{lesson.pk}@{host}",
        f"DTSTAMP:{_ics_utc(timezone.now())}",
        f"DTSTART:{_ics_utc(lesson.starts_at)}",
        f"DTEND:{_ics_utc(ends_at)}",
        f"SUMMARY:{_ics_text(lesson.title)}",
        f"DESCRIPTION:{_ics_text(description)}",
    ]
    if lesson.url:
        lines.append(f"LOCATION:{_ics_text(lesson.url)}")
        uri = _ics_uri(lesson.url)
        if uri:
            lines.append(f"URL:{uri}")
    lines += ["END:VEVENT", "END:VCALENDAR"]
    return "".join(_fold(line) + "\r\n" for line in lines)


@transaction.atomic
def record_attendance(
    enrollment: Enrollment,
    lesson: Lesson,
    attended: bool,
    recorded_by: AbstractBaseUser | AnonymousUser | None = None,
    at: datetime | None = None,
) -> Attendance:
    """Store whether a learner attended a live session; attending completes it.

    Recording absence later keeps the lesson completed, because completion
    is never taken back. Raises ValueError for a lesson of another course or
    of another kind.
    """
    recorded_at = at or timezone.now()
    lesson = lesson_of_course(enrollment, lesson)
    if lesson.kind != LessonKind.LIVE_SESSION:
        raise ValueError(
            f"Lesson {lesson.pk} is a {lesson.get_kind_display()} lesson, but "
            "attendance is recorded for live sessions only."
        )
    user = recorded_by if isinstance(recorded_by, AbstractBaseUser) else None
    attendance, _created = Attendance.objects.update_or_create(
        enrollment=enrollment,
        lesson=lesson,
        defaults={
            "attended": attended,
            "recorded_by": user,
            "recorded_at": recorded_at,
        },
    )
    if attended:
        complete_lesson(enrollment, lesson, at=recorded_at)
    logger.info(
        "Recorded enrollment %s as %s at live session %s",
        enrollment.pk,
        "attended" if attended else "absent",
        lesson.pk,
    )
    return attendance


# --- Checklists -----------------------------------------------------------------


@dataclass(frozen=True)
class ChecklistEntry:
    item: ChecklistItem
    ticked: bool


@transaction.atomic
def tick_by_events(
    enrollment: Enrollment, lesson: Lesson, at: datetime | None = None
) -> int:
    """Tick the steps whose usage event the learner has; return how many were new.

    A step with an event name is ticked once the contact has a usage event
    of that name, at any time, since the step asks for something done in
    the product. Ticking the last step completes the lesson. One query when
    nothing is new. The lesson page calls this, so steps are ticked when the
    learner opens the lesson, not when the event arrives.
    """
    ticked_at = at or timezone.now()
    done = UsageEvent.objects.filter(
        contact_id=enrollment.contact_id, name=OuterRef("event_name")
    )
    ticked = ChecklistTick.objects.filter(enrollment=enrollment, item=OuterRef("pk"))
    new_item_ids = list(
        ChecklistItem.objects.filter(lesson=lesson)
        .exclude(event_name="")
        .filter(Exists(done))
        .exclude(Exists(ticked))
        .values_list("pk", flat=True)
    )
    if not new_item_ids:
        return 0

    ChecklistTick.objects.bulk_create(
        [
            ChecklistTick(enrollment=enrollment, item_id=item_id, ticked_at=ticked_at)
            for item_id in new_item_ids
        ],
        ignore_conflicts=True,
    )
    unticked = ChecklistItem.objects.filter(lesson=lesson).exclude(Exists(ticked))
    if not unticked.exists():
        complete_lesson(enrollment, lesson, at=ticked_at)
    logger.info(
        "Ticked %s checklist steps of lesson %s for enrollment %s by usage events",
        len(new_item_ids),
        lesson.pk,
        enrollment.pk,
    )
    return len(new_item_ids)


def checklist_state(enrollment: Enrollment, lesson: Lesson) -> list[ChecklistEntry]:
    """Return the lesson's checklist items in order, each with whether it is ticked.

    Two queries: the items, and the learner's ticks.
    """
    items = list(ChecklistItem.objects.filter(lesson=lesson))
    ticked = set(
        ChecklistTick.objects.filter(
            enrollment=enrollment, item__lesson=lesson
        ).values_list("item_id", flat=True)
    )
    return [ChecklistEntry(item=item, ticked=item.pk in ticked) for item in items]


@transaction.atomic
def save_checklist(
    enrollment: Enrollment,
    lesson: Lesson,
    ticked_item_ids: Iterable[int],
    at: datetime | None = None,
) -> bool:
    """Set the learner's ticks to exactly these items; return whether all are ticked.

    Ticking every item completes the lesson. Unticking later keeps the
    lesson completed. Saving the same set again changes nothing. Raises
    ValueError naming an id that is not an item of this lesson.
    """
    ticked_at = at or timezone.now()
    lesson = lesson_of_course(enrollment, lesson)
    if lesson.kind != LessonKind.CHECKLIST:
        raise ValueError(
            f"Lesson {lesson.pk} is a {lesson.get_kind_display()} lesson, "
            "not a checklist."
        )
    item_ids = set(
        ChecklistItem.objects.filter(lesson=lesson).values_list("pk", flat=True)
    )
    requested = set(ticked_item_ids)
    unknown = sorted(requested - item_ids)
    if unknown:
        raise ValueError(
            f"Item {unknown[0]} is not on the checklist of “{lesson.title}”. "
            "Reload the page to see its current items."
        )

    # The enrollment lock makes two saves from two tabs run one after another.
    locked = lock_enrollment(enrollment)
    ChecklistTick.objects.filter(enrollment=locked, item__lesson=lesson).exclude(
        item_id__in=requested
    ).delete()
    ChecklistTick.objects.bulk_create(
        [
            ChecklistTick(enrollment=locked, item_id=item_id, ticked_at=ticked_at)
            for item_id in sorted(requested)
        ],
        ignore_conflicts=True,
    )

    all_ticked = bool(item_ids) and requested == item_ids
    if all_ticked:
        complete_lesson(enrollment, lesson, at=ticked_at)
    return all_ticked
