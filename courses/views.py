"""The learner portal: sign-in, the learner's courses, lessons and progress.

Every course and lesson is looked up through the signed-in contact's own
enrollments, so another learner's course or an unpublished course is a 404.
"""

import logging
from collections.abc import Callable
from functools import wraps
from typing import Any, Concatenate

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView, LogoutView
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from courses.assessments import assessment_state, is_assessment
from courses.auth_backends import SIGN_IN_BACKEND
from courses.catalogue import catalogue_for, catalogue_tags, enroll_from_catalogue
from courses.certificates import current_certificate
from courses.content import (
    checklist_state,
    embed_player_url,
    session_time,
    video_embed_url,
)
from courses.forms import SignInLinkForm
from courses.heartbeats import HEARTBEAT_INTERVAL_SECONDS
from courses.lesson_page import (
    LessonPage,
    count_view_and_read,
    enrolled_course,
    repeat_view_in_one_statement,
)
from courses.models import (
    Course,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonKind,
    LessonProgress,
    Question,
)
from courses.paths import path_overview
from courses.portal_session import remember_contact_id, signed_in_contact_id
from courses.services import (
    LessonEntry,
    Progress,
    complete_lesson,
    course_outline,
    enrollment_progress,
    enrollments_for,
    find_sign_in_link,
    lesson_path,
    redeem_sign_in_link,
    request_sign_in_link,
)
from courses.versions import recertification_progress, version_notice
from courses.video_watch import WATCHED_PERCENT_TO_COMPLETE, watched_percent
from customers.models import Contact

logger = logging.getLogger(__name__)

ContactView = Callable[Concatenate[HttpRequest, Contact, ...], HttpResponseBase]


