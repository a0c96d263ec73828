"""The account page's learning sections and timeline source.

Registered from CoursesConfig.ready(), because customers cannot import
courses. Each section and the timeline source run a fixed number of
queries, because the per-contact and per-enrollment figures are
aggregated in SQL.
"""

from datetime import date
from typing import Any

from django.db.models import Count, IntegerField, Max, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce

from courses.models import Enrollment, EnrollmentStatus, Lesson, LessonProgress
from customers.accounts_view import Section, register_section
from customers.models import Account, Contact
from customers.timeline import (
    TimelineEntry,
    TimelineSource,
    register_source,
    sorted_entries,
)

# Contacts listed on the page; an account with more shows a count of the rest.
MAX_CONTACTS = 200
MAX_ENROLLMENTS = 100


def _contacts_section(account: Account, today: date) -> dict[str, Any]:
    completed = Q(enrollments__status=EnrollmentStatus.COMPLETED)
    lesson_done = Q(enrollments__lesson_progress__completed_at__isnull=False)
    contacts = Contact.objects.filter(account=account)
    rows = contacts.annotate(
        enrollment_count=Count("enrollments", distinct=True),
        completed_count=Count("enrollments", filter=completed, distinct=True),
        lessons_completed=Count(
            "enrollments__lesson_progress", filter=lesson_done, distinct=True
        ),
        last_learning=Max("enrollments__lesson_progress__updated_at"),
    ).order_by("-is_champion", "last_name", "first_name", "pk")[:MAX_CONTACTS]
    total = contacts.count()
    return {"contacts": list(rows), "total": total, "shown": min(total, MAX_CONTACTS)}


def _enrollments_section(account: Account, today: date) -> dict[str, Any]:
    lessons_in_course = (
        Lesson.objects.filter(module__course=OuterRef("course"))
        .order_by()
        .values("module__course")
        .annotate(total=Count("pk"))
        .values("total")
    )
    enrollments = Enrollment.objects.filter(contact__account=account)
    rows = (
        enrollments.select_related("contact", "course")
        .annotate(
            lessons_total=Coalesce(
                Subquery(lessons_in_course, output_field=IntegerField()), 0
            ),
            lessons_done=Count(
                "lesson_progress",
                filter=Q(lesson_progress__completed_at__isnull=False),
            ),
        )
        .order_by("-enrolled_at", "-id")[:MAX_ENROLLMENTS]
    )
    total = enrollments.count()
    return {
        "enrollments": list(rows),
        "total": total,
        "shown": min(total, MAX_ENROLLMENTS),
    }


def _learning_entries(account: Account, limit: int) -> list[TimelineEntry]:
    enrollments = Enrollment.objects.filter(contact__account=account).select_related(
        "contact", "course"
    )
    enrolled = enrollments.order_by("-enrolled_at", "-id")[:limit]
    entries = [
        TimelineEntry(
            at=row.enrolled_at,
            source="learning",
            title=f"Enrolled in {row.course.title}",
            detail=f"{row.contact.full_name} · {row.get_source_display()}",
            tie_breaker=row.pk,
        )
        for row in enrolled
    ]
    completed = enrollments.filter(completed_at__isnull=False).order_by(
        "-completed_at", "-id"
    )[:limit]
    entries += [
        TimelineEntry(
            at=row.completed_at,
            source="learning",
            title=f"Completed {row.course.title}",
            detail=row.contact.full_name
            + (f" · score {row.score}" if row.score is not None else ""),
            tie_breaker=row.pk,
        )
        for row in completed
        if row.completed_at is not None
    ]
    lessons = (
        LessonProgress.objects.filter(
            enrollment__contact__account=account, completed_at__isnull=False
        )
        .select_related("lesson", "enrollment__contact")
        .order_by("-completed_at", "-id")[:limit]
    )
    entries += [
        TimelineEntry(
            at=row.completed_at,
            source="learning",
            title=f"Completed lesson {row.lesson.title}",
            detail=row.enrollment.contact.full_name,
            tie_breaker=row.pk,
        )
        for row in lessons
        if row.completed_at is not None
    ]
    return sorted_entries(entries, limit)


register_section(
    Section(
        "contacts",
        "Contacts and learning progress",
        30,
        "accounts/sections/contacts.html",
        _contacts_section,
    )
)
register_section(
    Section(
        "enrollments",
        "Enrollments",
        40,
        "accounts/sections/enrollments.html",
        _enrollments_section,
    )
)
register_source(TimelineSource("learning", "Learning", _learning_entries))
