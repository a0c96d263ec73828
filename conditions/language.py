"""The text language of conditions: what a CSM types, parsed into a tree.

    days_until(account.renewal_date) <= 90 and account.health_score > 70
    count(event "Signed In", last 10 days) == 0
    any_contact(contact.role == "admin" and completed("getting-started"))

The stored form stays the JSON tree of conditions.registry. parse_condition()
builds that tree from text with the lark grammar in grammar.lark, then
validates it for the subject type; formatting.format_condition() writes a
tree back as canonical text. Each kind's TextForm says how it is spelled,
so an app that registers a kind adds it to the language too.

Every error is a ConditionSyntaxError with the line and column of the
fault, counted from 1, and, for a syntax error, the words expected there.
"""

import difflib
import json
import re
from collections.abc import Iterator, Mapping
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from lark import Lark, Token, Tree
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput

from conditions.fields import fields, resolve_field
from conditions.formatting import ATTRIBUTE, keyword_params, signature
from conditions.registry import (
    MAX_DEPTH,
    ConditionError,
    Kind,
    NestedCondition,
    Subject,
    _walk,
    check_subject,
    kinds,
    unstorable_text,
    validate,
)
from conditions.syntax import (
    ConditionSlot,
    DurationSlot,
    EventSlot,
    FieldSlot,
    Slot,
    SpanSlot,
    ValueSlot,
    WindowSlot,
)

GRAMMAR = (Path(__file__).with_name("grammar.lark")).read_text()
PARSER = Lark(GRAMMAR, parser="lalr", propagate_positions=True, maybe_placeholders=True)
# Longer text is rejected before parsing, because no CSM writes conditions
# that long, and validation caps the tree's depth anyway.
MAX_LENGTH = 10_000

# What each terminal of the grammar is called in an error message.
TOKEN_WORDS = {
    "NAME": "a name such as account.plan or count",
    "STRING": 'text in double quotes, such as "Signed In"',
    "NUMBER": "a number",
    "EQ": "a comparison such as >= or ==",
    "NE": "a comparison such as >= or ==",
    "GE": "a comparison such as >= or ==",
    "LE": "a comparison such as >= or ==",
    "GT": "a comparison such as >= or ==",
    "LT": "a comparison such as >= or ==",
    "IN": "'in'",
    "_OR": "'or'",
    "_AND": "'and'",
    "_NOT": "'not'",
    "ALL": "all(...)",
    "ANY": "any(...)",
    "EVENT": "event",
    "FEATURE": "feature",
    "LAST": "last or next",
    "NEXT": "last or next",
    "DAY": "days",
    "DAYS": "days",
    "WITHIN": "within",
    "OF": "of",
    "TRUE": "true or false",
    "FALSE": "true or false",
    "EQUALS": "'='",
    "_LPAR": "'('",
    "_RPAR": "')'",
    "_LSQB": "'['",
    "_RSQB": "']'",
    "_COMMA": "','",
    "_DOT": "'.'",
    "$END": "the end of the condition",
}
# Shown first, in this order, because they say the most about what is missing.
WORD_ORDER = ("a number", "a comparison such as >= or ==", "')'", "','")
# The escapes that text in double quotes accepts: those of JSON, which
# format_condition writes for quotes, backslashes and control characters.
ESCAPES = '\\" \\\\ \\/ \\b \\f \\n \\r \\t \\uXXXX'
# Something that looks like a number to a person, with an exponent or a
# point without digits after it, which the grammar does not read.
NUMBER_LIKE = re.compile(r"-?[0-9]+(?:\.[0-9]*)?(?:[eE][+-]?[0-9]+)?")


class ConditionSyntaxError(ConditionError):
    """Text that is not a valid condition, with where and what was expected.

    line and column count from 1. expected lists what would have been
    accepted at that point, in words, for a syntax error; it is empty for
    an error in the meaning, such as an unknown field.
    """

    def __init__(
        self, message: str, line: int, column: int, expected: tuple[str, ...] = ()
    ) -> None:
        super().__init__(message, f"line {line}, column {column}")
        self.line = line
        self.column = column
        self.expected = expected


