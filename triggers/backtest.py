"""Backtest of a trigger: how often it would have fired each week of a past period.

A backtest writes nothing. It evaluates the trigger's condition as of 00:00,
in the project's time zone, of each day of the period (or of every seventh
day), with the same query a sweep runs. It then applies the occurrence
policy in memory. Under most policies a subject fires for an occurrence key
the first time it matches with that key. The two policies whose keys come
from the trigger's own history are replayed from the backtest's own
decisions. Under "every N days" a subject fires when its latest firing is
N days old or more. Under "each new match" it fires when it did not match
at the previous evaluated instant.

Firings recorded before the period count as already fired, whatever their
outcome, and firings recorded during or after the period are ignored, so
the result is what the trigger would have done had it been active over the
whole period.
"""

import csv
import io
import logging
import time
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from datetime import time as clock_time
from typing import cast

from django.db.models import Q
from django.utils import timezone

from conditions import EvaluationContext, Subject, validate
from triggers.evaluation import EARLIEST_INSTANT, matching_subjects
from triggers.models import Firing, Occurrence, SubjectType, Trigger, TriggerMatch
from triggers.reentry import episode_key

logger = logging.getLogger(__name__)

DEFAULT_WEEKS = 12
MAX_YEARS = 2
STEPS = {"day": 1, "week": 7}


class BacktestPeriodError(ValueError):
    """A backtest period that is reversed, too long or reaches into the future."""


@dataclass(frozen=True)
class BacktestWeek:
    """Counts of one ISO week (Monday to Sunday) of a backtest."""

    week_start: date
    days_evaluated: int
    # Distinct subjects that matched on at least one evaluated day.
    matched: int
    # Occurrences that would have fired for the first time this week.
    would_fire: int
    # Of would_fire, subjects that had never fired this trigger before.
    new_subjects: int


@dataclass(frozen=True)
class Backtest:
    """Weekly counts of a trigger over a past period, with their totals."""

    start: date
    end: date
    step: str
    weeks: tuple[BacktestWeek, ...]

    @property
    def would_fire(self) -> int:
        return sum(week.would_fire for week in self.weeks)

    @property
    def new_subjects(self) -> int:
        return sum(week.new_subjects for week in self.weeks)

    @property
    def evaluations(self) -> int:
        return sum(week.days_evaluated for week in self.weeks)


def default_period(today: date | None = None) -> tuple[date, date]:
    """Return the last 12 ISO weeks: from a Monday 11 weeks back through today."""
    today = today or timezone.localdate()
    this_monday = today - timedelta(days=today.weekday())
    return this_monday - timedelta(weeks=DEFAULT_WEEKS - 1), today


def check_period(start: date, end: date, today: date | None = None) -> None:
    """Raise BacktestPeriodError unless start <= end <= today, within 2 years.

    The start must also be on or after 2000-01-01, the earliest day a sweep
    evaluates, because condition windows near year 1 overflow Python's dates.
    """
    today = today or timezone.localdate()
    if end < start:
        raise BacktestPeriodError(
            f"The end date {end.isoformat()} is before the start date "
            f"{start.isoformat()}; choose an end on or after the start."
        )
    earliest = EARLIEST_INSTANT.date()
    if start < earliest:
        raise BacktestPeriodError(
            f"The start date {start.isoformat()} is before {earliest.isoformat()}, "
            f"the earliest day a backtest evaluates; choose {earliest.isoformat()} "
            "or later."
        )
    if end > today:
        raise BacktestPeriodError(
            f"The end date {end.isoformat()} is in the future; a backtest replays "
            f"past data only, so choose today ({today.isoformat()}) or earlier."
        )
    latest_end = _add_years(start, MAX_YEARS)
    if end > latest_end:
        raise BacktestPeriodError(
            f"The period {start.isoformat()} to {end.isoformat()} is longer than "
            f"{MAX_YEARS} years; choose an end on or before {latest_end.isoformat()}."
        )


def backtest_trigger(
    trigger: Trigger,
    start: date,
    end: date,
    step: str = "day",
    today: date | None = None,
) -> Backtest:
    """Count, per ISO week from start to end, what the trigger would have fired.

    Both dates are included. step is "day" or "week". One query reads the
    firings recorded before the period (two under "each new match"), then
    one query per evaluated day selects the matches, so a daily backtest of
    a year runs 366 queries.
    Raises BacktestPeriodError for a bad period and ConditionError for an
    invalid stored condition.
    """
    check_period(start, end, today)
    if step not in STEPS:
        raise BacktestPeriodError(
            f"The step {step!r} is invalid; use one of {', '.join(STEPS)}."
        )
    subject = cast(Subject, trigger.subject_type)
    validate(trigger.condition, subject)
    started = time.monotonic()

    instants = _instants(start, end, STEPS[step])
    history = _History.before(trigger, instants[0])
    subject_index = 0 if subject == SubjectType.CONTACT else 1

    weeks: dict[date, _WeekTally] = {}
    for instant in instants:
        day = timezone.localdate(instant)
        tally = weeks.setdefault(day - timedelta(days=day.weekday()), _WeekTally())
        tally.days_evaluated += 1
        matching_now = set()
        for match in matching_subjects(trigger, EvaluationContext(subject, instant)):
            subject_id = cast(int, match[subject_index])
            matching_now.add(subject_id)
            if not history.fires(subject_id, match[2], instant):
                continue
            tally.would_fire += 1
            if subject_id not in history.fired_subjects:
                history.fired_subjects.add(subject_id)
                tally.new_subjects += 1
        tally.matched |= matching_now
        history.matching_before = matching_now

    result = Backtest(
        start=start,
        end=end,
        step=step,
        weeks=tuple(tally.freeze(week_start) for week_start, tally in weeks.items()),
    )
    logger.info(
        "Backtested trigger %s from %s to %s by %s: %s evaluations, %s would fire "
        "in %.0f ms",
        trigger.slug,
        start.isoformat(),
        end.isoformat(),
        step,
        result.evaluations,
        result.would_fire,
        (time.monotonic() - started) * 1000,
    )
    return result


