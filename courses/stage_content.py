"""The courses mapped to lifecycle stages, registered for lifecycle's Stage admin.

Registered from CoursesConfig.ready() with customers.stage_content,
because lifecycle cannot import courses. A course maps to the stages
whose slugs its lifecycle_stages lists, or to every stage when the list
is empty, as in the catalogue (courses.catalogue).
"""

from django.urls import reverse

from courses.models import Course
from customers.stage_content import (
    EVERY_STAGE,
    StageContentItem,
    StageContentSource,
    register_stage_content,
)


def courses_by_stage() -> dict[str, list[StageContentItem]]:
    """Return the courses of each stage slug, by title, in one query."""
    by_stage: dict[str, list[StageContentItem]] = {}
    rows = Course.objects.order_by("title").values_list(
        "pk", "title", "lifecycle_stages", "is_published", "in_catalogue"
    )
    for pk, title, slugs, is_published, in_catalogue in rows:
        item = StageContentItem(
            title=title,
            url=reverse("admin:courses_course_change", args=[pk]),
            note=_note(is_published, in_catalogue),
        )
        for slug in slugs or [EVERY_STAGE]:
            by_stage.setdefault(slug, []).append(item)
    return by_stage


def _note(is_published: bool, in_catalogue: bool) -> str:
    if not is_published:
        return "not published"
    if not in_catalogue:
        return "not in the catalogue"
    return ""


register_stage_content(StageContentSource("courses", "Courses", courses_by_stage))
