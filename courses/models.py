"""Courses, their modules and lessons, enrollments, progress and sign-in links.

Quizzes and exams add questions, choices, attempts and answers, and a
completed course adds a certificate.
"""

from decimal import Decimal

from django.conf import settings
from django.db import models

from courses.storage import lesson_file_path, lesson_file_storage

# The highest pass mark, in percent.
MAX_PASS_MARK = Decimal(100)


class CompletionRule(models.TextChoices):
    REQUIRED_LESSONS = "required_lessons", "Complete every required lesson"
    ALL_LESSONS = "all_lessons", "Complete every lesson, optional ones too"
    PASS_EXAM = "pass_exam", "Pass every exam of the course"


class Course(models.Model):
    # A source id, such as an OULAD module-presentation; blank for authored courses.
    external_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    is_published = models.BooleanField(default=True)
    starts_on = models.DateField(null=True, blank=True)
    length_days = models.PositiveIntegerField(null=True, blank=True)
    completion_rule = models.CharField(
        max_length=20,
        choices=CompletionRule.choices,
        default=CompletionRule.REQUIRED_LESSONS,
    )
    issues_certificates = models.BooleanField(default=True)
    # Days a certificate stays valid after it is issued; null for no expiry.
    certificate_valid_days = models.PositiveIntegerField(null=True, blank=True)
    # Listed in the catalogue, where contacts it is meant for enroll themselves.
    in_catalogue = models.BooleanField(default=False)
    # Slugs of the lifecycle stages (lifecycle.Stage.slug) the course is for;
    # empty for every stage. Checked through the condition vocabulary, because
    # courses may not import lifecycle (courses.catalogue).
    lifecycle_stages = models.JSONField(default=list, blank=True)
    # A condition tree over the contact that decides who sees the course in
    # the catalogue; null for every contact.
    audience = models.JSONField(null=True, blank=True)
    # Topics that group courses in the catalogue.
    tags = models.JSONField(default=list, blank=True)
    # The published content version, raised by courses.versions.publish_version;
    # enrollments and certificates record the version they completed.
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class CourseVersion(models.Model):
    """A published version of a course's content, and what it asked of learners."""

    course = models.ForeignKey(
        Course, on_delete=models.CASCADE, related_name="versions"
    )
    number = models.PositiveIntegerField()
    # SHA-256 of the snapshot below, so the admin can tell whether the
    # content changed since this version. Versions without a snapshot keep
    # an older fingerprint that no longer compares.
    fingerprint = models.CharField(max_length=64)
    # The lessons as published (courses.snapshots), to list what the next
    # version changed; null for versions recorded before snapshots were.
    snapshot = models.JSONField(null=True, blank=True)
    lesson_count = models.PositiveIntegerField()
    note = models.TextField(blank=True)
    requires_recertification = models.BooleanField(default=False)
    expired_certificates = models.BooleanField(default=False)
    # Enrollments marked as needing recertification when it was published.
    recertification_count = models.PositiveIntegerField(default=0)
    published_at = models.DateTimeField()
    published_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )

    class Meta:
        ordering = ["course", "-number"]
        constraints = [
            # Two CSMs publishing at once cannot both take the same number.
            models.UniqueConstraint(
                fields=["course", "number"], name="one_row_per_course_version"
            )
        ]

    def __str__(self) -> str:
        return f"{self.course} version {self.number}"


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
    SELF_ASSESSMENT = "self_assessment", "Self-assessment"
    CHECKLIST = "checklist", "Checklist"
    LIVE_SESSION = "live_session", "Live session"
    LINK = "link", "Link"
    DISCUSSION = "discussion", "Discussion"
    FILE = "file", "File download"


