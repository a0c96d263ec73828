"""Condition trees, their validation and their compilation to a Q object.

A condition is stored as JSON. A leaf names a registered kind and its
parameters; a group combines children:

    {"all": [{"kind": "renewal_within", "days": 90},
             {"kind": "health_score", "op": ">", "value": 70}]}
    {"any": [...]}    {"not": {...}}

compile_condition() turns a tree into one Q over the subject's model
(Contact or Account). Every leaf compiles to an expression of columns and
correlated subqueries, so evaluating a whole population is one SQL query,
whatever its size.
"""

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any, Literal

from django.core.exceptions import FieldError
from django.db.models import BooleanField, F, Func, Q
from django.db.models.lookups import (
    Exact,
    GreaterThan,
    GreaterThanOrEqual,
    In,
    IsNull,
    LessThan,
    LessThanOrEqual,
)
from django.utils import timezone

from conditions.syntax import EventSlot, TextForm, WindowSlot

Subject = Literal["contact", "account"]
SUBJECTS: tuple[Subject, ...] = ("contact", "account")
GROUP_KEYS = ("all", "any", "not")
# Deeper trees are rejected: no CSM writes them, and each level adds to the
# SQL and to Python's recursion.
MAX_DEPTH = 20

COMPARISONS = {
    ">": "gt",
    ">=": "gte",
    "<": "lt",
    "<=": "lte",
    "==": "exact",
}
# The operators of a compared kind's "op" parameter. Counts and scores take
# ORDERING; attributes also take != and in.
ORDERING = (">", ">=", "<", "<=", "==")
EQUALITY = ("==", "!=", "in")
LOOKUP_CLASSES = {
    ">": GreaterThan,
    ">=": GreaterThanOrEqual,
    "<": LessThan,
    "<=": LessThanOrEqual,
    "==": Exact,
    "!=": Exact,
    "in": In,
}


# The kinds of data a condition can read. A change to one of them (a usage
# event arriving, a ticket opened, a CRM property synced) re-evaluates the
# triggers whose conditions read it, for the subject it concerns.
DATA_SOURCES = {
    "usage": "product usage events",
    "tickets": "support tickets",
    "surveys": "survey responses",
    "crm": "account and contact attributes and custom CRM properties",
    "subscriptions": "subscription history",
    "contacts": "the contacts of an account",
    "health": "health score history",
    "learning": "enrollments, progress and assessment scores",
    "stage": "lifecycle stage history",
}


class ConditionError(ValueError):
    """A condition tree that cannot be evaluated, with the path to the fault.

    param names the parameter of the leaf at path that is at fault, when
    the error concerns one, so the text parser can point at that argument.
    """

    def __init__(self, message: str, path: str = "$", param: str | None = None) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message
        self.param = param


class MissingReferenceError(ConditionError):
    """A well-formed condition that names a course, stage or other row that is gone.

    Raised only by validate(), which looks the references up. A sweep
    switches off a trigger whose stored condition raises it, instead of
    failing on it at every run.
    """


class NestedCondition:
    """Marks a Param whose value is a condition tree over Param.subject."""


class Scalar:
    """Marks a Param that takes text, a number, true or false, or a list of them."""


@dataclass(frozen=True)
class EvaluationContext:
    """The subject type and the instant that a condition is evaluated against."""

    subject: Subject
    as_of: datetime

    def __post_init__(self) -> None:
        if self.as_of.tzinfo is None:
            raise ConditionError(f"as_of {self.as_of.isoformat()} has no time zone")


