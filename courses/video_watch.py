"""How much of a video lesson the learner watched, from heartbeat positions.

A video lesson is completed when the learner watched at least
WATCHED_PERCENT_TO_COMPLETE percent of it. Seeking does not count as watching: each
heartbeat credits at most the stretch of the video that could have played
since the previous one, MAX_PLAYBACK_RATE times the seconds the heartbeat
added plus ELAPSED_SLACK_SECONDS, and only when the position moved
forward. Seeking to the end therefore credits one interval at most.

The intervals are kept in LessonProgress.watched_intervals and the
duration in LessonProgress.duration_seconds.
"""

from collections.abc import Iterable, Sequence

# The percentage of a video's duration the learner must watch to complete it.
WATCHED_PERCENT_TO_COMPLETE = 90
# The fastest playback rate whose progress still counts as watching.
MAX_PLAYBACK_RATE = 2
# Seconds of playback allowed beyond MAX_PLAYBACK_RATE times the credited
# time, for the request's travel time and rounding to whole seconds.
PLAYBACK_SLACK_SECONDS = 2

Interval = tuple[int, int]


def stored_intervals(value: object) -> list[Interval]:
    """Read watched intervals from the JSON column, skipping anything else.

    The column contains a list of [start, end] pairs in seconds. Any other
    item, such as a value written into the database by hand, is skipped.
    """
    intervals: list[Interval] = []
    for item in value if isinstance(value, list) else []:
        if (
            isinstance(item, list)
            and len(item) == 2
            and all(isinstance(bound, int) for bound in item)
            and item[0] < item[1]
        ):
            intervals.append((item[0], item[1]))
    return intervals


def merge(intervals: Iterable[Interval]) -> list[Interval]:
    """Return the union of intervals, sorted, with touching intervals joined."""
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def watched_seconds(intervals: Sequence[Interval]) -> int:
    return sum(end - start for start, end in intervals)


def played_interval(
    previous_position: int, position: int, credited_seconds: int
) -> Interval | None:
    """Return the stretch of video a heartbeat credits as watched, if any.

    The position must have moved forward since the previous heartbeat, and
    only the last MAX_PLAYBACK_RATE * credited_seconds + slack seconds
    before the new position count, so a seek forward credits no more than
    the time that passed.
    """
    if position <= previous_position or credited_seconds <= 0:
        return None
    allowance = MAX_PLAYBACK_RATE * credited_seconds + PLAYBACK_SLACK_SECONDS
    return max(previous_position, position - allowance), position


def is_watched(intervals: Sequence[Interval], duration_seconds: int | None) -> bool:
    """Return whether the watched share reaches WATCHED_PERCENT_TO_COMPLETE."""
    if not duration_seconds:
        return False
    clamped = [
        (start, min(end, duration_seconds))
        for start, end in intervals
        if start < duration_seconds
    ]
    watched = watched_seconds(clamped)
    return watched * 100 >= WATCHED_PERCENT_TO_COMPLETE * duration_seconds


def watched_percent(stored: object, duration_seconds: int | None) -> int | None:
    """Return the watched share of a video in whole percent, rounded down.

    None while the duration is unknown, before the first heartbeat.
    """
    if not duration_seconds:
        return None
    intervals = [
        (start, min(end, duration_seconds))
        for start, end in stored_intervals(stored)
        if start < duration_seconds
    ]
    return min(100, watched_seconds(intervals) * 100 // duration_seconds)
