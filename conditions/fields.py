"""Fields that conditions compare, and the generic kinds over them.

Apps register the columns of their models that a CSM may name in a
condition, such as `account.plan` or `contact.role`, and the JSON fields
of custom CRM properties (`account.properties`), whose keys are free. The
kinds here compare a field with a value (`attribute`), count whole days
to or from a date field (`days_until`, `days_since`) or test whether a
date falls in a window (`date_within`). They read the current value of the
field, because the record keeps no history of its columns.
"""

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import F, JSONField, Q, Value
from django.db.models.fields.json import KeyTransform
from django.db.models.functions import TruncDate
from django.utils import timezone

from conditions.registry import (
    EQUALITY,
    ORDERING,
    ConditionError,
    EvaluationContext,
    Kind,
    Param,
    Scalar,
    Subject,
    compare,
    compare_local_date,
    register,
)
from conditions.syntax import FieldSlot, TextForm, WindowSlot

FIELD_TYPES = ("text", "number", "date", "datetime", "boolean", "properties")
DATE_TYPES = ("date", "datetime")
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")

# Operators that make sense for each field type.
TYPE_OPERATORS = {
    "text": ("==", "!=", "in"),
    "number": (*ORDERING, "!=", "in"),
    "date": (*ORDERING, "!="),
    "datetime": (*ORDERING, "!="),
    "boolean": ("==", "!="),
    "properties": (*ORDERING, "!=", "in"),
}
REVERSED = {">": "<", ">=": "<=", "<": ">", "<=": ">=", "==": "==", "!=": "!="}


@dataclass(frozen=True)
class Field:
    """A column that conditions may name, such as account.plan on Account.plan.

    path starts with the model it belongs to, account or contact. column is
    the model field's name. A properties field is a JSON object of custom
    CRM properties, named with a key after it: account.properties.industry.
    """

    path: str
    column: str
    type: str
    label: str
    choices: tuple[Any, ...] | None = None

    def __post_init__(self) -> None:
        if self.type not in FIELD_TYPES:
            raise ValueError(
                f"field {self.path!r} has unknown type {self.type!r}; "
                f"use one of {', '.join(FIELD_TYPES)}"
            )
        if self.owner not in ("account", "contact"):
            raise ValueError(
                f"field {self.path!r} must start with account. or contact."
            )

    @property
    def owner(self) -> str:
        return self.path.split(".", 1)[0]

    def orm_path(self, subject: Subject) -> str:
        """Return the ORM path to the column from the subject's model."""
        if self.owner == subject:
            return self.column
        if self.owner == "account":
            return f"account__{self.column}"
        raise ConditionError(
            f"{self.path} is a contact field and the subject is an account; "
            f"write it inside any_contact(...) or contacts(...)"
        )


_FIELDS: dict[str, Field] = {}


def register_field(field: Field) -> Field:
    """Add a field to the vocabulary; apps call this from AppConfig.ready()."""
    existing = _FIELDS.get(field.path)
    if existing is not None and existing != field:
        raise ValueError(f"condition field {field.path!r} is registered twice")
    _FIELDS[field.path] = field
    return field


def fields() -> dict[str, Field]:
    return dict(_FIELDS)


def resolve_field(path: str) -> tuple[Field, str | None]:
    """Return the field a path names and, for a properties field, the key.

    Raises ConditionError naming the known fields, and the closest ones,
    when the path names none.
    """
    if path in _FIELDS:
        field = _FIELDS[path]
        if field.type == "properties":
            raise ConditionError(
                f"{path} contains custom properties, so name one, "
                f"for example {path}.industry"
            )
        return field, None
    for field in _FIELDS.values():
        prefix = field.path + "."
        if field.type == "properties" and path.startswith(prefix):
            key = path[len(prefix) :]
            if not key:
                raise ConditionError(
                    f"the property name is empty; name one, for example "
                    f"{field.path}.industry"
                )
            return field, key
    raise ConditionError(unknown_field_message(path))


def unknown_field_message(path: str) -> str:
    known = sorted(_FIELDS)
    close = difflib.get_close_matches(path, known, n=3)
    hint = f"; did you mean {' or '.join(close)}?" if close else "."
    return f"unknown field {path!r}{hint} Known fields: {', '.join(known)}"


def field_expression(path: str, subject: Subject) -> Any:
    """Return the expression of a field path's value for the subject's model."""
    field, key = resolve_field(path)
    column = field.orm_path(subject)
    if key is not None:
        return KeyTransform(key, column)
    return F(column)