def contact_required(view: ContactView) -> Callable[..., HttpResponseBase]:
    """Require a signed-in user with a contact, and pass the contact to the view."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        # login_required ran first, so the user is a saved row with a pk.
        user_id = request.user.pk or 0
        contact = Contact.objects.filter(user_id=user_id).first()
        if contact is None:
            return render(request, "portal/no_contact.html", status=403)
        return view(request, contact, *args, **kwargs)

    return wrapper


# --- Sign-in -----------------------------------------------------------------


@require_http_methods(["GET", "HEAD", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    if request.method == "POST":
        form = SignInLinkForm(request.POST)
        if form.is_valid():
            request_sign_in_link(form.cleaned_data["email"], form.cleaned_data["next"])
            # The same redirect whether or not a link went out, so the page
            # does not reveal which addresses belong to a contact.
            return redirect("portal:sign-in-sent")
    else:
        form = SignInLinkForm(initial={"next": request.GET.get("next", "")})
    next_path = request.POST.get("next") or request.GET.get("next", "")
    return render(request, "portal/sign_in.html", {"form": form, "next": next_path})


def sign_in_sent(request: HttpRequest) -> HttpResponse:
    context = {"max_age_hours": settings.MAGIC_LINK_MAX_AGE_HOURS}
    return render(request, "portal/sign_in_sent.html", context)


def _referrer_origin_only(response: HttpResponse) -> HttpResponse:
    # The token is in this page's address, and strict-origin puts only the
    # site's origin in Referer headers. "no-referrer" would also hide the
    # token, but browsers then send "Origin: null" with the page's own form
    # posts, and Django's CSRF check rejects them with 403.
    response["Referrer-Policy"] = "strict-origin"
    return response


@never_cache
@require_http_methods(["GET", "HEAD", "POST"])
def magic_link(request: HttpRequest, token: str) -> HttpResponse:
    """Confirm on GET and sign in on POST.

    Mail scanners fetch links with GET, so only the POST from the
    confirmation page uses up the single-use token.
    """
    if request.method != "POST":
        if find_sign_in_link(token) is None:
            return _referrer_origin_only(_invalid_link(request))
        return _referrer_origin_only(render(request, "portal/magic_link_confirm.html"))

    redeemed = redeem_sign_in_link(token)
    if redeemed is None:
        return _referrer_origin_only(_invalid_link(request))
    if not redeemed.user.is_active:
        logger.warning("Sign-in link used for inactive user %s", redeemed.user.pk)
        return _referrer_origin_only(_invalid_link(request, inactive=True))
    if redeemed.user.is_staff or redeemed.user.is_superuser:
        # A link signs in a learner. A contact tied to a staff user, by
        # mistake or on purpose, must not open the admin without a password.
        logger.warning("Sign-in link rejected for staff user %s", redeemed.user.pk)
        return _referrer_origin_only(_invalid_link(request, staff=True))

    login(request, redeemed.user, backend=SIGN_IN_BACKEND)
    remember_contact_id(request, redeemed.contact_id)
    return redirect(redeemed.next_path)


def _invalid_link(
    request: HttpRequest, *, inactive: bool = False, staff: bool = False
) -> HttpResponse:
    return render(
        request,
        "portal/magic_link_invalid.html",
        {"form": SignInLinkForm(), "inactive": inactive, "staff": staff},
        status=403 if inactive or staff else 410,
    )


class StaffSignInView(LoginView):
    template_name = "portal/staff_sign_in.html"


# Django's LogoutView accepts only POST, so a prefetched link cannot sign out.
sign_out = LogoutView.as_view(next_page="portal:sign-in")


# --- Learner pages -------------------------------------------------------------


@contact_required
def home(request: HttpRequest, contact: Contact) -> HttpResponse:
    enrollments = list(enrollments_for(contact))
    progress = enrollment_progress(enrollments)
    rows = [
        {
            "enrollment": enrollment,
            "progress": progress[enrollment.pk],
            "resume_url": _resume_url(enrollment, progress[enrollment.pk]),
        }
        for enrollment in enrollments
    ]
    context = {"contact": contact, "rows": rows, "paths": path_overview(contact.pk)}
    return render(request, "portal/home.html", context)


def _resume_url(enrollment: Enrollment, progress: Progress) -> str | None:
    if progress.next_lesson_id is None:
        return None
    return reverse(
        "portal:lesson",
        kwargs={"slug": enrollment.course.slug, "lesson_id": progress.next_lesson_id},
    )


@contact_required
def course(request: HttpRequest, contact: Contact, slug: str) -> HttpResponse:
    enrollment = get_object_or_404(enrollments_for(contact), course__slug=slug)
    outline = course_outline(enrollment)
    version = version_notice(enrollment)
    if version is not None and version.recertification_due:
        # A quiz or exam to pass again is not met, though its row is completed.
        progress = recertification_progress(
            version, outline, enrollment.course.completion_rule
        )
    else:
        progress = enrollment_progress([enrollment])[enrollment.pk]
    context = {
        "enrollment": enrollment,
        "course": enrollment.course,
        "progress": progress,
        "outline": outline,
        "resume_url": _resume_url(enrollment, progress),
        "certificate": current_certificate(enrollment),
        "version": version,
    }
    return render(request, "portal/course.html", context)


def enrolled_lesson(
    contact: Contact, slug: str, lesson_id: int
) -> tuple[Enrollment, Lesson]:
    """Find a lesson through the contact's enrollment in its course, or raise 404."""
    enrollment = enrolled_course(contact, slug)
    lesson = get_object_or_404(
        Lesson.objects.select_related("module"),
        pk=lesson_id,
        module__course_id=enrollment.course_id,
    )
    return enrollment, lesson


def _neighbours(
    entries: list[LessonEntry], lesson: Lesson
) -> tuple[Lesson | None, Lesson | None]:
    """Return the lessons before and after this one in course order."""
    lessons = [entry.lesson for entry in entries]
    index = next(i for i, candidate in enumerate(lessons) if candidate.pk == lesson.pk)
    previous = lessons[index - 1] if index > 0 else None
    following = lessons[index + 1] if index + 1 < len(lessons) else None
    return previous, following


