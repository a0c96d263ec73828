"""The condition vocabulary shared by lifecycle success criteria and triggers.

This package knows no app. Apps register the kinds of condition that read
their own data (customers: usage, dates, surveys; courses: learning state),
and lifecycle and triggers compile stored condition trees to one ORM filter.
"""

from conditions.registry import (
    ConditionError,
    EvaluationContext,
    Kind,
    Param,
    Subject,
    compile_condition,
    describe,
    get_kind,
    kinds,
    register,
    validate,
)

__all__ = [
    "ConditionError",
    "EvaluationContext",
    "Kind",
    "Param",
    "Subject",
    "compile_condition",
    "describe",
    "get_kind",
    "kinds",
    "register",
    "validate",
]