class Lesson(models.Model):
    module = models.ForeignKey(Module, on_delete=models.CASCADE, related_name="lessons")
    external_id = models.CharField(max_length=64, null=True, blank=True, unique=True)
    title = models.CharField(max_length=200)
    kind = models.CharField(
        max_length=20, choices=LessonKind.choices, default=LessonKind.TEXT
    )
    # Markdown, rendered without raw HTML (courses.content.render_markdown).
    body = models.TextField(blank=True)
    # A link lesson's page, a video's embed address, a live session's join link.
    url = models.URLField(blank=True)
    # The video, PDF or download of the lesson; served only to enrolled
    # learners, through the portal (courses.content_views.lesson_file).
    file = models.FileField(
        upload_to=lesson_file_path,
        storage=lesson_file_storage,
        max_length=300,
        blank=True,
    )
    # Live sessions: when the session starts and how long it lasts.
    starts_at = models.DateTimeField(null=True, blank=True)
    duration_minutes = models.PositiveIntegerField(null=True, blank=True)
    order = models.PositiveIntegerField(default=0)
    is_required = models.BooleanField(default=True)
    # For assessments: the share of the course grade, in percent.
    weight = models.PositiveSmallIntegerField(null=True, blank=True)
    # The rules of a quiz or exam; a blank value means no limit.
    pass_mark = models.DecimalField(
        max_digits=5, decimal_places=2, null=True, blank=True
    )
    max_attempts = models.PositiveSmallIntegerField(null=True, blank=True)
    time_limit_minutes = models.PositiveIntegerField(null=True, blank=True)
    # Each attempt draws this many questions from every pool of the lesson.
    questions_per_attempt = models.PositiveSmallIntegerField(null=True, blank=True)
    shuffle_questions = models.BooleanField(default=False)
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
    # The course version the learner completed (or last recertified on); null
    # until completed.
    completed_version = models.PositiveIntegerField(null=True, blank=True)
    # The course version the learner must complete to be certified again;
    # null when no recertification is due. The status stays completed.
    recertification_version = models.PositiveIntegerField(null=True, blank=True)
    recertified_at = models.DateTimeField(null=True, blank=True)
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
    # Seconds the learner spent on the lesson with the page visible and in
    # use, summed from heartbeats that the server caps (courses.heartbeats).
    time_spent_seconds = models.PositiveIntegerField(default=0)
    # A video lesson's playback position, in whole seconds, to resume from.
    position_seconds = models.PositiveIntegerField(default=0)
    # A PDF lesson's pages (numbered from 1) the learner has seen, sorted,
    # and the number of pages of the PDF as the portal's viewer read it.
    pages_viewed = models.JSONField(default=list, blank=True)
    page_count = models.PositiveIntegerField(null=True, blank=True)
    # A video lesson's watched stretches as sorted, disjoint [start, end]
    # pairs in seconds (courses.video_watch), and the video's duration in
    # seconds as the player reported it; None until the first report.
    watched_intervals = models.JSONField(default=list, blank=True)
    duration_seconds = models.PositiveIntegerField(null=True, blank=True)
    # The page view (its number in views) whose heartbeats are counted, the
    # last heartbeat sequence number counted from it, and when that heartbeat
    # or the view arrived. Older views and replayed numbers are ignored.
    heartbeat_view = models.PositiveIntegerField(default=0)
    heartbeat_sequence = models.PositiveIntegerField(default=0)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
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


# --- Quizzes, exams and self-assessments -----------------------------------------

# Lesson kinds that hold questions and are taken as attempts.
ASSESSMENT_KINDS = (LessonKind.QUIZ, LessonKind.EXAM, LessonKind.SELF_ASSESSMENT)


class QuestionKind(models.TextChoices):
    SINGLE_CHOICE = "single_choice", "Single choice"
    MULTIPLE_CHOICE = "multiple_choice", "Multiple choice"
    TRUE_FALSE = "true_false", "True or false"
    SHORT_ANSWER = "short_answer", "Short answer"
    # A free-text reflection, stored and never scored.
    REFLECTION = "reflection", "Reflection (not scored)"


# Question kinds answered by picking choices.
CHOICE_KINDS = (
    QuestionKind.SINGLE_CHOICE,
    QuestionKind.MULTIPLE_CHOICE,
    QuestionKind.TRUE_FALSE,
)


class Question(models.Model):
    lesson = models.ForeignKey(
        Lesson, on_delete=models.CASCADE, related_name="questions"
    )
    kind = models.CharField(max_length=20, choices=QuestionKind.choices)
    text = models.TextField()
    order = models.PositiveIntegerField(default=0)
    # Questions with the same pool name form a pool, and each attempt draws
    # the lesson's questions_per_attempt from every pool; blank is one pool.
    pool = models.CharField(max_length=100, blank=True)
    points = models.PositiveSmallIntegerField(default=1)
    # Short answers: the accepted answers, one per line, compared without
    # case and with runs of spaces collapsed.
    accepted_answers = models.TextField(blank=True)
    # Shown to the learner with their result, right or wrong.
    feedback = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["lesson", "order", "id"]

    def __str__(self) -> str:
        return self.text[:80]