def _external_url(lesson: Lesson) -> str:
    # Imported rows skip form validation, so only web links are shown.
    url = lesson.url.strip()
    return url if url.lower().startswith(("https://", "http://")) else ""


@login_required
@require_http_methods(["GET", "HEAD"])
def lesson(request: HttpRequest, slug: str, lesson_id: int) -> HttpResponseBase:
    """Show a lesson, counting the page view; see courses.lesson_page."""
    page = None
    if request.method == "GET":
        contact_id = signed_in_contact_id(request)
        if contact_id is not None:
            page = repeat_view_in_one_statement(contact_id, slug, lesson_id)
    if page is None:
        # The statement has written nothing then. Its cost is spent on the
        # rarer views it does not serve: first views and the richer kinds.
        return _lesson_by_general_path(request, slug=slug, lesson_id=lesson_id)
    return _lesson_response(request, page)


@contact_required
def _lesson_by_general_path(
    request: HttpRequest, contact: Contact, slug: str, lesson_id: int
) -> HttpResponse:
    page = count_view_and_read(
        contact, slug, lesson_id, count_view=request.method == "GET"
    )
    return _lesson_response(request, page)


def _lesson_response(request: HttpRequest, page: LessonPage) -> HttpResponse:
    enrollment, current, progress = page.enrollment, page.lesson, page.progress
    course = enrollment.course
    context = {
        "enrollment": enrollment,
        "course": course,
        "lesson": current,
        "lesson_progress": progress,
        "external_url": _external_url(current),
        "previous_url": _lesson_url(course, page.previous_id),
        "next_url": _lesson_url(course, page.next_id),
        "assessment": (
            assessment_state(enrollment, current) if _has_questions(current) else None
        ),
        "heartbeat_interval": HEARTBEAT_INTERVAL_SECONDS,
        **_content_context(enrollment, current, progress, request),
    }
    return render(request, "portal/lesson.html", context)


def _lesson_url(course: Course, lesson_id: int | None) -> str | None:
    if lesson_id is None:
        return None
    return reverse(
        "portal:lesson", kwargs={"slug": course.slug, "lesson_id": lesson_id}
    )


def _embed_start(progress: LessonProgress | None) -> int:
    """Return the embedded video's start: the saved position, unless near the end."""
    if progress is None or not progress.position_seconds:
        return 0
    duration = progress.duration_seconds
    if duration and progress.position_seconds >= duration - 1:
        return 0
    return progress.position_seconds


def _stored_size(lesson: Lesson) -> int | None:
    """Return the size of the lesson's stored file, or None when it is missing."""
    try:
        return lesson.file.size
    except OSError:
        return None


def _content_context(
    enrollment: Enrollment,
    lesson: Lesson,
    progress: LessonProgress | None,
    request: HttpRequest,
) -> dict[str, Any]:
    """Return what the lesson page shows for the lesson's kind.

    A checklist lesson costs two queries of its own, and a live session one
    (the account, for its time zone).
    """
    kind = lesson.kind
    has_file = bool(lesson.file)
    context: dict[str, Any] = {
        "file_url": (
            reverse(
                "portal:lesson-file",
                kwargs={"slug": enrollment.course.slug, "lesson_id": lesson.pk},
            )
            if has_file
            else ""
        ),
        "file_name": lesson.file.name.rsplit("/", 1)[-1] if has_file else "",
        "resume_position": progress.position_seconds if progress else 0,
        "view_number": progress.views if progress else 0,
    }
    if kind == LessonKind.FILE and has_file:
        context["file_size"] = _stored_size(lesson)
        if context["file_size"] is None:
            # The file is named but missing from storage, so the page shows
            # it as not available instead of failing or linking to a 404.
            context["file_url"] = ""
    if kind == LessonKind.VIDEO and not has_file:
        player_url = video_embed_url(lesson.url) or ""
        context["embed_start"] = _embed_start(progress) if player_url else 0
        context["embed_url"] = player_url and embed_player_url(
            player_url, context["embed_start"], _site_origin(request)
        )
    if kind == LessonKind.VIDEO:
        context["watched_percent"] = (
            watched_percent(progress.watched_intervals, progress.duration_seconds)
            if progress
            else None
        )
        context["watched_percent_to_complete"] = WATCHED_PERCENT_TO_COMPLETE
    if kind == LessonKind.CHECKLIST:
        context["checklist"] = checklist_state(enrollment, lesson)
    if kind == LessonKind.LIVE_SESSION:
        context["session"] = session_time(lesson, enrollment.contact)
    return context


