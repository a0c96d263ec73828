"""How a kind is written in the text language: its name and argument slots.

A kind's TextForm names the function or field path that spells it and
lists its positional argument slots, each mapped to a parameter. Every
other parameter except op and value is written as a keyword argument,
`name value`. A kind with op and value parameters is compared:
`count(event "Signed In", last 10 days) == 0`; any other kind is a
predicate: `inactive(last 10 days)`.
"""

from collections.abc import Set
from dataclasses import dataclass
from typing import Literal

Direction = Literal["last", "next"]

# Words of the grammar (conditions/grammar.lark). They cannot be function
# names or keyword parameters; a property key that is one is quoted.
RESERVED_WORDS = frozenset(
    {
        "or",
        "and",
        "not",
        "all",
        "any",
        "in",
        "event",
        "feature",
        "last",
        "next",
        "day",
        "days",
        "within",
        "of",
        "true",
        "false",
    }
)


@dataclass(frozen=True)
class Slot:
    """A positional argument that fills one parameter."""

    param: str

    @property
    def params(self) -> tuple[str, ...]:
        return (self.param,)


@dataclass(frozen=True)
class EventSlot(Slot):
    """`event "Signed In"`: the event name, or bare `event` for any event.

    feature=True requires `.feature` after it, as in
    `distinct(event "Feature Used".feature, last 7 days)`. show_any writes
    bare `event` when the parameter is absent, so `count(event, last 7 days)`
    reads as a count of any event.
    """

    feature: bool = False
    show_any: bool = False


@dataclass(frozen=True)
class WindowSlot(Slot):
    """`last 10 days` or `next 90 days`: a window of whole days from as_of.

    With direction_param set, either direction is accepted and the word is
    stored in that parameter; otherwise only `direction` is accepted.
    """

    direction: Direction = "last"
    direction_param: str | None = None

    @property
    def params(self) -> tuple[str, ...]:
        if self.direction_param is None:
            return (self.param,)
        return (self.param, self.direction_param)


@dataclass(frozen=True)
class DurationSlot(Slot):
    """`7 days`: a number of days, such as the time since enrollment."""


@dataclass(frozen=True)
class SpanSlot(Slot):
    """`within 7 days of kickoff`: a number of days after an anchor date.

    param holds the days and anchor the anchor's name.
    """

    anchor: str = "after"

    @property
    def params(self) -> tuple[str, ...]:
        return (self.param, self.anchor)


@dataclass(frozen=True)
class ValueSlot(Slot):
    """A positional value: `completed("getting-started")`, `latest_score(nps)`.

    bare=True writes the value without quotes, for values from a fixed list
    of words such as nps and csat.
    """

    bare: bool = False


@dataclass(frozen=True)
class FieldSlot(Slot):
    """A registered field of the given types: `days_until(account.renewal_date)`."""

    types: tuple[str, ...] = ("date", "datetime")


@dataclass(frozen=True)
class ConditionSlot(Slot):
    """A nested condition, as in `any_contact(contact.role == "admin")`."""


@dataclass(frozen=True)
class TextForm:
    """The text spelling of a kind: a function name or a field path, and its slots.

    A name with a dot (`account.health_score`) or a kind without slots is
    written without parentheses when no argument is given.
    """

    name: str
    slots: tuple[Slot, ...] = ()

    def check_params(self, kind: str, params: Set[str]) -> None:
        """Raise ValueError when a slot names a parameter the kind lacks.

        Keyword parameters must not be words of the grammar, or they could
        not be written.
        """
        keywords = set(params) - self.slot_params()
        if {"op", "value"} <= keywords:
            keywords -= {"op", "value"}
        clashing = keywords & RESERVED_WORDS
        if clashing:
            raise ValueError(
                f"kind {kind!r} has keyword parameters {sorted(clashing)} that are "
                "words of the condition language; give them a slot or rename them"
            )
        for slot in self.slots:
            missing = set(slot.params) - set(params)
            if missing:
                raise ValueError(
                    f"the text form of kind {kind!r} names unknown parameters "
                    f"{sorted(missing)}"
                )

    def slot_params(self) -> set[str]:
        return {name for slot in self.slots for name in slot.params}
