"""Admin pages of a course: publishing a new version, and previewing as a learner.

CourseAdmin mounts these with course_urls(). Publishing needs the change
permission on courses, previewing the view permission. The preview renders
the portal's own templates from read-only data (courses.preview), so it
writes no progress, view, heartbeat or attempt, and signs no one in. Its
lesson files come from a preview file URL that sends them as the portal's
file view does (courses.content_views.lesson_file_response).
"""

import logging
from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.http.response import HttpResponseBase
from django.shortcuts import render
from django.template.response import TemplateResponse
from django.urls import URLPattern, path, reverse
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_GET

from courses.content import video_embed_url
from courses.content_views import lesson_file_response
from courses.models import Course, Lesson, LessonKind
from courses.preview import (
    PreviewLearner,
    preview_assessment,
    preview_checklist,
    preview_learner,
    preview_lesson_progress,
    preview_outline,
    preview_progress,
    preview_session,
)
from courses.versions import VersionError, publish_version, version_state
from customers.models import Contact
from customers.roles import may_see_account

logger = logging.getLogger(__name__)

# URL names of the preview pages. The portal templates take them in place of
# the portal's own, so links inside a preview stay in the preview.
PREVIEW_COURSE_URL = "admin:courses_course_preview"
PREVIEW_LESSON_URL = "admin:courses_course_preview_lesson"
PREVIEW_FILE_URL = "admin:courses_course_preview_file"


def course_urls(model_admin: admin.ModelAdmin) -> list[URLPattern]:
    """Return the URL patterns of the pages, each behind the admin's login check."""

    def wrap(view: Any) -> Any:
        def wrapper(request: HttpRequest, **kwargs: Any) -> HttpResponse:
            return view(model_admin, request, **kwargs)

        return model_admin.admin_site.admin_view(wrapper)

    return [
        path(
            "<int:object_id>/publish-version/",
            wrap(publish_version_view),
            name="courses_course_publish_version",
        ),
        path(
            "preview/<slug:slug>/",
            wrap(preview_course_view),
            name="courses_course_preview",
        ),
        path(
            "preview/<slug:slug>/lessons/<int:lesson_id>/",
            wrap(preview_lesson_view),
            name="courses_course_preview_lesson",
        ),
        path(
            "preview/<slug:slug>/lessons/<int:lesson_id>/file/",
            # The PDF viewer shows the file in a frame of the lesson page.
            require_GET(xframe_options_sameorigin(wrap(preview_file_view))),
            name="courses_course_preview_file",
        ),
    ]


# -- publishing a version ----------------------------------------------------------


class PublishVersionForm(forms.Form):
    requires_recertification = forms.BooleanField(
        required=False,
        help_text=(
            "Learners who completed an earlier version and have a lesson left "
            "under the completion rule must complete it to be certified again. "
            "Untick to let every completion stand."
        ),
    )
    expire_certificates = forms.BooleanField(
        required=False,
        label="Expire their certificates now",
        help_text=(
            "Only with recertification: the certificates of those learners "
            "expire today, and their verification pages say so."
        ),
    )
    note = forms.CharField(
        required=False,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text="What changed, for the version history.",
    )


def publish_version_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: int
) -> HttpResponse:
    course = _course_or_404(model_admin, request, object_id)
    if not model_admin.has_change_permission(request, course):
        raise PermissionDenied
    form = PublishVersionForm(request.POST if request.method == "POST" else None)
    if form.is_valid():
        try:
            version = publish_version(
                course,
                requires_recertification=form.cleaned_data["requires_recertification"],
                expire_certificates=form.cleaned_data["expire_certificates"],
                note=form.cleaned_data["note"],
                published_by=request.user,  # type: ignore[arg-type]
            )
        except VersionError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(
                request,
                f"Published version {version.number} of {course.title}; "
                f"{version.recertification_count} learners need recertification.",
            )
            return HttpResponseRedirect(
                reverse("admin:courses_course_change", args=[course.pk])
            )
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.model._meta,
        "title": f"Publish a new version of {course.title}",
        "course": course,
        "state": version_state(course),
        "form": form,
    }
    return TemplateResponse(
        request, "admin/courses/course/publish_version.html", context
    )


def _course_or_404(
    model_admin: admin.ModelAdmin, request: HttpRequest, object_id: int
) -> Course:
    course = model_admin.get_queryset(request).filter(pk=object_id).first()
    if course is None:
        raise Http404(f"No course with id {object_id}.")
    return course


# -- preview -------------------------------------------------------------------------


