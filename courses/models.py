"""Courses, their modules and lessons, enrollments, progress and sign-in links."""

from django.db import models


class Course(models.Model):
    # A source id, such as an OULAD module-presentation; blank for authored courses.
    external_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    is_published = models.BooleanField(default=True)
    starts_on = models.DateField(null=True, blank=True)
    length_days = models.PositiveIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class Module(models.Model):
    course = models.ForeignKey(Course, on_delete=models.CASCADE, related_name="modules")
    title = models.CharField(max_length=200)
    order = models.PositiveIntegerField(default=0)
    # Day offsets from the course start that this module spans, when planned.
    starts_day = models.IntegerField(null=True, blank=True)
    ends_day = models.IntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["course", "order", "id"]

    def __str__(self) -> str:
        return self.title


class LessonKind(models.TextChoices):
    TEXT = "text", "Text"
    VIDEO = "video", "Video"
    PDF = "pdf", "PDF"
    QUIZ = "quiz", "Quiz"
    EXAM = "exam", "Exam"
    CHECKLIST = "checklist", "Checklist"
    LIVE_SESSION = "live_session", "Live session"
    LINK = "link", "Link"
    DISCUSSION = "discussion", "Discussion"


class Lesson(models.Model):
    module = models.ForeignKey(Module, on_delete=models.CASCADE, related_name="lessons")
    external_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    title = models.CharField(max_length=200)
    kind = models.CharField(
        max_length=20, choices=LessonKind.choices, default=LessonKind.TEXT
    )
    body = models.TextField(blank=True)
    url = models.URLField(blank=True)
    order = models.PositiveIntegerField(default=0)
    is_required = models.BooleanField(default=True)
    # For assessments: the share of the course grade, in percent.
    weight = models.PositiveSmallIntegerField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["module__order", "module_id", "order", "id"]

    def __str__(self) -> str:
        return self.title


class EnrollmentSource(models.TextChoices):
    MANUAL = "manual", "Manual"
    AUTOMATIC = "automatic", "Automatic (trigger)"
    IMPORT = "import", "Imported"


class EnrollmentStatus(models.TextChoices):
    ACTIVE = "active", "Active"
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    WITHDRAWN = "withdrawn", "Withdrawn"
    # Ended by the trigger that enrolled the contact, once its condition
    # stopped matching; not the learner's choice, unlike withdrawn.
    UNENROLLED = "unenrolled", "Unenrolled by its trigger"


class Enrollment(models.Model):
    contact = models.ForeignKey(
        "customers.Contact", on_delete=models.CASCADE, related_name="enrollments"
    )
    course = models.ForeignKey(
        Course, on_delete=models.CASCADE, related_name="enrollments"
    )
    source = models.CharField(max_length=20, choices=EnrollmentSource.choices)
    # Who or what enrolled the contact, such as "trigger:onboarding-welcome".
    origin = models.CharField(max_length=200, blank=True)
    status = models.CharField(
        max_length=20, choices=EnrollmentStatus.choices, default=EnrollmentStatus.ACTIVE
    )
    enrolled_at = models.DateTimeField()
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    ended_at = models.DateTimeField(
        null=True,
        blank=True,
        help_text=(
            "When the learner withdrew or failed, or the trigger unenrolled them."
        ),
    )
    # The furthest lesson reached, from which drop-off per module is counted.
    furthest_lesson = models.ForeignKey(
        Lesson, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-enrolled_at"]
        constraints = [
            # Enrolling is idempotent: a second trigger or import inserts nothing.
            models.UniqueConstraint(
                fields=["contact", "course"], name="one_enrollment_per_contact_course"
            )
        ]
        indexes = [models.Index(fields=["course", "status"])]

    def __str__(self) -> str:
        return f"{self.contact} in {self.course}"


class LessonProgress(models.Model):
    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.CASCADE, related_name="lesson_progress"
    )
    lesson = models.ForeignKey(
        Lesson, on_delete=models.CASCADE, related_name="progress"
    )
    started_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    views = models.PositiveIntegerField(default=0)
    time_spent_seconds = models.PositiveIntegerField(default=0)
    score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name_plural = "lesson progress"
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment", "lesson"], name="one_progress_row_per_lesson"
            )
        ]

    def __str__(self) -> str:
        return f"{self.enrollment} / {self.lesson}"


class SignInLink(models.Model):
    """A magic sign-in link; only a hash of its token is stored."""

    contact = models.ForeignKey(
        "customers.Contact", on_delete=models.CASCADE, related_name="sign_in_links"
    )
    token_hash = models.CharField(max_length=64, unique=True)
    next_path = models.CharField(max_length=500, default="/learn/")
    expires_at = models.DateTimeField()
    used_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"Sign-in link for {self.contact} until {self.expires_at:%Y-%m-%d %H:%M}"