@dataclass(frozen=True)
class Param:
    """One parameter of a kind: its type, whether it is required, its bounds."""

    type: type
    required: bool = True
    default: Any = None
    choices: tuple[Any, ...] | None = None
    minimum: float | None = None
    maximum: float | None = None
    help: str = ""
    # For a NestedCondition parameter: the subject type of the nested tree.
    subject: Subject | None = None

    def clean(self, name: str, raw: Any, path: str) -> Any:
        if raw is None:
            if self.required:
                raise ConditionError(f"parameter {name!r} is missing", path)
            return self.default
        value = self._coerce(name, raw, path)
        if self.type is list and self.required and not value:
            # A required list means "one of these", so an empty one matches nothing.
            raise ConditionError(f"{name} needs at least one value", path)
        if self.type is list and self.choices is not None:
            for item in value:
                self._check_choice(name, item, path)
            return value
        if self.choices is not None:
            self._check_choice(name, value, path)
        if self.minimum is not None and value < self.minimum:
            raise ConditionError(
                f"{name}={raw!r} is below the minimum {self.minimum}", path
            )
        if self.maximum is not None and value > self.maximum:
            raise ConditionError(
                f"{name}={raw!r} is above the maximum {self.maximum}", path
            )
        return value

    def _check_choice(self, name: str, value: Any, path: str) -> None:
        if self.choices is not None and value not in self.choices:
            allowed = ", ".join(repr(choice) for choice in self.choices)
            raise ConditionError(f"{name}={value!r} is not one of {allowed}", path)

    def _coerce(self, name: str, raw: Any, path: str) -> Any:
        if self.type is NestedCondition:
            if not isinstance(raw, Mapping):
                raise ConditionError(f"{name} must be a condition", path)
            return raw
        if self.type is Scalar:
            return _scalar(name, raw, path)
        if self.type is list:
            if not isinstance(raw, list) or not all(
                isinstance(item, str) for item in raw
            ):
                raise ConditionError(f"{name}={raw!r} must be a list of strings", path)
            for item in raw:
                check_text(name, item, path)
            return raw
        # bool is an int in Python; a number parameter given true is a mistake.
        if isinstance(raw, bool) and self.type is not bool:
            raise ConditionError(f"{name}={raw!r} must be {self._type_words}", path)
        if self.type in (int, float) and isinstance(raw, int | float):
            check_finite(name, raw, path)
            if self.type is int and raw != int(raw):
                raise ConditionError(f"{name}={raw!r} must be a whole number", path)
            return self.type(raw)
        if isinstance(raw, self.type):
            if isinstance(raw, str):
                check_text(name, raw, path)
            return raw
        raise ConditionError(f"{name}={raw!r} must be {self._type_words}", path)

    @property
    def _type_words(self) -> str:
        return TYPE_WORDS.get(self.type, self.type.__name__)


TYPE_WORDS = {
    int: "a whole number",
    float: "a number",
    str: "text",
    bool: "true or false",
    list: "a list of texts",
    NestedCondition: "a condition",
    Scalar: "text, a number, true or false, or a list of them",
}


def _scalar(name: str, raw: Any, path: str) -> Any:
    items = raw if isinstance(raw, list) else [raw]
    for item in items:
        if not isinstance(item, str | int | float | bool):
            raise ConditionError(
                f"{name}={raw!r} must be text, a number, true or false, or a list",
                path,
            )
        if isinstance(item, float):
            check_finite(name, item, path)
        if isinstance(item, str):
            check_text(name, item, path)
    return raw


def check_finite(name: str, value: float, path: str) -> None:
    """Raise ConditionError for NaN or an infinity, which SQL cannot compare."""
    if not math.isfinite(value):
        raise ConditionError(f"{name}={value!r} must be a finite number", path)


def check_text(name: str, value: str, path: str) -> None:
    """Raise ConditionError for characters that PostgreSQL cannot store."""
    message = unstorable_text(value)
    if message:
        raise ConditionError(f"{name}={value!r} is invalid because {message}", path)


def unstorable_text(value: str) -> str:
    """Return why PostgreSQL cannot store the text, or "" when it can.

    A text or JSON column cannot hold the NUL character, and a surrogate
    code point on its own (U+D800 to U+DFFF) has no UTF-8 encoding.
    """
    if "\x00" in value:
        return "text cannot contain the NUL character (\\u0000)"
    for character in value:
        if "\ud800" <= character <= "\udfff":
            return (
                "text cannot contain a lone surrogate "
                f"(\\u{ord(character):04x}); write the whole character"
            )
    return ""


Compiler = Callable[[EvaluationContext, Mapping[str, Any]], Q]
Describer = Callable[[Mapping[str, Any]], str]
# Checks the cleaned parameters against the subject type; raises ConditionError.
Checker = Callable[[Mapping[str, Any], Subject], None]
# Looks up the rows a leaf names; raises MissingReferenceError.
ReferenceChecker = Callable[[Mapping[str, Any]], None]
# Returns an ORM expression (an F, a subquery, a Coalesce...) over the
# subject's model.
ValueExpression = Callable[[EvaluationContext, Mapping[str, Any]], Any]