def _preview_target(
    model_admin: admin.ModelAdmin, request: HttpRequest, slug: str
) -> tuple[Course, PreviewLearner, str]:
    """Return the course, the learner to show it to, and the ?contact= query string.

    Raises 403 without the view permission, and 404 for an unknown course or
    contact id and for a contact of an account the user may not see. An id
    that is not a number is a 404 too, naming the value.
    """
    if not model_admin.has_view_permission(request):
        raise PermissionDenied
    course = Course.objects.filter(slug=slug).first()
    if course is None:
        raise Http404(f"No course with the slug {slug!r}.")
    raw_contact = request.GET.get("contact", "").strip()
    contact = None
    if raw_contact:
        if not raw_contact.isdigit():
            raise Http404(f"Contact id {raw_contact!r} is not a number.")
        contact = (
            Contact.objects.select_related("account").filter(pk=raw_contact).first()
        )
        # A CSM previews only contacts of accounts they may see, as on the
        # account pages, so the preview shows no other CSM's customers.
        if contact is None or not may_see_account(request.user, contact.account):
            raise Http404(f"No contact with id {raw_contact}.")
    query = f"?contact={contact.pk}" if contact else ""
    return course, preview_learner(course, contact), query


def _preview_context(
    course: Course, learner: PreviewLearner, query: str
) -> dict[str, Any]:
    return {
        "course": course,
        "enrollment": learner.enrollment,
        "preview": {
            "learner": learner,
            "query": query,
            "exit_url": reverse("admin:courses_course_change", args=[course.pk]),
        },
        "course_url_name": PREVIEW_COURSE_URL,
        "lesson_url_name": PREVIEW_LESSON_URL,
    }


def preview_course_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, slug: str
) -> HttpResponse:
    course, learner, query = _preview_target(model_admin, request, slug)
    outline = preview_outline(learner)
    progress = preview_progress(learner, outline)
    context = {
        **_preview_context(course, learner, query),
        "progress": progress,
        "outline": outline,
        "resume_url": _preview_lesson_url(course, progress.next_lesson_id, query),
        "certificate": None,
        "version": None,
    }
    return render(request, "portal/course.html", context)


def _preview_lesson_url(course: Course, lesson_id: int | None, query: str) -> str:
    if lesson_id is None:
        return ""
    url = reverse(
        PREVIEW_LESSON_URL, kwargs={"slug": course.slug, "lesson_id": lesson_id}
    )
    return url + query


def preview_lesson_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, slug: str, lesson_id: int
) -> HttpResponse:
    course, learner, query = _preview_target(model_admin, request, slug)
    lesson = _preview_lesson(course, lesson_id)
    outline = preview_outline(learner)
    lessons = [entry.lesson for module in outline for entry in module.lessons]
    index = next(i for i, candidate in enumerate(lessons) if candidate.pk == lesson.pk)
    previous = lessons[index - 1] if index > 0 else None
    following = lessons[index + 1] if index + 1 < len(lessons) else None

    context = {
        **_preview_context(course, learner, query),
        "lesson": lesson,
        "lesson_progress": preview_lesson_progress(learner, lesson),
        "external_url": _web_url(lesson.url),
        "previous_url": _preview_lesson_url(
            course, previous.pk if previous else None, query
        ),
        "next_url": _preview_lesson_url(
            course, following.pk if following else None, query
        ),
        "assessment": preview_assessment(learner, lesson),
        "file_url": _preview_file_url(course, lesson, query),
        "file_name": lesson.file.name.rsplit("/", 1)[-1] if lesson.file else "",
        "resume_position": 0,
        "view_number": 0,
    }
    if lesson.kind == LessonKind.VIDEO and not lesson.file:
        context["embed_url"] = video_embed_url(lesson.url) or ""
    if lesson.kind == LessonKind.CHECKLIST:
        context["checklist"] = preview_checklist(learner, lesson)
    if lesson.kind == LessonKind.LIVE_SESSION:
        context["session"] = preview_session(learner, lesson)
    return render(request, "portal/lesson.html", context)


def _preview_lesson(course: Course, lesson_id: int) -> Lesson:
    lesson = (
        Lesson.objects.select_related("module")
        .filter(pk=lesson_id, module__course=course)
        .first()
    )
    if lesson is None:
        raise Http404(f"Course {course.slug!r} has no lesson {lesson_id}.")
    return lesson


def _preview_file_url(course: Course, lesson: Lesson, query: str) -> str:
    """Return the preview's URL of the lesson's file, or "" when none is stored.

    A file that is named but gone from storage gets no link, so the page
    neither breaks nor links to a 404.
    """
    if not lesson.file or not lesson.file.storage.exists(lesson.file.name):
        return ""
    url = reverse(
        PREVIEW_FILE_URL, kwargs={"slug": course.slug, "lesson_id": lesson.pk}
    )
    return url + query


def preview_file_view(
    model_admin: admin.ModelAdmin, request: HttpRequest, slug: str, lesson_id: int
) -> HttpResponseBase:
    """Send a lesson's file to staff previewing the course, as the portal sends it.

    The same checks as the preview pages (the view permission, and a
    ?contact= the user may see) come first. Serving only reads, so a
    preview still records no view or progress.
    """
    course, _learner, _query = _preview_target(model_admin, request, slug)
    return lesson_file_response(request, _preview_lesson(course, lesson_id))


def _web_url(url: str) -> str:
    cleaned = url.strip()
    return cleaned if cleaned.lower().startswith(("https://", "http://")) else ""
