"""The condition vocabulary shared by lifecycle success criteria and triggers.

This package imports no app. Each app registers the kinds of condition that
read its own data (customers: usage, dates, health, team, surveys, tickets),
and lifecycle and triggers compile stored condition trees to one ORM filter.
"""

from conditions.registry import (
    DATA_SOURCES,
    ConditionError,
    EvaluationContext,
    Kind,
    Param,
    Subject,
    compile_condition,
    describe,
    get_kind,
    kinds,
    reads,
    register,
    validate,
)

__all__ = [
    "DATA_SOURCES",
    "ConditionError",
    "EvaluationContext",
    "Kind",
    "Param",
    "Subject",
    "compile_condition",
    "describe",
    "get_kind",
    "kinds",
    "reads",
    "register",
    "validate",
]
