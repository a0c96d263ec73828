"""The condition textarea with the visual rule builder beside it.

The widget renders the plain textarea that the form submits, a container
that static/conditions/builder.js fills with the builder, and the
vocabulary of both subject types as JSON, so the script needs no request
to list kinds and fields. Without JavaScript the page shows the textarea
alone, and the form works as before.
"""

from typing import Any

from django import forms
from django.urls import NoReverseMatch, reverse
from django.utils.html import format_html, json_script
from django.utils.safestring import SafeString

from conditions.registry import DATA_SOURCES, SUBJECTS, Subject
from conditions.vocabulary import vocabulary

# Keys of vocabulary() entries that the builder does not read; dropping
# them shortens the JSON that every condition field embeds.
UNUSED_KIND_KEYS = ("subjects",)


class ConditionBuilderWidget(forms.Textarea):
    """A condition textarea that the rule builder keeps in step with its tree.

    subject fixes the subject type (a success criterion is over an account).
    subject_field names another field of the form whose value is the
    subject type, such as a trigger's subject_type; the builder follows it.
    """

    def __init__(
        self,
        subject: Subject | None = None,
        subject_field: str | None = None,
        attrs: dict[str, Any] | None = None,
    ) -> None:
        if (subject is None) == (subject_field is None):
            raise ValueError("give either subject or subject_field, not both")
        default_attrs = {
            "rows": 6,
            "cols": 90,
            "spellcheck": "false",
            "class": "vLargeTextField condition-text",
        }
        super().__init__({**default_attrs, **(attrs or {})})
        self.subject = subject
        self.subject_field = subject_field

    class Media:
        css = {"all": ["conditions/builder.css"]}
        js = [forms.Script("conditions/builder.js", type="module")]

    def render(
        self,
        name: str,
        value: Any,
        attrs: dict[str, Any] | None = None,
        renderer: Any = None,
    ) -> SafeString:
        textarea = super().render(name, value, attrs, renderer)
        return format_html(
            '<div class="condition-builder" data-subject="{}" data-subject-field="{}"'
            ' data-parse-url="{}" data-format-url="{}">{}{}</div>',
            self.subject or "",
            self.subject_field or "",
            _url("condition_builder_parse"),
            _url("condition_builder_format"),
            textarea,
            # NOTE: each condition field embeds its own copy (about 60 KB), so
            # a stage with many success criteria repeats it per inline form.
            json_script(builder_vocabulary()),
        )


def builder_vocabulary() -> dict[str, Any]:
    """Return what the builder lists: kinds and fields per subject, and data sources.

    Both subject types are included, because a condition over an account
    can nest one over its contacts (any_contact) and a trigger's subject
    type can change while the form is open.
    """
    subjects = {}
    for subject in SUBJECTS:
        entry = vocabulary(subject)
        for kind in entry["kinds"]:
            for key in UNUSED_KIND_KEYS:
                kind.pop(key, None)
        subjects[subject] = entry
    return {"subjects": subjects, "sources": DATA_SOURCES}


def _url(name: str) -> str:
    # Without the endpoints mounted, the builder does not start and the
    # textarea works alone.
    try:
        return reverse(name)
    except NoReverseMatch:
        return ""
