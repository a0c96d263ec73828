"""Authoring learning paths in the admin: courses inline, prerequisites checked."""

from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from courses.models import LearningPath, PathCourse, PathEnrollment


class PathCourseFormSet(forms.BaseInlineFormSet):
    """Check that prerequisites are courses of the path and never form a cycle."""

    def clean(self) -> None:
        super().clean()
        kept = [
            form.cleaned_data
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        in_path = {data["course"] for data in kept if data.get("course")}
        required = {
            data["course"]: set(data.get("prerequisites") or ()) for data in kept
        }
        for course, prerequisites in required.items():
            if course in prerequisites:
                raise ValidationError(
                    f"{course} lists itself as a prerequisite; remove it."
                )
            outside = prerequisites - in_path
            if outside:
                names = ", ".join(sorted(str(item) for item in outside))
                raise ValidationError(
                    f"{course} requires {names}, which is not in this path; "
                    "add it to the path or remove the prerequisite."
                )
        cycle = _find_cycle(required)
        if cycle:
            names = " -> ".join(str(course) for course in cycle)
            raise ValidationError(
                f"The prerequisites form a cycle ({names}), so these courses "
                "would never open; remove one of them."
            )


def _find_cycle(required: dict) -> list:
    """Return a list of courses that require each other in a circle, or []."""
    visiting: list = []
    done: set = set()

    def visit(course: object) -> list:
        if course in visiting:
            return [*visiting[visiting.index(course) :], course]
        if course in done:
            return []
        visiting.append(course)
        for prerequisite in required.get(course, ()):
            found = visit(prerequisite)
            if found:
                return found
        visiting.pop()
        done.add(course)
        return []

    for course in required:
        found = visit(course)
        if found:
            return found
    return []


class PathCourseInline(admin.TabularInline):
    model = PathCourse
    formset = PathCourseFormSet
    fields = ["order", "course", "prerequisites"]
    autocomplete_fields = ["course"]
    extra = 1


@admin.register(LearningPath)
class LearningPathAdmin(admin.ModelAdmin):
    list_display = ["title", "slug", "is_published"]
    list_filter = ["is_published"]
    search_fields = ["title", "slug"]
    prepopulated_fields = {"slug": ("title",)}
    inlines = [PathCourseInline]


@admin.register(PathEnrollment)
class PathEnrollmentAdmin(admin.ModelAdmin):
    list_display = ["contact", "path", "source", "enrolled_at", "completed_at"]
    list_filter = ["path", "source"]
    search_fields = ["contact__email", "path__title"]
    raw_id_fields = ["contact"]
    readonly_fields = ["created_at"]
