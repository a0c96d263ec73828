"""Condition trees written back as text, in the canonical spelling.

format_condition() writes what parse_condition() reads, so that
parse_condition(format_condition(tree)) == tree for every valid tree. Every
parameter present in the tree is written, defaults included, and none that
is absent, so the round trip keeps the tree exactly. Groups nested in a
group are put in parentheses even where precedence would not need them,
and a group with one condition is written all(...) or any(...).
"""

import json
import math
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from conditions.fields import NAME_PATTERN, resolve_field
from conditions.registry import (
    MAX_DEPTH,
    ConditionError,
    Kind,
    get_kind,
)
from conditions.syntax import (
    RESERVED_WORDS,
    ConditionSlot,
    DurationSlot,
    EventSlot,
    FieldSlot,
    Slot,
    SpanSlot,
    ValueSlot,
    WindowSlot,
)

ATTRIBUTE = "attribute"


def format_condition(tree: Any) -> str:
    """Write a condition tree as text; raise ConditionError for an invalid tree."""
    return _format(tree, "$", 0)


def _format(tree: Any, path: str, depth: int) -> str:
    if depth > MAX_DEPTH:
        raise ConditionError(f"conditions nest at most {MAX_DEPTH} groups deep", path)
    if not isinstance(tree, Mapping):
        raise ConditionError(f"expected an object, found {type(tree).__name__}", path)
    for key, joiner in (("all", " and "), ("any", " or ")):
        if key in tree:
            children = tree[key]
            if not isinstance(children, list) or not children:
                raise ConditionError(f"{key!r} needs a non-empty list", path)
            parts = [
                _format_operand(child, f"{path}.{key}[{index}]", depth + 1)
                for index, child in enumerate(children)
            ]
            if len(parts) == 1:
                return f"{key}({_format(children[0], f'{path}.{key}[0]', depth + 1)})"
            return joiner.join(parts)
    if "not" in tree:
        return "not " + _format_operand(tree["not"], f"{path}.not", depth + 1)
    return _format_leaf(tree, path, depth)


def _format_operand(tree: Any, path: str, depth: int) -> str:
    """Format a group's child, in parentheses when it is a group of several."""
    text = _format(tree, path, depth)
    if isinstance(tree, Mapping) and any(
        isinstance(tree.get(key), list) and len(tree[key]) > 1 for key in ("all", "any")
    ):
        return f"({text})"
    return text


def _format_leaf(tree: Mapping[str, Any], path: str, depth: int) -> str:
    if not isinstance(tree.get("kind"), str):
        raise ConditionError("expected 'kind', 'all', 'any' or 'not'", path)
    try:
        kind = get_kind(tree["kind"])
    except ConditionError as exc:
        raise ConditionError(exc.message, path) from None
    cleaned = kind.clean(tree, path)
    # A whole number stored as 10.0 is written 10, because the grammar reads
    # days only as whole numbers. Float parameters keep their spelling.
    whole = [name for name, param in kind.params.items() if param.type is int]
    tree = {**tree, **{name: cleaned[name] for name in whole if name in tree}}
    if kind.name == ATTRIBUTE:
        return _format_attribute(tree)
    if kind.text is None:
        raise ConditionError(f"kind {kind.name!r} has no text form", path)

    arguments = [
        text
        for slot in kind.text.slots
        if (text := _format_slot(slot, tree, path, depth)) is not None
    ]
    for name in keyword_params(kind):
        if tree.get(name) is not None:
            arguments.append(f"{name} {_format_keyword_value(kind, name, tree[name])}")

    text = kind.text.name
    if arguments:
        text += "(" + ", ".join(arguments) + ")"
    if kind.compared:
        text += f" {tree['op']} {format_value(tree['value'])}"
    return text


def keyword_params(kind: Kind) -> list[str]:
    """Return the parameters written as `name value`, in the kind's order."""
    in_slots = kind.text.slot_params() if kind.text else set()
    skipped = in_slots | ({"op", "value"} if kind.compared else set())
    return [name for name in kind.params if name not in skipped]


