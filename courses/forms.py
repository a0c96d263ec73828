"""Forms of the learner portal and the courses admin."""

from django import forms

from courses.models import Course, Enrollment, Lesson, Module


class SignInLinkForm(forms.Form):
    email = forms.EmailField(
        label="Email address",
        max_length=254,
        widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}),
    )
    # Where the link should lead; checked again when the link is used.
    next = forms.CharField(required=False, max_length=500, widget=forms.HiddenInput)


class CourseAdminForm(forms.ModelForm):
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
        ]
        help_texts = {
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
        "http and https addresses are shown to learners.",
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
            "order",
            "is_required",
            "weight",
        ]
        help_texts = {
            "external_id": "The id in the source system. Leave blank for a "
            "lesson written here.",
            "kind": "What the lesson is. Every kind shows its text and link, and "
            "the learner marks it complete with a button.",
            "body": "Plain text shown to the learner. A blank line starts a new "
            "paragraph. HTML is shown as typed, not rendered.",
            "order": "Lessons are shown from the lowest number to the highest "
            "within their module.",
            "is_required": "A course is completed when every required lesson is "
            "completed. Optional lessons count toward nothing.",
            "weight": "For quizzes and exams: the share of the course grade, "
            "in percent.",
        }


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
