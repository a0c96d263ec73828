"""A form field that edits a stored condition tree as text.

The admin shows format_condition(tree) in a textarea and parses what the
CSM typed back into a tree on save. Text that starts with "{" is read as
the JSON tree itself, for scripts that post the stored form.
"""

import json
from collections.abc import Mapping
from typing import Any

from django import forms

from conditions.formatting import format_condition
from conditions.language import ConditionSyntaxError, load_json_tree, parse_condition
from conditions.registry import ConditionError, Subject, validate

HELP_TEXT = (
    'For example: count(event "Signed In", last 10 days) == 0 and '
    "days_until(account.renewal_date) <= 90. Join conditions with and, or, not "
    "and parentheses; the reference below lists every function and field."
)


class ConditionTextField(forms.CharField):
    """A condition typed as text; cleans to the tree when the subject is known.

    With subject=None (a trigger, whose subject type is another field of
    the form) clean() returns the text, and the form calls to_tree().
    """

    def __init__(self, subject: Subject | None = None, **kwargs: Any) -> None:
        kwargs.setdefault(
            "widget",
            forms.Textarea(
                attrs={
                    "rows": 6,
                    "cols": 90,
                    "spellcheck": "false",
                    "class": "vLargeTextField",
                }
            ),
        )
        kwargs.setdefault("help_text", HELP_TEXT)
        super().__init__(strip=False, **kwargs)
        self.subject = subject

    def prepare_value(self, value: Any) -> Any:
        if isinstance(value, Mapping):
            try:
                return format_condition(value)
            except ConditionError:
                # A stored tree that no longer validates is shown as JSON, so
                # the CSM can see and fix it.
                return json.dumps(value)
        return value

    def has_changed(self, initial: Any, data: Any) -> bool:
        return str(self.prepare_value(initial) or "").strip() != str(data or "").strip()

    def clean(self, value: Any) -> Any:
        text = super().clean(value)
        if self.subject is None:
            return text
        return self.to_tree(text, self.subject)

    def to_tree(self, text: str, subject: Subject) -> dict[str, Any]:
        """Parse text (or a JSON tree) into a validated tree; raise ValidationError."""
        if text.strip().startswith("{"):
            return _json_tree(text, subject)
        try:
            return parse_condition(text, subject)
        except ConditionSyntaxError as exc:
            raise forms.ValidationError(
                "Line %(line)s, column %(column)s: %(message)s",
                code="invalid_condition",
                params={
                    "line": exc.line,
                    "column": exc.column,
                    "message": exc.message,
                },
            ) from exc


def _json_tree(text: str, subject: Subject) -> dict[str, Any]:
    try:
        tree = load_json_tree(text)
    except ConditionSyntaxError as exc:
        raise forms.ValidationError(
            "Invalid JSON at line %(line)s, column %(column)s: %(message)s",
            code="invalid_json",
            params={"line": exc.line, "column": exc.column, "message": exc.message},
        ) from exc
    try:
        validate(tree, subject)
    except ConditionError as exc:
        raise forms.ValidationError(
            "Invalid condition at %(path)s: %(message)s",
            code="invalid_condition",
            params={"path": exc.path, "message": exc.message},
        ) from exc
    return tree