def date_expression(path: str, subject: Subject) -> Any:
    """Return a date field's value, or a datetime field's date in the site time zone."""
    field, _ = resolve_field(path)
    expression = field_expression(path, subject)
    if field.type == "datetime":
        return TruncDate(expression, tzinfo=timezone.get_current_timezone())
    return expression


# -- attribute ----------------------------------------------------------------


def check_attribute(params: Mapping[str, Any], subject: Subject) -> None:
    try:
        field, _key = resolve_field(params["field"])
        field.orm_path(subject)
    except ConditionError as exc:
        raise ConditionError(exc.message, param="field") from None
    op, value = params["op"], params["value"]
    allowed = TYPE_OPERATORS[field.type]
    if op not in allowed:
        raise ConditionError(
            f"{params['field']} is {field.type}; compare it with {', '.join(allowed)}",
            param="op",
        )
    if op == "in" and not isinstance(value, list):
        raise ConditionError(
            f'\'in\' needs a list, for example {params["field"]} in ["a", "b"]',
            param="value",
        )
    if op != "in" and isinstance(value, list):
        raise ConditionError(
            f"{op} compares with one value; use 'in' for a list", param="value"
        )
    for item in value if isinstance(value, list) else [value]:
        try:
            _check_value(field, params["field"], item)
        except ConditionError as exc:
            raise ConditionError(exc.message, param="value") from None


def _check_value(field: Field, path: str, value: Any) -> None:
    if field.type == "properties":
        return
    if field.type == "number" and (
        isinstance(value, bool) or not isinstance(value, int | float)
    ):
        raise ConditionError(f"{path} is a number; {value!r} is not")
    if field.type == "boolean" and not isinstance(value, bool):
        raise ConditionError(f"{path} is true or false; {value!r} is not")
    if field.type == "text" and not isinstance(value, str):
        raise ConditionError(f"{path} is text; write {value!r} in double quotes")
    if field.type in DATE_TYPES:
        _parse_date(path, value)
    if field.choices is not None and value not in field.choices:
        choices = ", ".join(repr(choice) for choice in field.choices)
        raise ConditionError(f"{path} is never {value!r}; it is one of {choices}")


def _parse_date(path: str, value: Any) -> date:
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise ConditionError(
            f'{path} is a date; write {value!r} as "YYYY-MM-DD"'
        ) from None


def value_attribute(context: EvaluationContext, params: Mapping[str, Any]) -> Any:
    """Select the field's value, as a date for date and datetime fields."""
    field, _ = resolve_field(params["field"])
    if field.type in DATE_TYPES:
        return date_expression(params["field"], context.subject)
    return field_expression(params["field"], context.subject)


def compile_attribute(context: EvaluationContext, params: Mapping[str, Any]) -> Q:
    field, _ = resolve_field(params["field"])
    value = params["value"]
    if field.type in DATE_TYPES:
        day = _parse_date(params["field"], value)
        return compare_date(context, params, params["op"], day)
    lhs = value_attribute(context, params)
    if field.type != "properties":
        return compare(lhs, params["op"], value)

    # A property is compared as JSON, so "fintech" must reach the database
    # as the JSON string '"fintech"' and 250 as the JSON number 250.
    values = value if isinstance(value, list) else [value]
    json_value = (
        [_json(item) for item in value] if isinstance(value, list) else _json(value)
    )
    comparison = compare(lhs, params["op"], json_value)
    if params["op"] in ("==", "in") and None not in values:
        # Equal to a value that is not null is never JSON null, so the test
        # below would only add a second JSON extraction per row.
        return comparison

    # A CRM that clears a property often stores JSON null. It counts as
    # missing, so that != and < are false for it as for an absent key.
    # A missing key makes this test NULL, but compare() is false there anyway.
    is_json_null = lhs.get_lookup("exact")(lhs, _json(None))
    return comparison & ~Q(is_json_null)


def _json(value: Any) -> Value:
    return Value(value, output_field=JSONField())


# -- relative dates -----------------------------------------------------------


def check_date_field(params: Mapping[str, Any], subject: Subject) -> None:
    field, _ = resolve_field(params["field"])
    field.orm_path(subject)
    if field.type not in DATE_TYPES:
        raise ConditionError(
            f"{params['field']} is {field.type}, not a date; date fields: "
            + ", ".join(
                path for path, f in sorted(_FIELDS.items()) if f.type in DATE_TYPES
            )
        )


