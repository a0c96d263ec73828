"""Checks that a JSON value from a request can be stored in a jsonb column.

PostgreSQL's jsonb rejects the NUL character and unpaired UTF-16
surrogates, which customers.ingestion's SURROGATE pattern finds.
"""

from typing import Any

from customers.ingestion import SURROGATE


def storage_problem(value: Any, max_depth: int, depth: int = 0) -> str:
    """Return why value cannot be stored as jsonb, or an empty string.

    Values nested more than max_depth levels are rejected too, so a hostile
    body cannot exhaust the stack of whatever reads it next.
    """
    if depth > max_depth:
        return f"is nested more than {max_depth} levels deep"
    if isinstance(value, str):
        return _text_problem(value)
    if isinstance(value, dict):
        items = [*value.keys(), *value.values()]
    elif isinstance(value, list):
        items = value
    else:
        return ""
    for item in items:
        problem = storage_problem(item, max_depth, depth + 1)
        if problem:
            return problem
    return ""


def nesting_exceeds(value: Any, max_depth: int, depth: int = 0) -> bool:
    """Return whether value has containers nested more than max_depth levels.

    It counts levels as storage_problem does, where a top-level object's
    values are at level 1.
    """
    if depth > max_depth:
        return True
    if isinstance(value, dict):
        items: Any = value.values()
    elif isinstance(value, list):
        items = value
    else:
        return False
    return any(nesting_exceeds(item, max_depth, depth + 1) for item in items)


def _text_problem(text: str) -> str:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    if SURROGATE.search(text):
        return "contains an unpaired UTF-16 surrogate, which is not valid Unicode"
    return ""
