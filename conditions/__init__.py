"""The condition vocabulary shared by lifecycle success criteria and triggers.

This package imports no app. Each app registers the kinds of condition that
read its own data (customers: usage, dates, health, team, surveys, tickets;
courses: learning; lifecycle: stages) and the fields a condition may
compare, and lifecycle and triggers compile stored condition trees to one
ORM filter. CSMs write conditions as text (parse_condition), which is
stored as the tree and shown again with format_condition.
"""

from conditions.fields import Field, fields, register_field, resolve_field
from conditions.formatting import format_condition
from conditions.language import ConditionSyntaxError, load_json_tree, parse_condition
from conditions.registry import (
    DATA_SOURCES,
    ConditionError,
    EvaluationContext,
    Kind,
    MissingReferenceError,
    NestedCondition,
    Param,
    Scalar,
    Subject,
    compare,
    compare_local_date,
    compile_condition,
    describe,
    get_kind,
    kinds,
    leaf_value,
    reads,
    register,
    validate,
)
from conditions.syntax import (
    ConditionSlot,
    DurationSlot,
    EventSlot,
    FieldSlot,
    SpanSlot,
    TextForm,
    ValueSlot,
    WindowSlot,
)
from conditions.vocabulary import vocabulary

__all__ = [
    "DATA_SOURCES",
    "ConditionError",
    "ConditionSlot",
    "ConditionSyntaxError",
    "DurationSlot",
    "EvaluationContext",
    "EventSlot",
    "Field",
    "FieldSlot",
    "Kind",
    "MissingReferenceError",
    "NestedCondition",
    "Param",
    "Scalar",
    "SpanSlot",
    "Subject",
    "TextForm",
    "ValueSlot",
    "WindowSlot",
    "compare",
    "compare_local_date",
    "compile_condition",
    "describe",
    "fields",
    "format_condition",
    "get_kind",
    "kinds",
    "leaf_value",
    "load_json_tree",
    "parse_condition",
    "reads",
    "register",
    "register_field",
    "resolve_field",
    "validate",
    "vocabulary",
]