def _format_slot(
    slot: Slot, tree: Mapping[str, Any], path: str, depth: int
) -> str | None:
    value = tree.get(slot.param)
    if isinstance(slot, EventSlot):
        if value is None and not (slot.show_any or slot.feature):
            return None
        text = "event" if value is None else f"event {format_value(value)}"
        return text + ".feature" if slot.feature else text
    if value is None:
        return None
    if isinstance(slot, WindowSlot):
        direction = (
            tree.get(slot.direction_param) if slot.direction_param else slot.direction
        )
        return f"{direction} {_days(value)}"
    if isinstance(slot, DurationSlot):
        return _days(value)
    if isinstance(slot, SpanSlot):
        anchor = tree.get(slot.anchor)
        if anchor is None:
            return f"within {_days(value)}"
        return f"within {_days(value)} of {format_path(str(anchor))}"
    if isinstance(slot, FieldSlot):
        return format_path(value)
    if isinstance(slot, ValueSlot):
        if slot.bare and isinstance(value, str) and _is_bare_word(value):
            return value
        return format_value(value)
    if isinstance(slot, ConditionSlot):
        return _format(value, f"{path}.{slot.param}", depth + 1)
    raise TypeError(f"unknown slot {slot!r}")


def _format_keyword_value(kind: Kind, name: str, value: Any) -> str:
    # A list of one is written as the value alone, which parses back to a list.
    if kind.params[name].type is list and isinstance(value, list) and len(value) == 1:
        return format_value(value[0])
    return format_value(value)


def _format_attribute(tree: Mapping[str, Any]) -> str:
    field, _ = resolve_field(tree["field"])
    subject = format_path(tree["field"], properties=field.type == "properties")
    if field.type == "boolean" and tree["op"] == "==" and tree["value"] is True:
        return subject
    return f"{subject} {tree['op']} {format_value(tree['value'])}"


def format_path(path: str, properties: bool = False) -> str:
    """Write a field path, quoting a property key that is not a plain name."""
    if properties:
        owner, _, key = path.partition(".properties.")
        return f"{owner}.properties.{_segment(key)}"
    return ".".join(_segment(segment) for segment in path.split("."))


def _segment(segment: str) -> str:
    return segment if _is_bare_word(segment) else format_value(segment)


def _is_bare_word(text: str) -> bool:
    return bool(NAME_PATTERN.match(text)) and text not in RESERVED_WORDS


def _days(days: Any) -> str:
    return f"{format_value(days)} {'day' if days == 1 else 'days'}"


def format_value(value: Any) -> str:
    """Write a value as a literal: "text", 12, 4.5, true, false or [..]."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ConditionError(f"{value!r} is not a finite number")
        text = repr(value)
        # The grammar has no exponent; 1e-05 is written 0.00001.
        return format(Decimal(text), "f") if "e" in text else text
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list):
        return "[" + ", ".join(format_value(item) for item in value) + "]"
    raise ConditionError(f"{value!r} cannot be written in a condition")


def signature(kind: Kind) -> str:
    """Return the pattern of a kind's text, such as `count(event "…", last N days)`."""
    if kind.name == ATTRIBUTE:
        return 'account.plan == "Pro"'
    if kind.text is None:
        return kind.name
    parts = [_slot_pattern(slot) for slot in kind.text.slots]
    parts += [
        f"{name} …" for name in keyword_params(kind) if kind.params[name].required
    ]
    text = kind.text.name + ("(" + ", ".join(parts) + ")" if parts else "")
    return text + " >= N" if kind.compared else text


def _slot_pattern(slot: Slot) -> str:
    if isinstance(slot, EventSlot):
        return 'event "…".feature' if slot.feature else 'event "…"'
    if isinstance(slot, WindowSlot):
        direction = "last|next" if slot.direction_param else slot.direction
        return f"{direction} N days"
    if isinstance(slot, DurationSlot):
        return "N days"
    if isinstance(slot, SpanSlot):
        return "within N days of …"
    if isinstance(slot, FieldSlot):
        return "account.…_date"
    if isinstance(slot, ConditionSlot):
        return "condition"
    return f'"{slot.param}"'
