"""Forms of the learner portal and the courses admin."""

import logging
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from conditions.forms import ConditionTextField
from courses.catalogue import clean_stage_slugs
from courses.content import VIDEO_EMBED_HOSTS, video_embed_url
from courses.models import (
    MAX_PASS_MARK,
    Attendance,
    CompletionRule,
    Course,
    Enrollment,
    Lesson,
    LessonKind,
    Module,
)
from courses.uploads import validate_lesson_file

logger = logging.getLogger(__name__)


class SignInLinkForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    # Where the link should lead; checked again when the link is used.
    next = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]


class CourseAdminForm(forms.ModelForm):
    lifecycle_stages = forms.CharField(
        required=False,
        help_text="Optional. Stage slugs the course is for, separated by commas, "
        "such as onboarding, adoption. The catalogue shows the course only to "
        "contacts whose account is in one of them; blank for every stage.",
    )
    tags = forms.CharField(
        required=False,
        help_text="Optional. Topics, separated by commas, such as reports, "
        "billing. Learners filter the catalogue by them.",
    )
    audience = ConditionTextField(
        required=False,
        help_text="Optional. A condition over the contact, such as "
        'contact.role == "admin" and account.plan == "Enterprise". The '
        "catalogue shows the course only to contacts who match; blank for all.",
    )

    class Meta:
        model = Course
        fields = [
            "external_id",
            "slug",
            "title",
            "summary",
            "is_published",
            "starts_on",
            "length_days",
            "completion_rule",
            "issues_certificates",
            "certificate_valid_days",
            "in_catalogue",
            "lifecycle_stages",
            "audience",
            "tags",
        ]
        help_texts = {
            "in_catalogue": "List the course in the portal's catalogue, where "
            "the contacts it is meant for enroll themselves.",
            "completion_rule": "When a learner's enrollment becomes completed. "
            "Under “Pass every exam”, the course is completed once every exam "
            "lesson has a passing attempt.",
            "issues_certificates": "Give learners a PDF certificate with a public "
            "verification page when they complete the course.",
            "certificate_valid_days": "Optional. Days a certificate stays valid "
            "after it is issued; leave blank for certificates that never expire.",
            "external_id": "The id in the source system, such as an OULAD "
            "module-presentation. Leave blank for a course written here.",
            "slug": "The course's part of its portal address, /learn/courses/SLUG/. "
            "Lowercase letters, digits and hyphens. Changing it breaks links "
            "already sent by email.",
            "title": "Shown to learners on their home page and in emails.",
            "summary": "One or two sentences shown under the title on the portal.",
            "is_published": "Learners see only published courses. Untick to hide "
            "a course from everyone enrolled in it without losing their progress.",
            "starts_on": "Optional. The date a cohort course starts.",
            "length_days": "Optional. The planned length of the course, in days.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # The lists are edited as comma-separated text.
        self.initial["lifecycle_stages"] = ", ".join(self.instance.lifecycle_stages)
        self.initial["tags"] = ", ".join(self.instance.tags)

    def clean_lifecycle_stages(self) -> list[str]:
        try:
            return clean_stage_slugs(_split_list(self.cleaned_data["lifecycle_stages"]))
        except ValueError as exc:
            raise ValidationError(str(exc)) from None

    def clean_tags(self) -> list[str]:
        return list(
            dict.fromkeys(tag.lower() for tag in _split_list(self.cleaned_data["tags"]))
        )

    def clean_audience(self) -> dict[str, Any] | None:
        text = self.cleaned_data.get("audience") or ""
        if not text.strip():
            return None
        field = self.fields["audience"]
        assert isinstance(field, ConditionTextField)
        return field.to_tree(text, "contact")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        if cleaned.get("completion_rule") != CompletionRule.PASS_EXAM:
            return cleaned
        has_exam = (
            self.instance.pk is not None
            and Lesson.objects.filter(
                module__course=self.instance, kind=LessonKind.EXAM
            ).exists()
        )
        if not has_exam:
            self.add_error(
                "completion_rule",
                "This course has no exam lesson, so no learner could complete it "
                "under this rule. Add an exam lesson first, then choose the rule.",
            )
        return cleaned


class ModuleAdminForm(forms.ModelForm):
    class Meta:
        model = Module
        fields = ["course", "title", "order", "starts_day", "ends_day"]
        help_texts = {
            "order": "Modules are shown from the lowest number to the highest.",
            "starts_day": "Optional. The day, counted from the course start, on "
            "which this module begins.",
            "ends_day": "Optional. The day, counted from the course start, on "
            "which this module ends.",
        }


class LessonAdminForm(forms.ModelForm):
    # Declared here to pick https for addresses typed without a scheme.
    url = forms.URLField(
        required=False,
        max_length=200,
        assume_scheme="https",
        help_text="Optional. A video, PDF or page the lesson links to. Only "
        "http and https addresses are shown to learners. YouTube and Vimeo "
        "videos resume where the learner stopped. Loom and Wistia videos start "
        "from the beginning, because their players do not report the position "
        "to the portal.",
    )

    class Meta:
        model = Lesson
        fields = [
            "module",
            "external_id",
            "title",
            "kind",
            "body",
            "url",
            "file",
            "starts_at",
            "duration_minutes",
            "order",
            "is_required",
            "weight",
            "pass_mark",
            "max_attempts",
            "time_limit_minutes",
            "questions_per_attempt",
            "shuffle_questions",
        ]
        help_texts = {
            "pass_mark": "Quizzes and exams: the lowest passing score, in "
            "percent. Required for exams; an exam lesson is completed only by "
            "a passing attempt.",
            "max_attempts": "Optional. How many attempts a learner may make; "
            "blank for no limit.",
            "time_limit_minutes": "Optional. Minutes from the start of an "
            "attempt until answers are no longer accepted; blank for no limit.",
            "questions_per_attempt": "Optional. Each attempt draws this many "
            "questions at random from every question pool of the lesson; blank "
            "to serve every question.",
            "shuffle_questions": "Serve the questions of each attempt in a "
            "random order.",
            "external_id": "The id in the source system. Leave blank for a "
            "lesson written here.",
            "kind": "What the lesson is. Video: an uploaded file or a player "
            "address. PDF and file download: an uploaded file. Checklist: the "
            "steps below, completed when all are ticked. Live session: a start "
            "time and join link, completed when you record attendance. "
            "Quizzes, exams and self-assessments with questions are completed "
            "by submitting answers; every other lesson with a button.",
            "body": "Markdown shown to the learner: **bold**, *italic*, "
            "# headings, - lists, [links](https://example.com), tables. A "
            "single line break is kept. HTML is shown as typed, not rendered.",
            "file": "Video lessons: MP4 or WebM, up to 500 MB. PDF lessons: a "
            "PDF, up to 50 MB. File downloads: PDF, zip, Word, Excel, "
            "PowerPoint, CSV, text, PNG or JPEG, up to 100 MB. Learners get "
            "the file only through the portal, for courses they are enrolled in.",
            "starts_at": "Live sessions: when the session starts. Learners see "
            "it in their own time zone.",
            "duration_minutes": "Live sessions: how long the session lasts, in "
            "minutes; 60 in calendar files when blank.",
            "order": "Lessons are shown from the lowest number to the highest "
            "within their module.",
            "is_required": "A course is completed when every required lesson is "
            "completed. Optional lessons count toward nothing.",
            "weight": "For quizzes and exams: the share of the course grade, "
            "in percent.",
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        self._clean_content(cleaned)
        pass_mark = cleaned.get("pass_mark")
        # The inline on the module page has no rule fields, so it skips these checks.
        if "pass_mark" not in self.fields:
            return cleaned
        if cleaned.get("kind") == LessonKind.EXAM and pass_mark is None:
            self.add_error(
                "pass_mark", "An exam needs a pass mark, a percentage from 0 to 100."
            )
        if pass_mark is not None and not 0 <= pass_mark <= MAX_PASS_MARK:
            self.add_error(
                "pass_mark",
                f"Pass mark {pass_mark} is invalid; use a percentage from 0 to 100.",
            )
        for name in ("max_attempts", "questions_per_attempt", "time_limit_minutes"):
            if cleaned.get(name) == 0:
                self.add_error(name, "Use a number of 1 or more, or leave it blank.")
        return cleaned

    def _clean_content(self, cleaned: dict[str, Any]) -> None:
        """Check the file, video address and session time against the kind.

        The inline on the module page has no file or time fields, so it
        checks only the video address.
        """
        kind = cleaned.get("kind", self.instance.kind)
        if "file" in self.fields:
            self._clean_file(kind, cleaned)
        elif "kind" in self.changed_data and self.instance.file:
            self._recheck_stored_file(kind)
        url = cleaned.get("url") or ""
        has_file = bool(
            cleaned.get("file") or ("file" not in self.fields and self.instance.file)
        )
        if kind == LessonKind.VIDEO:
            if url and video_embed_url(url) is None:
                self.add_error(
                    "url",
                    f"“{url}” is not a video address that can be embedded. Use "
                    "a video page on one of these hosts: "
                    f"{', '.join(VIDEO_EMBED_HOSTS)}, or upload the video file.",
                )
            elif not url and not has_file and "file" in self.fields:
                self.add_error(
                    "file", "A video lesson needs a video file or a video address."
                )
        if (
            kind == LessonKind.LIVE_SESSION
            and "starts_at" in self.fields
            and cleaned.get("starts_at") is None
        ):
            self.add_error("starts_at", "A live session needs its start date and time.")

    def _clean_file(self, kind: str, cleaned: dict[str, Any]) -> None:
        upload = cleaned.get("file")
        if not upload:
            if kind in (LessonKind.PDF, LessonKind.FILE):
                self.add_error(
                    "file",
                    f"A {LessonKind(kind).label} lesson needs a file; upload one.",
                )
            return
        # A stored file is checked again when the kind changes, so a PDF
        # cannot become the file of a video lesson.
        if "file" not in self.changed_data and "kind" not in self.changed_data:
            return
        try:
            validate_lesson_file(kind, upload.name, upload.size, upload)
        except ValidationError as error:
            self.add_error("file", error)

    def _recheck_stored_file(self, kind: str) -> None:
        """Check the stored file against a new kind, where the form has no file field.

        The lessons inline on the module page changes the kind without
        showing the file, so the reason goes on the kind.
        """
        stored = self.instance.file
        name = stored.name.rsplit("/", 1)[-1]
        try:
            with stored.open("rb") as stream:
                validate_lesson_file(kind, name, stored.size, stream)
        except FileNotFoundError:
            # A missing file is served as 404 and replaced on the lesson page.
            logger.warning(
                "Lesson %s has no stored file %s", self.instance.pk, stored.name
            )
        except ValidationError as error:
            self.add_error(
                "kind",
                f"The lesson's stored file does not fit the kind "
                f"{LessonKind(kind).label}: {error.messages[0]} Change the file "
                "on the lesson's own page first.",
            )


class AttendanceAdminForm(forms.ModelForm):
    class Meta:
        model = Attendance
        fields = ["enrollment", "attended"]
        help_texts = {
            "enrollment": "The learner's enrollment in this lesson's course; "
            "use the search button to find it.",
            "attended": "Ticked: attended, which completes the lesson for the "
            "learner. Unticked: absent.",
        }

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        enrollment = cleaned.get("enrollment")
        lesson = self.instance.lesson if self.instance.lesson_id else None
        if enrollment and lesson and enrollment.course_id != lesson.module.course_id:
            self.add_error(
                "enrollment",
                f"Enrollment {enrollment.pk} is in another course, "
                f"“{enrollment.course}”; choose an enrollment in this "
                "lesson's course.",
            )
        return cleaned


class EnrollmentAdminForm(forms.ModelForm):
    class Meta:
        model = Enrollment
        fields = [
            "contact",
            "course",
            "source",
            "origin",
            "status",
            "enrolled_at",
            "ended_at",
            "score",
        ]
        help_texts = {
            "contact": "The learner. Type the contact's id or use the search button.",
            "source": "Manual when a person enrolled the contact, automatic when "
            "a trigger did, imported when it came from a dataset.",
            "origin": "Who or what enrolled the contact, such as a trigger's "
            "name. Filled with your username when left blank.",
            "status": "Set Withdrawn to take a learner out of a course. A course "
            "becomes Completed by itself when the learner completes every "
            "required lesson.",
            "enrolled_at": "When the contact was enrolled.",
            "ended_at": "When the learner withdrew or failed; set it together "
            "with the status.",
            "score": "Optional. The final grade, 0 to 100.",
        }
