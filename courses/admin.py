"""The courses admin: authoring courses, enrolling contacts, reading progress."""

from typing import Any

from django.contrib import admin
from django.db import transaction
from django.db.models import Count, QuerySet
from django.http import HttpRequest
from django.urls import URLPattern
from django.utils import timezone
from django.utils.html import format_html

from courses.assessment_forms import QuestionAdminForm, QuestionFormSet
from courses.certificates import revoke_certificate
from courses.content import record_attendance
from courses.course_admin_views import course_urls
from courses.forms import (
    AttendanceAdminForm,
    CourseAdminForm,
    EnrollmentAdminForm,
    LessonAdminForm,
    ModuleAdminForm,
)
from courses.models import (
    Attempt,
    Attendance,
    Certificate,
    ChecklistItem,
    Course,
    CourseVersion,
    Enrollment,
    EnrollmentSource,
    Lesson,
    LessonKind,
    LessonProgress,
    Module,
    Question,
    SignInLink,
)
from courses.services import announce_learning_change
from courses.versions import record_first_version, version_state


class ReadOnlyAdminMixin:
    """An admin mixin that shows rows but allows no adding, editing or deleting."""

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


class ModuleInline(admin.TabularInline):
    model = Module
    form = ModuleAdminForm
    fields = ["order", "title", "starts_day", "ends_day", "lesson_count"]
    readonly_fields = ["lesson_count"]
    extra = 0
    show_change_link = True
    ordering = ["order", "id"]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Module]:
        return super().get_queryset(request).annotate(lesson_total=Count("lessons"))

    @admin.display(description="Lessons")
    def lesson_count(self, module: Module) -> int:
        return getattr(module, "lesson_total", 0)


# The columns of a course's version history, all read-only.
VERSION_COLUMNS = [
    "number",
    "published_at",
    "published_by",
    "lesson_count",
    "requires_recertification",
    "recertification_count",
    "expired_certificates",
    "note",
]


class CourseVersionInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = CourseVersion
    fields = tuple(VERSION_COLUMNS)
    readonly_fields = tuple(VERSION_COLUMNS)
    extra = 0
    verbose_name_plural = "published versions"