def parse_condition(
    text: str, subject: Subject, check_references: bool = True
) -> dict[str, Any]:
    """Parse condition text into a validated tree for the subject type.

    check_references=False skips looking up the courses, stages and other
    rows the condition names, which needs the database.
    """
    try:
        check_subject(subject)
    except ConditionError as exc:
        raise ConditionSyntaxError(exc.message, 1, 1) from None
    if len(text) > MAX_LENGTH:
        raise ConditionSyntaxError(
            f"the condition is {len(text)} characters long; at most {MAX_LENGTH}",
            1,
            1,
        )
    if not text.strip():
        raise ConditionSyntaxError(
            "the condition is empty; write one such as inactive(last 10 days)",
            1,
            1,
            ("a condition",),
        )
    try:
        syntax_tree = PARSER.parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(exc, text) from None

    builder = _Builder()
    tree = builder.condition(syntax_tree.children[0])
    try:
        if check_references:
            validate(tree, subject)
        else:
            _validate_structure(tree, subject)
    except ConditionError as exc:
        line, column = builder.position_of(tree, exc.path, exc.param)
        raise ConditionSyntaxError(exc.message, line, column) from None
    return tree


def load_json_tree(text: str) -> Any:
    """Decode a condition tree written as JSON text; raise ConditionSyntaxError.

    The nesting depth is checked before decoding, because json.loads
    recurses once per level and deep enough text exhausts Python's stack.
    NaN and Infinity, which json.loads accepts, are rejected, because SQL
    cannot compare with them.
    """
    _check_json_text(text)
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConditionSyntaxError(
            f"invalid JSON: {exc.msg}", exc.lineno, exc.colno
        ) from None


# Each level of a tree opens at most two brackets, as in {"all": [...]}, and
# a leaf's list value one more, so deeper JSON cannot be a valid tree.
MAX_JSON_DEPTH = 2 * MAX_DEPTH + 2
JSON_TOKEN = re.compile(r'"(?:[^"\\]|\\.)*"|[\[\]{}]|-?Infinity|NaN')


def _check_json_text(text: str) -> None:
    depth = 0
    for match in JSON_TOKEN.finditer(text):
        token = match.group()
        if token in ("{", "["):
            depth += 1
        elif token in ("}", "]"):
            depth -= 1
        elif not token.startswith('"'):
            line, column = _offset_position(text, match.start())
            raise ConditionSyntaxError(
                f"{token} is not a finite number; write a number such as 70",
                line,
                column,
            )
        if depth > MAX_JSON_DEPTH:
            line, column = _offset_position(text, match.start())
            raise ConditionSyntaxError(
                f"the JSON nests too deeply; conditions nest at most {MAX_DEPTH} "
                "groups deep",
                line,
                column,
            )


def _offset_position(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset) + 1
    return line, offset - (text.rfind("\n", 0, offset) + 1) + 1


def _validate_structure(tree: Any, subject: Subject) -> None:
    _walk(tree, subject, "$", leaf=lambda kind, params, path, subject: None)


# -- syntax errors -------------------------------------------------------------


def _syntax_error(exc: UnexpectedInput, text: str) -> ConditionSyntaxError:
    number_hint = _number_hint(text, exc.pos_in_stream)
    if isinstance(exc, UnexpectedCharacters):
        expected = _words(exc.allowed or set())
        found = text[exc.pos_in_stream or 0]
        if found == '"':
            # The STRING terminal failed to match, so no closing quote follows.
            message = 'a text value is not closed; add the closing "'
        else:
            message = f"unexpected character {found!r}; expected {_join(expected)}"
        if number_hint:
            message += f"; {number_hint}"
        return ConditionSyntaxError(message, exc.line, exc.column, expected)

    expected = _words(_accepted(exc))
    token = getattr(exc, "token", None)
    if isinstance(exc, UnexpectedEOF) or token is None or token.type == "$END":
        line, column = _end_position(text)
        message = f"the condition ends too early; expected {_join(expected)}"
        return ConditionSyntaxError(message, line, column, expected)

    message = f"expected {_join(expected)}, found {str(token)!r}"
    hint = number_hint or _hint(token, expected)
    if hint:
        message += f"; {hint}"
    return ConditionSyntaxError(message, token.line or 1, token.column or 1, expected)