def backtest_csv(result: Backtest) -> str:
    """Render a backtest's weekly rows as CSV text with a header line."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(
        ["week_start", "days_evaluated", "matched", "would_fire", "new_subjects"]
    )
    for week in result.weeks:
        writer.writerow(
            [
                week.week_start.isoformat(),
                week.days_evaluated,
                week.matched,
                week.would_fire,
                week.new_subjects,
            ]
        )
    return buffer.getvalue()


@dataclass
class _WeekTally:
    days_evaluated: int = 0
    would_fire: int = 0
    new_subjects: int = 0

    def __post_init__(self) -> None:
        self.matched: set[int] = set()

    def freeze(self, week_start: date) -> BacktestWeek:
        return BacktestWeek(
            week_start=week_start,
            days_evaluated=self.days_evaluated,
            matched=len(self.matched),
            would_fire=self.would_fire,
            new_subjects=self.new_subjects,
        )


def _instants(start: date, end: date, step_days: int) -> list[datetime]:
    """Return 00:00 in the project's time zone of start, start + step, ... <= end."""
    zone = timezone.get_default_timezone()
    instants = []
    day = start
    while day <= end:
        instants.append(datetime.combine(day, clock_time.min, tzinfo=zone))
        day += timedelta(days=step_days)
    return instants


@dataclass
class _History:
    """The firings a backtest has seen so far, real ones before the period first."""

    occurrence: str
    reentry_days: int
    fired_pairs: set[tuple[int, str]]
    fired_subjects: set[int]
    last_fired: dict[int, datetime]
    # Subjects that matched at the previous evaluated instant.
    matching_before: set[int]

    @classmethod
    def before(cls, trigger: Trigger, instant: datetime) -> "_History":
        """Load the trigger's firings recorded before the instant, in one query.

        Under "each new match", a second query finds the subjects whose
        episode was open at the instant and had fired, so they do not fire
        again at the first evaluated instant.
        """
        field = _subject_field(trigger)
        earlier = Firing.objects.filter(trigger=trigger, fired_at__lt=instant)
        rows = list(earlier.values_list(field, "occurrence_key", "fired_at"))
        fired_pairs = {(subject_id, key) for subject_id, key, _ in rows}
        last_fired: dict[int, datetime] = {}
        for subject_id, _, fired_at in rows:
            last_fired[subject_id] = max(fired_at, last_fired.get(subject_id, fired_at))

        matching_before: set[int] = set()
        if trigger.occurrence == Occurrence.EACH_NEW_MATCH:
            matching_before = _fired_open_episodes(trigger, instant, fired_pairs)
        return cls(
            occurrence=trigger.occurrence,
            reentry_days=trigger.reentry_days or 0,
            fired_pairs=fired_pairs,
            fired_subjects={subject_id for subject_id, _ in fired_pairs},
            last_fired=last_fired,
            matching_before=matching_before,
        )

    def fires(self, subject_id: int, key: str, instant: datetime) -> bool:
        """Decide whether a matching subject fires at the instant, and record it."""
        if self.occurrence == Occurrence.EVERY_N_DAYS:
            latest = self.last_fired.get(subject_id)
            if latest is not None and instant - latest < timedelta(
                days=self.reentry_days
            ):
                return False
            self.last_fired[subject_id] = instant
            return True
        if self.occurrence == Occurrence.EACH_NEW_MATCH:
            return subject_id not in self.matching_before
        if (subject_id, key) in self.fired_pairs:
            return False
        self.fired_pairs.add((subject_id, key))
        return True


def _fired_open_episodes(
    trigger: Trigger, instant: datetime, fired_pairs: set[tuple[int, str]]
) -> set[int]:
    """Return the subjects in a match episode open at the instant that fired for it."""
    field = _subject_field(trigger)
    episodes = TriggerMatch.objects.filter(trigger=trigger, since__lt=instant).filter(
        Q(ended_at__isnull=True) | Q(ended_at__gt=instant)
    )
    return {
        subject_id
        for subject_id, since in episodes.values_list(field, "since")
        if (subject_id, episode_key(since)) in fired_pairs
    }


def _subject_field(trigger: Trigger) -> str:
    if trigger.subject_type == SubjectType.CONTACT:
        return "contact_id"
    return "account_id"


def _add_years(day: date, years: int) -> date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:
        # 29 February, in a year that has none.
        return day.replace(year=day.year + years, day=28)
