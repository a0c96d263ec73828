"""The trigger form of the admin: the condition is edited as text."""

from typing import Any, cast

from django import forms

from conditions import Subject
from conditions.forms import ConditionTextField
from conditions.widgets import ConditionBuilderWidget
from triggers.models import Trigger


class TriggerForm(forms.ModelForm):
    # The rule builder follows the subject type chosen in the same form.
    condition = ConditionTextField(
        label="Condition",
        widget=ConditionBuilderWidget(subject_field="subject_type"),
    )

    class Meta:
        model = Trigger
        fields = [
            "name",
            "slug",
            "description",
            "is_active",
            "subject_type",
            "condition",
            "occurrence",
            "reentry_days",
            "enroll_course",
            "enroll_path",
            "email_template",
            "recipients",
            "unenroll_when_unmatched",
            "holdout_percent",
        ]

    def clean_condition(self) -> Any:
        # subject_type comes before condition in the form, so it is cleaned
        # already unless it was invalid.
        subject = self.cleaned_data.get("subject_type")
        text = self.cleaned_data["condition"]
        if not subject:
            raise forms.ValidationError("Choose a subject type to check the condition.")
        field = cast(ConditionTextField, self.fields["condition"])
        return field.to_tree(text, cast(Subject, subject))

    def _post_clean(self) -> None:
        # When the text is invalid, the model's own clean() would add a second
        # error about the tree that was never built; keep only the first.
        # Both hooks are Django's, though private, so the stubs omit them.
        # Copy the list, because the model's errors are appended to this one.
        errors = self._errors  # type: ignore[attr-defined]
        text_errors = None
        if errors and "condition" in errors:
            text_errors = errors["condition"].copy()
        super()._post_clean()  # type: ignore[misc]
        if text_errors is not None:
            self._errors["condition"] = text_errors  # type: ignore[attr-defined]