def _number_hint(text: str, offset: int | None) -> str:
    """Return advice for a number with an exponent or a bare point at offset."""
    if offset is None:
        return ""
    start = offset
    while start > 0 and text[start - 1] in "0123456789.-+eE":
        start -= 1
    match = NUMBER_LIKE.match(text, start)
    if match is None or not match.start() <= offset < match.end():
        return ""
    if start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        return ""
    written = match.group()
    if "e" in written.lower():
        try:
            value = Decimal(written)
        except InvalidOperation:
            return ""
        return f"numbers are written without an exponent; write {value:f}"
    if written.endswith("."):
        whole = written[:-1]
        return f"write {whole} or {whole}.5, with digits after the point"
    return ""


def _accepted(exc: UnexpectedInput) -> set[str]:
    """Return the terminals the parser would have accepted where it stopped.

    LALR tables merge states, so the expected set of the error can name
    tokens that are not valid there, such as ')' at the top level. Asking
    the interactive parser gives the exact set.
    """
    interactive = getattr(exc, "interactive_parser", None)
    if interactive is not None:
        try:
            return set(interactive.accepts())
        except UnexpectedInput:
            pass
    return set(getattr(exc, "expected", None) or set())


def _hint(token: Token, expected: tuple[str, ...]) -> str:
    if token.type == "EQUALS":
        return "write == to compare"
    if token.type == "NAME" and token.lower() in ("and", "or", "not"):
        return f"write {token.lower()} in lower case"
    if token.type == "NAME" and ("'and'" in expected or "','" in expected):
        return "separate arguments with ',' and join conditions with and or or"
    return ""


def _words(names: set[str]) -> tuple[str, ...]:
    words = {TOKEN_WORDS.get(name, name) for name in names}
    first = [word for word in WORD_ORDER if word in words]
    return tuple(first + sorted(words - set(first)))


def _join(words: tuple[str, ...]) -> str:
    if not words:
        return "something else"
    if len(words) == 1:
        return words[0]
    return ", ".join(words[:-1]) + " or " + words[-1]


def _end_position(text: str) -> tuple[int, int]:
    stripped = text.rstrip()
    lines = stripped.split("\n")
    return len(lines), len(lines[-1]) + 1


# -- building the tree ---------------------------------------------------------


# Lark types every child as Tree | Token; the grammar fixes which one each is,
# so the builder takes them as Any.
Node = Any


def _position(node: Node) -> tuple[int, int]:
    if isinstance(node, Token):
        return node.line or 1, node.column or 1
    # A rule that matched no token, which the grammar does not allow today,
    # would have no position.
    return getattr(node.meta, "line", 1), getattr(node.meta, "column", 1)


def _error(node: Node, message: str) -> ConditionSyntaxError:
    line, column = _position(node)
    return ConditionSyntaxError(message, line, column)


def _kind_by_text_name() -> dict[str, Kind]:
    return {kind.text.name: kind for kind in kinds().values() if kind.text is not None}


def _decode(node: Node) -> Any:
    """Turn a literal of the grammar into its Python value."""
    if isinstance(node, Tree):
        return [_decode(child) for child in node.children if child is not None]
    if node is None:
        raise ValueError("missing literal")
    if node.type == "STRING":
        try:
            text = json.loads(node, strict=False)
        except json.JSONDecodeError:
            raise _error(
                node, f"invalid escape in {node}; text accepts {ESCAPES}"
            ) from None
        problem = unstorable_text(text)
        if problem:
            raise _error(node, problem)
        return text
    if node.type == "NUMBER":
        return float(node) if "." in node else int(node)
    if node.type in ("TRUE", "FALSE"):
        return node.type == "TRUE"
    raise _error(node, f"expected a value, found {str(node)!r}")