class Choice(models.Model):
    question = models.ForeignKey(
        Question, on_delete=models.CASCADE, related_name="choices"
    )
    text = models.CharField(max_length=500)
    is_correct = models.BooleanField(default=False)
    order = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["question", "order", "id"]

    def __str__(self) -> str:
        return self.text


class AttemptStatus(models.TextChoices):
    OPEN = "open", "In progress"
    SUBMITTED = "submitted", "Submitted"
    # The time limit passed before a submission arrived; scored 0.
    EXPIRED = "expired", "Time limit passed"


class Attempt(models.Model):
    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.CASCADE, related_name="attempts"
    )
    lesson = models.ForeignKey(Lesson, on_delete=models.CASCADE, related_name="+")
    # 1 for the first attempt at the lesson, counted per enrollment.
    number = models.PositiveSmallIntegerField()
    status = models.CharField(
        max_length=20, choices=AttemptStatus.choices, default=AttemptStatus.OPEN
    )
    # Question ids in the order they were served; only these may be answered.
    question_ids = models.JSONField(default=list)
    started_at = models.DateTimeField()
    # started_at plus the lesson's time limit; null when it has none.
    deadline = models.DateTimeField(null=True, blank=True)
    submitted_at = models.DateTimeField(null=True, blank=True)
    # A percentage from 0 to 100; null while open and for unscored lessons.
    score = models.DecimalField(max_digits=5, decimal_places=2, null=True, blank=True)
    passed = models.BooleanField(null=True, blank=True)

    class Meta:
        ordering = ["enrollment", "lesson", "number"]
        constraints = [
            # Attempt numbers are unique, so two racing starts cannot both
            # take the last attempt.
            models.UniqueConstraint(
                fields=["enrollment", "lesson", "number"],
                name="one_attempt_per_number",
            ),
            # At most one open attempt per lesson and learner.
            models.UniqueConstraint(
                fields=["enrollment", "lesson"],
                condition=models.Q(status="open"),
                name="one_open_attempt_per_lesson",
            ),
        ]

    def __str__(self) -> str:
        return f"Attempt {self.number} of {self.enrollment} at {self.lesson_id}"


class Answer(models.Model):
    attempt = models.ForeignKey(
        Attempt, on_delete=models.CASCADE, related_name="answers"
    )
    question = models.ForeignKey(Question, on_delete=models.CASCADE, related_name="+")
    # Ids of the chosen choices, for choice questions.
    choice_ids = models.JSONField(default=list, blank=True)
    text = models.TextField(blank=True)
    # Null for reflections, which are not scored.
    is_correct = models.BooleanField(null=True, blank=True)
    points_awarded = models.PositiveSmallIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["attempt", "question"], name="one_answer_per_question"
            )
        ]

    def __str__(self) -> str:
        return f"Answer to question {self.question_id} in attempt {self.attempt_id}"


class Certificate(models.Model):
    """Proof that a learner completed a course, verifiable by its public code."""

    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.CASCADE, related_name="certificates"
    )
    # The course version the certificate was issued for; a recertification
    # issues a new certificate for the new version.
    course_version = models.PositiveIntegerField(default=1)
    # A random 128-bit token in the verification URL, so ids cannot be guessed.
    code = models.CharField(max_length=32, unique=True)
    # Copied when issued, so the certificate keeps the name it was issued to.
    learner_name = models.CharField(max_length=300)
    course_title = models.CharField(max_length=200)
    issued_at = models.DateTimeField()
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["enrollment", "-course_version"]
        constraints = [
            # One certificate per enrollment and version, so completing a
            # version twice issues nothing new.
            models.UniqueConstraint(
                fields=["enrollment", "course_version"],
                name="one_certificate_per_version",
            )
        ]

    def __str__(self) -> str:
        return f"Certificate for {self.learner_name} in {self.course_title}"


