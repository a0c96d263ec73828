"""Checks that a JSON value from a request can be stored in a jsonb column."""

import re
from typing import Any

# PostgreSQL's jsonb rejects the NUL character and unpaired UTF-16 surrogates.
SURROGATE = re.compile("[\ud800-\udfff]")


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


def _text_problem(text: str) -> str:
    if "\x00" in text:
        return "contains a NUL character (\\u0000), which cannot be stored"
    if SURROGATE.search(text):
        return "contains an unpaired UTF-16 surrogate, which is not valid Unicode"
    return ""