class _Builder:
    """Builds a condition tree from lark's parse tree, remembering positions.

    positions maps id() of each condition node to where it starts, and
    argument_positions maps id() of a leaf to where each of its parameters
    was written, so a validation error points at the faulty argument.
    """

    def __init__(self) -> None:
        self.by_name = _kind_by_text_name()
        self.positions: dict[int, tuple[int, int]] = {}
        self.argument_positions: dict[int, dict[str, tuple[int, int]]] = {}
        self.depth = 0

    def condition(self, node: Node) -> dict[str, Any]:
        # Checked while building, as validation does on the tree, because
        # this builder recurses once per level and text of 10,000 characters
        # can nest 2,500 levels, enough to exhaust Python's stack.
        if self.depth > MAX_DEPTH:
            raise _error(
                node,
                f"conditions nest at most {MAX_DEPTH} groups deep; flatten this one",
            )
        self.depth += 1
        try:
            tree = self._condition(node)
        finally:
            self.depth -= 1
        self.positions.setdefault(id(tree), _position(node))
        return tree

    def _condition(self, node: Node) -> dict[str, Any]:
        if node.data == "disjunction":
            return {"any": [self.condition(child) for child in node.children]}
        if node.data == "conjunction":
            return {"all": [self.condition(child) for child in node.children]}
        if node.data == "not_expr":
            return {"not": self.condition(node.children[0])}
        if node.data == "group":
            key = "all" if node.children[0].type == "ALL" else "any"
            return {key: [self.condition(child) for child in node.children[1:]]}
        if node.data == "test":
            return self._test(node)
        raise _error(node, f"expected a condition, found {node.data}")

    # -- leaves

    def _test(self, node: Node) -> dict[str, Any]:
        operand, comparator, value = node.children
        where: dict[str, tuple[int, int]] = {}
        if comparator is not None:
            where["op"] = _position(comparator)
            where["value"] = _position(value)
        if operand.data == "call":
            name_token, arguments = operand.children
            kind = self._call_kind(name_token)
            params = self._arguments(kind, name_token, arguments, where)
        else:
            segments = self._segments(operand)
            path_kind = self.by_name.get(".".join(segments))
            if path_kind is None:
                leaf = self._attribute(operand, segments, comparator, value)
                where["field"] = _position(operand)
                self.argument_positions[id(leaf)] = where
                return leaf
            kind = path_kind
            params = self._arguments(kind, operand, None, where)

        if kind.compared:
            if comparator is None:
                raise _error(
                    operand,
                    f"{kind.text.name if kind.text else kind.name} is a number; "
                    f"compare it, for example {signature(kind)}",
                )
            params["op"] = str(comparator.children[0])
            params["value"] = _decode(value)
        elif comparator is not None:
            raise _error(
                comparator,
                f"{signature(kind)} is true or false and takes no comparison; "
                f"remove {str(comparator.children[0])!r}",
            )
        leaf = {"kind": kind.name, **params}
        self.argument_positions[id(leaf)] = where
        return leaf

    def _call_kind(self, name_token: Node) -> Kind:
        kind = self.by_name.get(str(name_token))
        if kind is not None and "." not in str(name_token):
            return kind
        known = sorted(name for name in self.by_name if "." not in name)
        raise _error(
            name_token,
            _unknown(f"function {str(name_token)!r}", str(name_token), known)
            + " Known functions: "
            + ", ".join(known),
        )

    def _segments(self, path: Node) -> list[str]:
        return [
            _decode(segment) if segment.type == "STRING" else str(segment)
            for segment in path.children
        ]

    def _attribute(
        self,
        operand: Node,
        segments: list[str],
        comparator: Node,
        value: Any,
    ) -> dict[str, Any]:
        path = ".".join(segments)
        if len(segments) == 1:
            known = sorted(self.by_name) + sorted(fields())
            raise _error(
                operand,
                _unknown(f"name {path!r}", path, known)
                + " Write a field such as account.plan or a function such as "
                "count(...).",
            )
        try:
            field, _ = resolve_field(path)
        except ConditionError as exc:
            raise _error(operand, exc.message) from None
        if comparator is None:
            if field.type != "boolean":
                raise _error(
                    operand,
                    f"{path} is {field.type}; compare it, for example {path} == ...",
                )
            return {"kind": ATTRIBUTE, "field": path, "op": "==", "value": True}
        return {
            "kind": ATTRIBUTE,
            "field": path,
            "op": str(comparator.children[0]),
            "value": _decode(value),
        }

    # -- arguments

    def _arguments(
        self,
        kind: Kind,
        call: Node,
        arguments: Node,
        where: dict[str, tuple[int, int]],
    ) -> dict[str, Any]:
        """Build a call's parameters; record where each was written in where."""
        assert kind.text is not None
        params: dict[str, Any] = {}
        for argument in arguments.children if arguments is not None else []:
            before = set(params)
            self._argument(kind, argument, params)
            for name in set(params) - before:
                where[name] = _position(argument)

        for slot in kind.text.slots:
            param = kind.params[slot.param]
            if param.required and slot.param not in params:
                raise _error(
                    call,
                    f"{kind.text.name} needs {_slot_words(slot)}; "
                    f"write {signature(kind)}",
                )
        ordered = {name: params[name] for name in kind.params if name in params}
        return ordered

    def _argument(self, kind: Kind, argument: Node, params: dict[str, Any]) -> None:
        data = argument.data
        if data == "event_ref":
            self._event(kind, argument, params)
        elif data == "window":
            self._window(kind, argument, params)
        elif data == "duration":
            slot = self._slot(kind, DurationSlot, argument)
            self._set(params, slot.param, self._days(argument.children[0]), argument)
        elif data == "span":
            slot = self._slot(kind, SpanSlot, argument)
            assert isinstance(slot, SpanSlot)
            self._set(params, slot.param, self._days(argument.children[1]), argument)
            # "within 7 days" without "of ..." leaves the anchor to its default.
            if argument.children[4] is not None:
                anchor = ".".join(self._segments(argument.children[4]))
                self._set(params, slot.anchor, anchor, argument)
        elif data == "keyword":
            self._keyword(kind, argument, params)
        elif data == "literal":
            slot = self._free_value_slot(kind, params, argument)
            value = _decode(argument.children[0])
            if kind.params[slot.param].type is list and not isinstance(value, list):
                value = [value]
            self._set(params, slot.param, value, argument)
        else:
            self._condition_argument(kind, argument, params)

    def _slot(self, kind: Kind, slot_type: type, argument: Node) -> Slot:
        assert kind.text is not None
        for slot in kind.text.slots:
            if isinstance(slot, slot_type):
                return slot
        raise _error(
            argument,
            f"{kind.text.name} takes no {_argument_words(argument.data)}; "
            f"write {signature(kind)}",
        )

    def _set(self, params: dict[str, Any], name: str, value: Any, node: Node) -> None:
        if name in params:
            raise _error(node, f"{name} is given twice")
        params[name] = value

    def _days(self, token: Node) -> int:
        value = _decode(token)
        if not isinstance(value, int):
            raise _error(token, f"write a whole number of days, not {token}")
        return value

    def _event(self, kind: Kind, argument: Node, params: dict[str, Any]) -> None:
        assert kind.text is not None
        slot = self._slot(kind, EventSlot, argument)
        assert isinstance(slot, EventSlot)
        _, name, feature = argument.children
        if feature is not None and not slot.feature:
            raise _error(
                feature,
                f"{kind.text.name} counts events, not features; remove .feature",
            )
        if feature is None and slot.feature:
            raise _error(
                argument,
                f"{kind.text.name} counts features; write event.feature or "
                f'event "Feature Used".feature',
            )
        if slot.param in params:
            raise _error(argument, f"{kind.text.name} takes one event")
        if name is not None:
            params[slot.param] = _decode(name)

    def _window(self, kind: Kind, argument: Node, params: dict[str, Any]) -> None:
        assert kind.text is not None
        slot = self._slot(kind, WindowSlot, argument)
        assert isinstance(slot, WindowSlot)
        direction = str(argument.children[0])
        if slot.direction_param is None and direction != slot.direction:
            raise _error(
                argument.children[0],
                f"{kind.text.name} looks at the {slot.direction} days; "
                f"write {slot.direction} {argument.children[1]} days",
            )
        self._set(params, slot.param, self._days(argument.children[1]), argument)
        if slot.direction_param is not None:
            params[slot.direction_param] = direction

    def _keyword(self, kind: Kind, argument: Node, params: dict[str, Any]) -> None:
        assert kind.text is not None
        name_token, _, value_node = argument.children
        name = str(name_token)
        allowed = keyword_params(kind)
        if name not in allowed:
            known = ", ".join(allowed) or "none"
            raise _error(
                name_token,
                f"{kind.text.name} has no keyword {name!r}; its keywords: {known}",
            )
        value = _decode(value_node)
        if kind.params[name].type is list and not isinstance(value, list):
            value = [value]
        self._set(params, name, value, argument)

    def _free_value_slot(
        self, kind: Kind, params: dict[str, Any], argument: Node
    ) -> ValueSlot:
        assert kind.text is not None
        for slot in kind.text.slots:
            if isinstance(slot, ValueSlot) and slot.param not in params:
                return slot
        raise _error(
            argument,
            f"{kind.text.name} takes no further value here; write {signature(kind)}",
        )

    def _condition_argument(
        self, kind: Kind, argument: Node, params: dict[str, Any]
    ) -> None:
        assert kind.text is not None
        bare = self._bare_path(argument)
        for slot in kind.text.slots:
            if slot.param in params:
                continue
            if isinstance(slot, FieldSlot) and bare is not None:
                params[slot.param] = ".".join(bare)
                return
            if isinstance(slot, ValueSlot) and slot.bare and bare and len(bare) == 1:
                params[slot.param] = bare[0]
                return
            if isinstance(slot, ConditionSlot):
                params[slot.param] = self.condition(argument)
                return
        raise _error(
            argument,
            f"{kind.text.name} takes no condition or field here; "
            f"write {signature(kind)}",
        )

    def _bare_path(self, argument: Node) -> list[str] | None:
        """Return the segments of an argument that is a plain path, else None."""
        if argument.data != "test":
            return None
        operand, comparator, _ = argument.children
        if comparator is not None or operand.data != "path":
            return None
        segments = self._segments(operand)
        if ".".join(segments) in self.by_name:
            return None
        return segments

    # -- positions of validation errors

    def position_of(
        self, tree: Any, path: str, param: str | None = None
    ) -> tuple[int, int]:
        """Return the line and column of a validation error's path and parameter.

        That is where the parameter was written when the error names one,
        and otherwise where the node at path, or its nearest parent, starts.
        """
        nodes = dict(_node_paths(tree, "$"))
        leaf = nodes.get(path)
        if param is not None and leaf is not None:
            written = self.argument_positions.get(id(leaf), {})
            if param in written:
                return written[param]
        while path:
            node = nodes.get(path)
            if node is not None and id(node) in self.positions:
                return self.positions[id(node)]
            path = path.rpartition(".")[0] if "." in path else ""
        return 1, 1


