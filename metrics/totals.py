"""One group's outcomes around training, added up over its measured subjects.

metrics.changes compares the groups through these sums alone. The sums of
the untrained come from rows that the windows' SQL returns for each
request (metrics.windows). Those of the trained are added up by the
database from the figures that a refresh stored (metrics.cohorts), so no
trained subject's row travels to Python. Both are whole numbers, so a
report gives the same figures from either source.
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from metrics.stats import PairSums


@dataclass(frozen=True)
class WindowTotals:
    """Sums of one group's pairs of each outcome, and its tickets by topic.

    Contacts have usage only; accounts have the rest. ``usage`` is in
    events per day, as whole numbers over its ``scale``. ``topics``
    contains (tickets before, tickets after) of each covered topic, in the
    order of the topics requested.
    """

    usage: PairSums = field(default_factory=PairSums)
    health: PairSums = field(default_factory=PairSums)
    tickets: PairSums = field(default_factory=PairSums)
    expansion: PairSums = field(default_factory=PairSums)
    topics: tuple[tuple[int, int], ...] = ()

    def __add__(self, other: "WindowTotals") -> "WindowTotals":
        return WindowTotals(
            usage=self.usage + other.usage,
            health=self.health + other.health,
            tickets=self.tickets + other.tickets,
            expansion=self.expansion + other.expansion,
            topics=_add_topics(self.topics, other.topics),
        )


def _add_topics(
    first: tuple[tuple[int, int], ...], second: tuple[tuple[int, int], ...]
) -> tuple[tuple[int, int], ...]:
    # A group with no measured subject has no topic counts at all.
    if not first or not second:
        return first or second
    return tuple(
        (before + other_before, after + other_after)
        for (before, after), (other_before, other_after) in zip(
            first, second, strict=True
        )
    )


def usage_totals(
    counts: Iterable[tuple[int, int]], days_before: int, days_after: int
) -> WindowTotals:
    """Add up (events before, events after) pairs as events per day.

    Events per day before is before / days_before; scaled by both window
    lengths, it is before * days_after, a whole number.
    """
    pairs = [(before * days_after, after * days_before) for before, after in counts]
    return WindowTotals(usage=PairSums.of_pairs(pairs, scale=days_before * days_after))


# One measured account: health before and after (None without a score in
# the window), covered tickets before and after, expanded before and after.
AccountRow = tuple[int | None, int | None, int, int, bool | None, bool | None]


def account_totals(
    rows: Sequence[AccountRow], topics: tuple[tuple[int, int], ...]
) -> WindowTotals:
    """Add up measured accounts' rows, with the group's tickets by topic.

    Health counts only accounts with a score in both windows. ``topics``
    are the group's (tickets before, tickets after) on each covered topic.
    """
    health = [
        (before, after)
        for before, after, *_ in rows
        if before is not None and after is not None
    ]
    return WindowTotals(
        health=PairSums.of_pairs(health),
        tickets=PairSums.of_pairs([(int(row[2]), int(row[3])) for row in rows]),
        expansion=PairSums.of_pairs(
            [(int(bool(row[4])), int(bool(row[5]))) for row in rows]
        ),
        topics=topics,
    )
