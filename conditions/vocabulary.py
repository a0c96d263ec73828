"""The vocabulary of conditions as plain data, for a rule builder and the admin.

vocabulary(subject) lists every kind and field a condition over that
subject may use, with the text that spells it and the parameters it takes,
as JSON-serialisable dicts. A builder that assembles trees from it can
write them with format_condition() and read them with parse_condition().
"""

from typing import Any

from conditions.fields import DATE_TYPES, TYPE_OPERATORS, fields
from conditions.formatting import ATTRIBUTE, keyword_params, signature
from conditions.registry import (
    TYPE_WORDS,
    Kind,
    Param,
    Subject,
    kinds,
)
from conditions.syntax import Slot


def vocabulary(subject: Subject) -> dict[str, Any]:
    """Return the kinds and fields usable in a condition over the subject type."""
    return {
        "subject": subject,
        "kinds": [
            _kind_entry(kind)
            for name, kind in sorted(kinds().items())
            if subject in kind.subjects
        ],
        "fields": [
            {
                "path": field.path,
                "label": field.label,
                "type": field.type,
                "choices": list(field.choices) if field.choices else None,
                "operators": list(TYPE_OPERATORS[field.type]),
                "date": field.type in DATE_TYPES,
            }
            for path, field in sorted(fields().items())
            if field.owner == subject or field.owner == "account"
        ],
    }


def _kind_entry(kind: Kind) -> dict[str, Any]:
    slots = {
        name: slot
        for slot in (kind.text.slots if kind.text else ())
        for name in slot.params
    }
    keywords = set(keyword_params(kind)) if kind.name != ATTRIBUTE else set()
    return {
        "name": kind.name,
        "text": kind.text.name if kind.text else None,
        "signature": signature(kind),
        "label": kind.label,
        "subjects": list(kind.subjects),
        "reads": sorted(kind.reads),
        "compared": kind.compared,
        "params": [
            _param_entry(name, param, slots.get(name), name in keywords)
            for name, param in kind.params.items()
        ],
    }


def _param_entry(
    name: str, param: Param, slot: Slot | None, keyword: bool
) -> dict[str, Any]:
    return {
        "name": name,
        "type": param.type.__name__,
        "type_words": TYPE_WORDS.get(param.type, param.type.__name__),
        "required": param.required,
        "default": param.default,
        "choices": list(param.choices) if param.choices is not None else None,
        "minimum": param.minimum,
        "maximum": param.maximum,
        "help": param.help,
        "subject": param.subject,
        # How the parameter is written: a slot type such as WindowSlot, "keyword",
        # or "comparison" for op and value.
        "written_as": (
            type(slot).__name__
            if slot is not None
            else ("keyword" if keyword else "comparison")
        ),
    }