@dataclass(frozen=True)
class Kind:
    """A leaf of the vocabulary, contributed by the app that owns its data."""

    name: str
    label: str
    compile: Compiler
    describe: Describer
    params: Mapping[str, Param] = field(default_factory=dict)
    subjects: tuple[Subject, ...] = SUBJECTS
    # The kinds of data the kind reads (see DATA_SOURCES), so that a new
    # event, ticket or survey re-evaluates only the triggers that read it.
    reads: frozenset[str] = frozenset()
    # How the kind is written in the text language (conditions.language).
    text: TextForm | None = None
    check: Checker | None = None
    check_references: ReferenceChecker | None = None

    @property
    def compared(self) -> bool:
        """Whether the kind is a value compared with op and value, not a predicate."""
        return "op" in self.params and "value" in self.params

    # The quantity the leaf tests, per subject (a count, a score, a date),
    # which a trigger preview shows beside each match. None when the kind
    # has no single value to show.
    value: ValueExpression | None = None

    def __post_init__(self) -> None:
        unknown = self.reads - set(DATA_SOURCES)
        if unknown:
            raise ValueError(
                f"kind {self.name!r} reads unknown data {sorted(unknown)}; "
                f"known: {', '.join(DATA_SOURCES)}"
            )

    def clean(self, node: Mapping[str, Any], path: str) -> dict[str, Any]:
        unknown = set(node) - set(self.params) - {"kind"}
        if unknown:
            names = ", ".join(sorted(unknown))
            known = ", ".join(sorted(self.params)) or "none"
            raise ConditionError(
                f"kind {self.name!r} has no parameter {names}; it takes {known}", path
            )
        cleaned = {}
        for name, param in self.params.items():
            try:
                cleaned[name] = param.clean(name, node.get(name), path)
            except ConditionError as exc:
                raise ConditionError(exc.message, path, param=name) from None
        self._check_satisfiable(node, cleaned, path)
        return cleaned

    def _check_satisfiable(
        self, node: Mapping[str, Any], params: Mapping[str, Any], path: str
    ) -> None:
        """Raise ConditionError for parameters that no subject can ever match."""
        low, high = params.get("min"), params.get("max")
        if (
            isinstance(low, int | float)
            and isinstance(high, int | float)
            and low > high
        ):
            raise ConditionError(
                f"min={low!r} is above max={high!r}, so nothing is in the range; "
                "swap them",
                path,
                param="min",
            )
        if self.compared and params.get("op") == "in" and params.get("value") == []:
            raise ConditionError(
                '\'in\' needs at least one value, for example in ["a", "b"]',
                path,
                param="value",
            )
        for slot in self.text.slots if self.text is not None else ():
            if isinstance(slot, WindowSlot):
                self._check_window(slot, params, path)
            if isinstance(slot, EventSlot):
                event = node.get(slot.param)
                if isinstance(event, str) and not event.strip():
                    raise ConditionError(
                        "the event name is empty; write event without a name "
                        "for any event",
                        path,
                        param=slot.param,
                    )

    def _check_window(
        self, slot: WindowSlot, params: Mapping[str, Any], path: str
    ) -> None:
        # "last 0 days" is the empty interval (as_of - 0, as_of], whatever the
        # kind's own minimum. "next 0 days" is today, which is a real window.
        direction = (
            params.get(slot.direction_param) if slot.direction_param else slot.direction
        )
        if direction == "last" and params.get(slot.param) == 0:
            raise ConditionError(
                f"{slot.param}=0 is below the minimum 1, because the last 0 days "
                "contain nothing",
                path,
                param=slot.param,
            )


_KINDS: dict[str, Kind] = {}


def register(kind: Kind) -> Kind:
    """Add a kind to the vocabulary; apps call this from AppConfig.ready()."""
    existing = _KINDS.get(kind.name)
    if existing is not None and existing.compile is not kind.compile:
        raise ValueError(f"condition kind {kind.name!r} is registered twice")
    if kind.text is not None:
        for other in _KINDS.values():
            if (
                other.name != kind.name
                and other.text is not None
                and other.text.name == kind.text.name
            ):
                raise ValueError(
                    f"kinds {other.name!r} and {kind.name!r} are both written "
                    f"{kind.text.name!r}; give one another text name"
                )
        kind.text.check_params(kind.name, set(kind.params))
    _KINDS[kind.name] = kind
    return kind


def kinds() -> dict[str, Kind]:
    return dict(_KINDS)


def get_kind(name: str) -> Kind:
    try:
        return _KINDS[name]
    except KeyError:
        known = ", ".join(sorted(_KINDS))
        raise ConditionError(
            f"unknown condition kind {name!r}; known kinds: {known}"
        ) from None