def value_date(context: EvaluationContext, params: Mapping[str, Any]) -> Any:
    """Select the date that days_until, days_since and date_within compare.

    The compilers compare this date with a date computed from today rather
    than a day count with a number, which keeps the column bare. A preview
    shows the date with its distance from today in days, which is the count
    that days_until and days_since test.
    """
    return date_expression(params["field"], context.subject)


def compare_date(
    context: EvaluationContext, params: Mapping[str, Any], op: str, day: date
) -> Q:
    """Compare the date of params["field"] with a day.

    A datetime field is compared as its date in the site time zone, by
    bounds on the timestamp, so that no row is cast to a date.
    """
    field, _ = resolve_field(params["field"])
    column = field_expression(params["field"], context.subject)
    if field.type == "datetime":
        return compare_local_date(column, op, day)
    return compare(column, op, day)


def compile_days_until(context: EvaluationContext, params: Mapping[str, Any]) -> Q:
    """Days from today to the date; a date in the past gives a negative number."""
    # date - today OP n  <=>  date OP today + n, which keeps the column bare.
    today = timezone.localdate(context.as_of)
    target = today + timedelta(days=params["value"])
    return compare_date(context, params, params["op"], target)


def compile_days_since(context: EvaluationContext, params: Mapping[str, Any]) -> Q:
    """Days from the date to today; a date in the future gives a negative number."""
    # today - date OP n  <=>  date REVERSED(OP) today - n.
    today = timezone.localdate(context.as_of)
    target = today - timedelta(days=params["value"])
    return compare_date(context, params, REVERSED[params["op"]], target)


def compile_date_within(context: EvaluationContext, params: Mapping[str, Any]) -> Q:
    """Last N days: (today - N, today]. Next N days: [today, today + N]."""
    today = timezone.localdate(context.as_of)
    days = timedelta(days=params["days"])
    if params["direction"] == "next":
        start, end = (">=", today), ("<=", today + days)
    else:
        start, end = (">", today - days), ("<=", today)
    return compare_date(context, params, *start) & compare_date(context, params, *end)


FIELD = Param(str, help="A registered field, such as account.renewal_date.")
DAY_OPERATORS = (*ORDERING, "!=")

register(
    Kind(
        name="attribute",
        reads=frozenset({"crm"}),
        label="An account or contact field compared with a value",
        compile=compile_attribute,
        value=value_attribute,
        describe=lambda p: f"{p['field']} {p['op']} {p['value']!r}",
        params={
            "field": Param(
                str, help="A field such as account.plan or account.properties.industry."
            ),
            "op": Param(
                str, choices=ORDERING + tuple(EQUALITY[1:]), help="Comparison."
            ),
            "value": Param(Scalar, help="Value, or a list of values for 'in'."),
        },
        check=check_attribute,
    )
)
register(
    Kind(
        name="days_until",
        reads=frozenset({"crm"}),
        label="Days from today until a date",
        compile=compile_days_until,
        value=value_date,
        describe=lambda p: f"days until {p['field']} {p['op']} {p['value']}",
        params={
            "field": FIELD,
            "op": Param(str, choices=DAY_OPERATORS, help="Comparison."),
            "value": Param(int, minimum=-36500, maximum=36500, help="Days."),
        },
        text=TextForm("days_until", (FieldSlot("field"),)),
        check=check_date_field,
    )
)
register(
    Kind(
        name="days_since",
        reads=frozenset({"crm"}),
        label="Days since a date",
        compile=compile_days_since,
        value=value_date,
        describe=lambda p: f"days since {p['field']} {p['op']} {p['value']}",
        params={
            "field": FIELD,
            "op": Param(str, choices=DAY_OPERATORS, help="Comparison."),
            "value": Param(int, minimum=-36500, maximum=36500, help="Days."),
        },
        text=TextForm("days_since", (FieldSlot("field"),)),
        check=check_date_field,
    )
)
register(
    Kind(
        name="date_within",
        reads=frozenset({"crm"}),
        label="A date falls in the last or next N days",
        compile=compile_date_within,
        value=value_date,
        describe=lambda p: f"{p['field']} in the {p['direction']} {p['days']} days",
        params={
            "field": FIELD,
            "days": Param(int, minimum=0, maximum=3650, help="Days."),
            "direction": Param(
                str, choices=("last", "next"), help="Before or after today."
            ),
        },
        text=TextForm(
            "date_within",
            (FieldSlot("field"), WindowSlot("days", direction_param="direction")),
        ),
        check=check_date_field,
    )
)