class LearningPath(models.Model):
    """An ordered series of courses, some of which need others completed first."""

    slug = models.SlugField(unique=True)
    title = models.CharField(max_length=200)
    summary = models.TextField(blank=True)
    is_published = models.BooleanField(
        default=True, help_text="Unpublished paths are hidden from customers."
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title"]

    def __str__(self) -> str:
        return self.title


class PathCourse(models.Model):
    """One course of a learning path, in its place, with its prerequisites."""

    path = models.ForeignKey(
        LearningPath, on_delete=models.CASCADE, related_name="steps"
    )
    course = models.ForeignKey(
        Course, on_delete=models.PROTECT, related_name="path_steps"
    )
    order = models.PositiveIntegerField(default=0)
    prerequisites = models.ManyToManyField(
        Course,
        blank=True,
        related_name="unlocked_path_steps",
        help_text=(
            "Courses of this path to complete before this one opens; none "
            "means it opens when the learner joins the path."
        ),
    )

    class Meta:
        ordering = ["path", "order", "pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["path", "course"], name="course_once_per_path"
            )
        ]

    def __str__(self) -> str:
        return f"{self.path}: {self.course}"


class PathEnrollment(models.Model):
    """A contact on a learning path; course enrollments follow as courses open."""

    contact = models.ForeignKey(
        "customers.Contact", on_delete=models.CASCADE, related_name="path_enrollments"
    )
    path = models.ForeignKey(
        LearningPath, on_delete=models.CASCADE, related_name="enrollments"
    )
    source = models.CharField(max_length=20, choices=EnrollmentSource.choices)
    # What enrolled the contact, such as "trigger:welcome"; blank for a person.
    origin = models.CharField(max_length=200, blank=True)
    enrolled_at = models.DateTimeField()
    completed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-enrolled_at", "-pk"]
        constraints = [
            models.UniqueConstraint(
                fields=["contact", "path"], name="one_path_enrollment_per_contact"
            )
        ]

    def __str__(self) -> str:
        return f"{self.contact} on {self.path}"


# --- Checklists and live sessions ----------------------------------------------


class ChecklistItem(models.Model):
    """One step of a checklist lesson, ticked by the learner."""

    lesson = models.ForeignKey(
        Lesson, on_delete=models.CASCADE, related_name="checklist_items"
    )
    text = models.CharField(max_length=300)
    order = models.PositiveIntegerField(default=0)
    # A usage event name, such as "Report Created": the step is ticked for a
    # learner once they have such an event (courses.content.tick_by_events).
    event_name = models.CharField(
        max_length=100,
        blank=True,
        help_text=(
            "Optional. A usage event name, such as Report Created: the step is "
            "ticked for a learner who has such an event when they open the lesson."
        ),
    )

    class Meta:
        ordering = ["lesson", "order", "id"]

    def __str__(self) -> str:
        return self.text


class ChecklistTick(models.Model):
    """A checklist item that a learner ticked."""

    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.CASCADE, related_name="checklist_ticks"
    )
    item = models.ForeignKey(
        ChecklistItem, on_delete=models.CASCADE, related_name="ticks"
    )
    ticked_at = models.DateTimeField()

    class Meta:
        constraints = [
            # Ticking twice inserts nothing (ON CONFLICT DO NOTHING).
            models.UniqueConstraint(
                fields=["enrollment", "item"], name="one_tick_per_checklist_item"
            )
        ]

    def __str__(self) -> str:
        return f"{self.enrollment} ticked {self.item_id}"


class Attendance(models.Model):
    """Whether a learner attended a live session, as a CSM recorded it."""

    enrollment = models.ForeignKey(
        Enrollment, on_delete=models.CASCADE, related_name="attendances"
    )
    lesson = models.ForeignKey(
        Lesson, on_delete=models.CASCADE, related_name="attendances"
    )
    attended = models.BooleanField(default=True)
    recorded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    recorded_at = models.DateTimeField()

    class Meta:
        verbose_name_plural = "attendance"
        constraints = [
            models.UniqueConstraint(
                fields=["enrollment", "lesson"], name="one_attendance_per_session"
            )
        ]

    def __str__(self) -> str:
        state = "attended" if self.attended else "absent"
        return f"{self.enrollment} {state} at {self.lesson_id}"