def reads(tree: Any) -> frozenset[str]:
    """Return the data sources that a valid tree's leaves read."""
    found: set[str] = set()

    def collect(
        kind: Kind, params: dict[str, Any], path: str, subject: Subject
    ) -> None:
        found.update(kind.reads)

    for subject in SUBJECTS:
        try:
            _walk(tree, subject, "$", leaf=collect)
            break
        except ConditionError:
            continue
    return frozenset(found)


def validate(tree: Any, subject: Subject) -> None:
    """Raise ConditionError unless the tree is well formed for this subject type.

    It also looks up the rows that leaves name (courses, stages) and raises
    MissingReferenceError for one that does not exist, so it may query the
    database. compile_condition() does not look them up: a missing course
    there only matches nobody.
    """

    def check(kind: Kind, params: dict[str, Any], path: str, subject: Subject) -> None:
        if kind.check_references is None:
            return
        try:
            kind.check_references(params)
        except MissingReferenceError as exc:
            raise MissingReferenceError(exc.message, path, exc.param) from None

    check_subject(subject)
    _walk(tree, subject, "$", leaf=check)


def check_subject(subject: Any) -> None:
    """Raise ConditionError unless subject is one of the subject types."""
    if subject not in SUBJECTS:
        raise ConditionError(
            f'subject {subject!r} is invalid; it must be "contact" or "account"'
        )


def compile_condition(tree: Any, context: EvaluationContext) -> Q:
    """Compile a tree into one Q over the subject's model, as of context.as_of.

    A nested condition parameter reaches its kind's compiler already
    compiled, as a Q over the nested subject's model.
    """
    check_subject(context.subject)
    compiled = _walk(
        tree,
        context.subject,
        "$",
        leaf=lambda kind, params, path, subject: kind.compile(
            EvaluationContext(subject, context.as_of), params
        ),
    )
    return compiled


def leaf_value(leaf: Any, context: EvaluationContext) -> Any | None:
    """Compile the value a single leaf tests (Kind.value), as of context.as_of.

    Returns None when the leaf's kind has no value. A nested condition
    parameter reaches the value function compiled, as it reaches the
    compiler, so contacts(...) counts the contacts its condition matches.
    """
    values = []

    def compile_leaf(
        kind: Kind, params: dict[str, Any], path: str, subject: Subject
    ) -> Q | None:
        leaf_context = EvaluationContext(subject, context.as_of)
        if path != "$":
            return kind.compile(leaf_context, params)
        if kind.value is not None:
            values.append(kind.value(leaf_context, params))
        return None

    _walk(leaf, context.subject, "$", leaf=compile_leaf)
    return values[0] if values else None


def compare(lhs: Any, op: str, value: Any) -> Q:
    """Compare an expression with a value; false, never NULL, when it is missing.

    SQL gives NULL for a comparison with NULL, and NOT NULL is NULL too, so
    "not (health score > 70)" would drop accounts without a score. Here a
    missing value makes the comparison false and its negation true.
    """
    lookup_class = _lookup_class(lhs, op)
    if op == "!=":
        return Q(IsNull(lhs, False)) & ~Q(lookup_class(lhs, value))
    if isinstance(lhs, F):
        # "column OP value AND column IS NOT NULL" is two-valued too, and
        # unlike COALESCE it leaves the column bare, so PostgreSQL estimates
        # how many rows match from its statistics and can use an index.
        return Q(lookup_class(lhs, value)) & Q(IsNull(lhs, False))
    # A subquery, or a JSON key that is extracted per row, would be computed
    # twice in that form. "(comparison) IS TRUE" computes it once, and
    # PostgreSQL estimates it as it does the bare comparison, where it takes
    # COALESCE(..., false) to match half the rows.
    return Q(IsTrue(lookup_class(lhs, value)))


class IsTrue(Func):
    """A condition that is false, not NULL, when the condition is NULL."""

    template = "(%(expressions)s) IS TRUE"
    output_field = BooleanField()


def compare_local_date(instant: Any, op: str, day: date) -> Q:
    """Compare the date of a timestamp in the site time zone with a day.

    The test is on the timestamp itself, against the start of the day and
    of the next day, so no row's timestamp is cast to a date. The result
    is the same as compare(TruncDate(instant), op, day).
    """
    start = _day_start(day)
    next_start = _day_start(day + timedelta(days=1))
    if op == "<":
        return compare(instant, "<", start)
    if op == "<=":
        return compare(instant, "<", next_start)
    if op == ">":
        return compare(instant, ">=", next_start)
    if op == ">=":
        return compare(instant, ">=", start)
    if op == "==":
        return compare(instant, ">=", start) & compare(instant, "<", next_start)
    if op == "!=":
        return compare(instant, "<", start) | compare(instant, ">=", next_start)
    raise ConditionError(f"cannot compare a date with {op!r}")