def _site_origin(request: HttpRequest) -> str:
    # The origin a video player posts its messages to: scheme and host.
    return f"{request.scheme}://{request.get_host()}"


def _completed_otherwise(lesson: Lesson) -> str:
    """Return why a lesson has no Mark complete button, or "" when it has one."""
    if _has_questions(lesson):
        return (
            f"“{lesson.title}” is completed by submitting its answers, "
            "not with a button."
        )
    if lesson.kind == LessonKind.CHECKLIST:
        return f"“{lesson.title}” is completed by ticking every step of its checklist."
    if lesson.kind == LessonKind.LIVE_SESSION:
        return (
            f"“{lesson.title}” is completed when your customer success manager "
            "records that you attended."
        )
    if lesson.kind == LessonKind.VIDEO and lesson.file:
        return (
            f"“{lesson.title}” is completed when you have watched "
            f"{WATCHED_PERCENT_TO_COMPLETE}% of the video."
        )
    return ""


def _has_questions(lesson: Lesson) -> bool:
    # Imported quiz and exam lessons have no questions; they keep the
    # Mark complete button.
    return is_assessment(lesson) and Question.objects.filter(lesson=lesson).exists()


@contact_required
@require_POST
def complete(
    request: HttpRequest, contact: Contact, slug: str, lesson_id: int
) -> HttpResponse:
    enrollment, current = enrolled_lesson(contact, slug, lesson_id)
    refusal = _completed_otherwise(current)
    if refusal:
        messages.error(request, refusal)
        return redirect(lesson_path(enrollment.course, current))
    was_completed = enrollment.status == EnrollmentStatus.COMPLETED
    enrollment = complete_lesson(enrollment, current)

    if enrollment.status == EnrollmentStatus.COMPLETED and not was_completed:
        messages.success(request, f"You completed {enrollment.course.title}.")
        return redirect("portal:course", slug=slug)
    messages.success(request, f"Lesson “{current.title}” is marked complete.")

    entries = [
        entry for module in course_outline(enrollment) for entry in module.lessons
    ]
    _previous, following = _neighbours(entries, current)
    if following is None:
        return redirect("portal:course", slug=slug)
    return redirect(lesson_path(enrollment.course, following))


# --- The catalogue ---------------------------------------------------------------


@contact_required
@require_http_methods(["GET", "HEAD"])
def catalogue(request: HttpRequest, contact: Contact) -> HttpResponse:
    tag = request.GET.get("tag", "").strip().lower()
    entries = catalogue_for(contact)
    context = {
        "tags": catalogue_tags(entries),
        "tag": tag,
        "entries": [entry for entry in entries if not tag or tag in entry.course.tags],
    }
    return render(request, "portal/catalogue.html", context)


@contact_required
@require_POST
def catalogue_enroll(request: HttpRequest, contact: Contact, slug: str) -> HttpResponse:
    try:
        enrollment = enroll_from_catalogue(contact, slug)
    except LookupError:
        raise Http404("This course is not in your catalogue.") from None
    messages.success(request, f"You are enrolled in {enrollment.course.title}.")
    return redirect("portal:course", slug=slug)