def _node_paths(tree: Any, path: str) -> Iterator[tuple[str, Any]]:
    yield path, tree
    if not isinstance(tree, Mapping):
        return
    for key in ("all", "any"):
        if isinstance(tree.get(key), list):
            for index, child in enumerate(tree[key]):
                yield from _node_paths(child, f"{path}.{key}[{index}]")
    if "not" in tree:
        yield from _node_paths(tree["not"], f"{path}.not")
    kind = kinds().get(str(tree.get("kind")))
    if kind is None:
        return
    for name, param in kind.params.items():
        if param.type is NestedCondition and isinstance(tree.get(name), Mapping):
            yield from _node_paths(tree[name], f"{path}.{name}")


def _unknown(what: str, name: str, known: list[str]) -> str:
    close = difflib.get_close_matches(name, known, n=3)
    if close:
        return f"unknown {what}; did you mean {' or '.join(close)}?"
    return f"unknown {what}."


def _slot_words(slot: Slot) -> str:
    if isinstance(slot, WindowSlot):
        return f"a window such as {slot.direction} 7 days"
    if isinstance(slot, EventSlot):
        return 'an event such as event "Signed In"'
    if isinstance(slot, DurationSlot):
        return "a number of days such as 7 days"
    if isinstance(slot, SpanSlot):
        return "a span such as within 7 days of kickoff"
    if isinstance(slot, FieldSlot):
        return "a date field such as account.renewal_date"
    if isinstance(slot, ConditionSlot):
        return "a condition"
    return f"a value for {slot.param}"


def _argument_words(data: str) -> str:
    return {
        "event_ref": "event",
        "window": "window",
        "duration": "number of days",
        "span": "span",
        "literal": "value",
        "keyword": "keyword",
    }.get(data, "condition")