def _day_start(day: date) -> datetime:
    return timezone.make_aware(datetime.combine(day, time.min))


def _lookup_class(lhs: Any, op: str) -> Any:
    # Expressions such as a JSON key transform bring their own lookups
    # (KeyTransformExact compares JSON values); plain F() columns and
    # subqueries use the generic ones.
    generic = LOOKUP_CLASSES[op]
    get_lookup = getattr(lhs, "get_lookup", None)
    if get_lookup is None:
        return generic
    try:
        specific = get_lookup(generic.lookup_name)
    except FieldError:
        # An expression whose type is only known once it is resolved.
        return generic
    return specific or generic


def describe(tree: Any, depth: int = 0) -> str:
    """Render a tree as a sentence a CSM can read, for the admin and logs.

    An invalid tree is described too, with the fault in place of the
    broken part, because the admin shows stored conditions that may have
    become invalid.
    """
    if depth > MAX_DEPTH:
        return "(nested too deeply)"
    if not isinstance(tree, Mapping):
        return repr(tree)
    for key, joiner in (("all", " and "), ("any", " or ")):
        if key in tree:
            children = tree[key] if isinstance(tree[key], list) else [tree[key]]
            return (
                "("
                + joiner.join(describe(child, depth + 1) for child in children)
                + ")"
            )
    if "not" in tree:
        return "not " + describe(tree["not"], depth + 1)
    kind = _KINDS.get(str(tree.get("kind")))
    if kind is None:
        return f"unknown kind {tree.get('kind')!r}"
    try:
        params = kind.clean(tree, "$")
    except ConditionError as exc:
        return f"{kind.name} (invalid: {exc.message})"
    return kind.describe({"kind": kind.name, **params})


Leaf = Callable[[Kind, dict[str, Any], str, Subject], Q | None]


def _walk(
    tree: Any,
    subject: Subject,
    path: str,
    leaf: Leaf,
    depth: int = 0,
) -> Q:
    if depth > MAX_DEPTH:
        raise ConditionError(
            f"conditions nest at most {MAX_DEPTH} groups deep; flatten this one", path
        )
    if not isinstance(tree, Mapping):
        raise ConditionError(f"expected an object, found {type(tree).__name__}", path)

    groups = [key for key in GROUP_KEYS if key in tree]
    if groups and (len(groups) > 1 or len(tree) > 1):
        raise ConditionError(
            "a group has exactly one key: all, any or not, and nothing beside it", path
        )

    if "not" in tree:
        return ~_walk(tree["not"], subject, f"{path}.not", leaf, depth + 1)

    if groups:
        key = groups[0]
        children = tree[key]
        if not isinstance(children, list) or not children:
            raise ConditionError(f"{key!r} needs a non-empty list of conditions", path)
        compiled = [
            _walk(child, subject, f"{path}.{key}[{index}]", leaf, depth + 1)
            for index, child in enumerate(children)
        ]
        combined = compiled[0]
        for item in compiled[1:]:
            combined = combined & item if key == "all" else combined | item
        return combined

    if "kind" not in tree:
        raise ConditionError("expected 'kind', 'all', 'any' or 'not'", path)
    if not isinstance(tree["kind"], str):
        raise ConditionError(f"kind must be a string, found {tree['kind']!r}", path)
    try:
        kind = get_kind(tree["kind"])
    except ConditionError as exc:
        raise ConditionError(exc.message, path) from None
    if subject not in kind.subjects:
        article = "an" if subject == "account" else "a"
        raise ConditionError(
            f"kind {kind.name!r} does not apply to {article} {subject}", path
        )
    params = kind.clean(tree, path)
    if kind.check is not None:
        try:
            kind.check(params, subject)
        except ConditionError as exc:
            raise ConditionError(exc.message, path, exc.param) from None
    for name, param in kind.params.items():
        if param.type is NestedCondition and params[name] is not None:
            nested_subject = param.subject or subject
            params[name] = _walk(
                params[name], nested_subject, f"{path}.{name}", leaf, depth + 1
            )
    return leaf(kind, params, path, subject) or Q()