@admin.register(Course)
class CourseAdmin(admin.ModelAdmin):
    form = CourseAdminForm
    inlines = [ModuleInline, CourseVersionInline]
    list_display = [
        "title",
        "slug",
        "is_published",
        "version",
        "module_total",
        "enrollment_total",
    ]
    list_filter = ["is_published"]
    search_fields = ["title", "slug", "external_id"]
    prepopulated_fields = {"slug": ["title"]}
    readonly_fields = ["version", "content_changes", "created_at", "updated_at"]
    fieldsets = [
        (
            None,
            {
                "fields": ["title", "slug", "summary", "is_published"],
                "description": "A course holds modules, and each module holds "
                "lessons. Edit the modules below: the Order column sets the "
                "order learners see. Open a module to edit its lessons.",
            },
        ),
        (
            "Version",
            {
                "fields": ["version", "content_changes"],
                "description": "Learners' completions and certificates record "
                "the version they completed. After changing lessons, use "
                "Publish a new version at the top of this page to decide "
                "whether earlier completions need recertification.",
            },
        ),
        (
            "Completion and certificates",
            {
                "fields": [
                    "completion_rule",
                    "issues_certificates",
                    "certificate_valid_days",
                ]
            },
        ),
        (
            "Catalogue",
            {
                "fields": ["in_catalogue", "lifecycle_stages", "audience", "tags"],
                "description": "Who may find the course in the portal's "
                "catalogue and enroll themselves. Enrollments by triggers and "
                "in this admin ignore these fields.",
            },
        ),
        (
            "Schedule and source",
            {
                "fields": ["starts_on", "length_days", "external_id"],
                "classes": ["collapse"],
            },
        ),
        ("Record", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_queryset(self, request: HttpRequest) -> QuerySet[Course]:
        return (
            super()
            .get_queryset(request)
            .annotate(
                modules_total=Count("modules", distinct=True),
                enrollments_total=Count("enrollments", distinct=True),
            )
        )

    def get_urls(self) -> list[URLPattern]:
        # The course pages come first, before the admin's catch-all pattern.
        return course_urls(self) + super().get_urls()

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        record_first_version(form.instance)

    @admin.display(description="Content changes")
    def content_changes(self, course: Course) -> str:
        if course.pk is None:
            return "-"
        state = version_state(course)
        if state.changed is None:
            return "Unknown: no lessons of this course were recorded with a version."
        if state.changed:
            return format_html(
                "<strong>Lessons changed since version {}.</strong> "
                "Learners see the changes already; publish a new version to "
                "record them and decide about recertification.",
                state.number,
            )
        return f"None since version {state.number}."

    @admin.display(description="Modules", ordering="modules_total")
    def module_total(self, course: Course) -> int:
        return getattr(course, "modules_total", 0)

    @admin.display(description="Enrollments", ordering="enrollments_total")
    def enrollment_total(self, course: Course) -> int:
        return getattr(course, "enrollments_total", 0)


class LessonInline(admin.StackedInline):
    model = Lesson
    form = LessonAdminForm
    fields = [("order", "title"), ("kind", "is_required", "weight"), "body", "url"]
    extra = 0
    show_change_link = True
    ordering = ["order", "id"]


@admin.register(Module)
class ModuleAdmin(admin.ModelAdmin):
    form = ModuleAdminForm
    inlines = [LessonInline]
    list_display = ["title", "course", "order"]
    list_filter = ["course"]
    list_select_related = ["course"]
    search_fields = ["title", "course__title"]
    ordering = ["course__title", "order", "id"]
    fieldsets = [
        (
            None,
            {
                "fields": ["course", "title", "order", ("starts_day", "ends_day")],
                "description": "Lessons below are shown to learners by their "
                "Order number. Untick Is required for lessons a learner may skip.",
            },
        ),
    ]

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        record_first_version(form.instance.course)


class QuestionInline(admin.StackedInline):
    model = Question
    form = QuestionAdminForm
    formset = QuestionFormSet
    extra = 0
    ordering = ["order", "id"]
    verbose_name_plural = "Questions (quizzes, exams and self-assessments)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Question]:
        return super().get_queryset(request).prefetch_related("choices")


class ChecklistItemInline(admin.TabularInline):
    model = ChecklistItem
    fields = ["order", "text", "event_name"]
    extra = 1
    ordering = ["order", "id"]
    verbose_name_plural = "Checklist steps (checklist lessons)"


class AttendanceInline(admin.TabularInline):
    model = Attendance
    form = AttendanceAdminForm
    fields = ["enrollment", "attended", "recorded_by", "recorded_at"]
    readonly_fields = ["recorded_by", "recorded_at"]
    raw_id_fields = ["enrollment"]
    extra = 1
    verbose_name_plural = "Attendance (live sessions)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[Attendance]:
        return (
            super()
            .get_queryset(request)
            .select_related("enrollment__contact", "recorded_by")
        )


@admin.register(Lesson)
class LessonAdmin(admin.ModelAdmin):
    form = LessonAdminForm
    inlines = [QuestionInline, ChecklistItemInline, AttendanceInline]
    list_display = ["title", "module", "course_title", "kind", "order", "is_required"]
    list_filter = ["kind", "is_required", "module__course"]
    list_select_related = ["module__course"]
    search_fields = ["title", "module__title", "module__course__title"]
    ordering = ["module__course__title", "module__order", "module_id", "order", "id"]
    fieldsets = [
        (
            None,
            {
                "fields": [
                    "module",
                    ("order", "title"),
                    ("kind", "is_required", "weight"),
                    "body",
                    "url",
                    "file",
                    "external_id",
                ]
            },
        ),
        (
            "Live session",
            {
                "fields": [("starts_at", "duration_minutes")],
                "description": "Live session lessons: the join link goes in "
                "Url. Record who attended in the Attendance rows below; "
                "attending completes the lesson for that learner.",
            },
        ),
        (
            "Quiz and exam rules",
            {
                "fields": [
                    ("pass_mark", "max_attempts", "time_limit_minutes"),
                    ("questions_per_attempt", "shuffle_questions"),
                ],
                "description": "Used by quiz and exam lessons. Add the "
                "questions below; other lesson kinds have none.",
            },
        ),
    ]

    @admin.display(description="Course", ordering="module__course__title")
    def course_title(self, lesson: Lesson) -> str:
        return lesson.module.course.title

    def get_inline_instances(
        self, request: HttpRequest, obj: Lesson | None = None
    ) -> list[Any]:
        # Each kind shows only the rows it uses; a new lesson shows them all
        # until its kind is saved.
        wanted: set[type] = {QuestionInline, ChecklistItemInline, AttendanceInline}
        if obj is not None:
            wanted = {QuestionInline}
            if obj.kind == LessonKind.CHECKLIST:
                wanted = {ChecklistItemInline}
            elif obj.kind == LessonKind.LIVE_SESSION:
                wanted = {AttendanceInline}
        return [
            inline
            for inline in super().get_inline_instances(request, obj)
            if type(inline) in wanted
        ]

    def save_formset(
        self, request: HttpRequest, form: Any, formset: Any, change: bool
    ) -> None:
        if formset.model is not Attendance:
            super().save_formset(request, form, formset, change)
            return
        # Attendance goes through the service, which completes the lesson
        # for a learner who attended. save(commit=False) also fills the
        # lists that the admin's change message reads.
        changed = formset.save(commit=False)
        for deleted in formset.deleted_objects:
            deleted.delete()
        for attendance in changed:
            record_attendance(
                attendance.enrollment,
                form.instance,
                attendance.attended,
                recorded_by=request.user,
            )

    def save_related(
        self, request: HttpRequest, form: Any, formsets: Any, change: bool
    ) -> None:
        super().save_related(request, form, formsets, change)
        record_first_version(form.instance.module.course)


class LessonProgressInline(ReadOnlyAdminMixin, admin.TabularInline):
    model = LessonProgress
    fields = [
        "lesson",
        "started_at",
        "completed_at",
        "views",
        "time_spent_seconds",
        "position_seconds",
        "pages_viewed",
        "watched_intervals",
    ]
    readonly_fields = [
        "lesson",
        "started_at",
        "completed_at",
        "views",
        "time_spent_seconds",
        "position_seconds",
        "pages_viewed",
        "watched_intervals",
    ]
    extra = 0
    ordering = ["lesson__module__order", "lesson__module_id", "lesson__order"]
    verbose_name_plural = "Lesson progress (recorded by the portal)"

    def get_queryset(self, request: HttpRequest) -> QuerySet[LessonProgress]:
        return super().get_queryset(request).select_related("lesson")


class RecertificationFilter(admin.SimpleListFilter):
    title = "recertification"
    parameter_name = "recertification"

    def lookups(self, request: Any, model_admin: Any) -> list[tuple[str, str]]:
        return [("due", "Due"), ("not_due", "Not due")]

    def queryset(
        self, request: HttpRequest, queryset: QuerySet[Enrollment]
    ) -> QuerySet[Enrollment]:
        if self.value() == "due":
            return queryset.filter(recertification_version__isnull=False)
        if self.value() == "not_due":
            return queryset.filter(recertification_version__isnull=True)
        return queryset


@admin.register(Enrollment)
class EnrollmentAdmin(admin.ModelAdmin):
    form = EnrollmentAdminForm
    inlines = [LessonProgressInline]
    list_display = [
        "contact",
        "course",
        "status",
        "source",
        "enrolled_at",
        "completed_at",
        "completed_version",
        "recertification_version",
    ]
    list_filter = ["status", "source", "course", RecertificationFilter]
    list_select_related = ["contact", "course"]
    search_fields = ["contact__email"]
    search_help_text = "Search by the contact's email address."
    date_hierarchy = "enrolled_at"
    raw_id_fields = ["contact"]
    readonly_fields = [
        "started_at",
        "completed_at",
        "furthest_lesson",
        "completed_version",
        "recertification_version",
        "recertified_at",
        "created_at",
        "updated_at",
    ]
    fieldsets = [
        (
            None,
            {
                "fields": ["contact", "course", "source", "origin", "enrolled_at"],
                "description": "Enrolling a contact twice in the same course is "
                "not possible: the existing enrollment is kept.",
            },
        ),
        ("Status", {"fields": ["status", "ended_at", "score"]}),
        (
            "Progress (recorded by the portal)",
            {
                "fields": [
                    "started_at",
                    "completed_at",
                    "furthest_lesson",
                    "completed_version",
                    "recertification_version",
                    "recertified_at",
                ],
                "description": "Filled in as the learner opens and completes "
                "lessons; see the lesson rows below. A recertification "
                "version is set when a CSM publishes a course version that "
                "requires recertification.",
            },
        ),
        ("Record", {"fields": ["created_at", "updated_at"], "classes": ["collapse"]}),
    ]

    def get_changeform_initial_data(self, request: HttpRequest) -> dict[str, Any]:
        initial: dict[str, Any] = {
            "source": EnrollmentSource.MANUAL,
            "enrolled_at": timezone.now(),
        }
        initial.update(super().get_changeform_initial_data(request))
        return initial

    def save_model(
        self, request: HttpRequest, obj: Enrollment, form: Any, change: bool
    ) -> None:
        if not change and not obj.origin:
            obj.origin = f"admin:{request.user.get_username()}"
        super().save_model(request, obj, form, change)
        # The admin saves inside a transaction, so the triggers that read
        # learning see this enrollment, its status or its score after commit.
        announce_learning_change(obj.contact.account_id)

    def delete_model(self, request: HttpRequest, obj: Enrollment) -> None:
        account_id = obj.contact.account_id
        super().delete_model(request, obj)
        announce_learning_change(account_id)

    def delete_queryset(
        self, request: HttpRequest, queryset: QuerySet[Enrollment]
    ) -> None:
        # The delete action runs outside the admin's transactions.
        with transaction.atomic():
            account_ids = set(queryset.values_list("contact__account_id", flat=True))
            super().delete_queryset(request, queryset)
            for account_id in sorted(account_ids):
                announce_learning_change(account_id)


@admin.register(LessonProgress)
class LessonProgressAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "enrollment",
        "lesson",
        "started_at",
        "completed_at",
        "views",
        "time_spent_seconds",
    ]
    list_filter = ["enrollment__course"]
    list_select_related = ["enrollment__contact", "enrollment__course", "lesson"]
    search_fields = ["enrollment__contact__email", "lesson__title"]
    search_help_text = "Search by the contact's email address or the lesson title."
    date_hierarchy = "started_at"


@admin.register(SignInLink)
class SignInLinkAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    # token_hash is left out of every page because no person needs it, and it
    # is the only value that matches a row to a link in someone's inbox.
    fields = ["contact", "next_path", "created_at", "expires_at", "used_at", "state"]
    readonly_fields = ["state"]
    list_display = ["contact", "state", "next_path", "created_at", "expires_at"]
    list_select_related = ["contact"]
    search_fields = ["contact__email"]
    search_help_text = "Search by the contact's email address."
    date_hierarchy = "created_at"
    ordering = ["-created_at"]

    @admin.display(description="State")
    def state(self, link: SignInLink) -> str:
        if link.used_at is not None:
            return "Used"
        if link.expires_at <= timezone.now():
            return "Expired"
        return "Unused"


@admin.register(Attempt)
class AttemptAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "enrollment",
        "lesson",
        "number",
        "status",
        "score",
        "passed",
        "started_at",
        "submitted_at",
    ]
    list_filter = ["status", "passed", "lesson__module__course"]
    list_select_related = ["enrollment__contact", "enrollment__course", "lesson"]
    search_fields = ["enrollment__contact__email", "lesson__title"]
    search_help_text = "Search by the contact's email address or the lesson title."
    date_hierarchy = "started_at"


@admin.register(Certificate)
class CertificateAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = [
        "learner_name",
        "course_title",
        "issued_at",
        "expires_at",
        "revoked_at",
    ]
    list_filter = ["enrollment__course"]
    search_fields = ["learner_name", "code", "enrollment__contact__email"]
    search_help_text = "Search by the learner's name or email, or the certificate id."
    date_hierarchy = "issued_at"
    actions = ["revoke"]

    @admin.action(description="Revoke the selected certificates")
    def revoke(self, request: HttpRequest, queryset: QuerySet[Certificate]) -> None:
        revoked = sum(revoke_certificate(certificate) for certificate in queryset)
        self.message_user(
            request,
            f"Revoked {revoked} certificates; their verification pages now "
            "report them not found.",
        )


# Learning paths have their own module; importing it registers them.
from courses import path_admin  # noqa: E402, F401
