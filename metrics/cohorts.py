"""Trained and untrained cohorts, each subject placed on a day of training.

A cohort rule defines training: a contact started, completed
or passed a course, or started or completed a learning path. The trained
are the contacts (or accounts, through their first trained contact) that
met the rule in the period. The untrained are the contacts or accounts of
the same plan, stage and segment that had not met it by the as-of day
and that the course is meant for: its lifecycle stages and audience
condition, as in the catalogue (for a path, those of its first course).
An account is eligible through any of its contacts.

The untrained have no training day of their own, so each is given one of
the trained days (``align_anchors``). Both groups are then measured over
windows at the same calendar dates, which is what a difference in
differences needs. This comparison is observational: only a trigger's
holdout (metrics.holdouts) measures an effect.
"""

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import (
    BigIntegerField,
    Case,
    Count,
    DateField,
    Exists,
    Expression,
    F,
    IntegerField,
    Min,
    OuterRef,
    Q,
    QuerySet,
    Value,
    When,
)
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, Coalesce, TruncDate

from conditions import ConditionError, EvaluationContext, compile_condition
from courses.catalogue import audience_of
from courses.models import (
    Attempt,
    Course,
    Enrollment,
    EnrollmentStatus,
    LearningPath,
    PathCourse,
    PathEnrollment,
)
from customers.models import Account, Contact
from customers.services import utc_day_start
from metrics.models import TrainingFact
from metrics.scope import Scope
from metrics.stats import PairSums
from metrics.totals import WindowTotals

logger = logging.getLogger(__name__)

# Days of usage before and after the training day that are compared. The
# training day itself is in neither window, because it is partly both.
DAYS_BEFORE = 7
DAYS_AFTER = 30

# At most this many subjects of each group are measured, chosen by a hash of
# their id. With 5,000 in each group the standard error of a difference is
# about 2% of the changes' standard deviation, sqrt(2 / 5000), and the
# dashboard's cost stops growing with the population.
SAMPLE_LIMIT = 5000

# The untrained sample is four times the trained group, and at least 1,000.
# At four to one, when both groups vary alike, the untrained group adds a
# fifth of the variance of the difference, so more barely narrow the interval.
UNTRAINED_PER_TRAINED = 4
MIN_UNTRAINED_SAMPLE = 1000

# Knuth's multiplicative hash: spreads consecutive ids over [0, 2**32), so
# the sample of each group does not follow the order of their ids.
HASH_MULTIPLIER = 2654435761
HASH_MODULUS = 2**32

# The untrained sample reads the subjects whose key is below the share
# size / eligible of the key range, times this margin. With 5,000 of 80,000
# it expects 6,250 below the bound, where 5,000 are needed: about 16
# standard deviations of the count to spare.
SAMPLE_BOUND_MARGIN = 1.25


class CohortRule(StrEnum):
    STARTED = "started"
    COMPLETED = "completed"
    PASSED = "passed"


class SubjectLevel(StrEnum):
    CONTACT = "contact"
    ACCOUNT = "account"


@dataclass(frozen=True)
class Cohort:
    """The definition of training: a rule on one course, one path, or any course."""

    rule: CohortRule = CohortRule.COMPLETED
    course: Course | None = None
    path: LearningPath | None = None

    def __post_init__(self) -> None:
        if self.course is not None and self.path is not None:
            raise ValueError(
                "a cohort is defined by a course or by a learning path, not both; "
                "remove one of the two filters"
            )
        if self.path is not None and self.rule == CohortRule.PASSED:
            raise ValueError(
                f"rule 'passed' applies to a course, not to the learning path "
                f"{self.path.slug!r}; use 'started' or 'completed', or pick a course"
            )

    @property
    def description(self) -> str:
        if self.path is not None:
            return f"{self.rule} the learning path {self.path.title}"
        if self.course is not None:
            return f"{self.rule} the course {self.course.title}"
        return f"{self.rule} a course"


ANY_COMPLETION = Cohort()


class Anchor(NamedTuple):
    """One subject placed on a training day, real or aligned.

    A named tuple, because a report builds up to 20,000 of them and a frozen
    dataclass took several times longer to build.
    """

    subject_id: int
    trained: bool
    day: date

    @property
    def before_start(self) -> date:
        return self.day - timedelta(days=DAYS_BEFORE)

    @property
    def before_end(self) -> date:
        return self.day - timedelta(days=1)

    @property
    def after_start(self) -> date:
        return self.day + timedelta(days=1)

    @property
    def after_end(self) -> date:
        return self.day + timedelta(days=DAYS_AFTER)


def _topic_ticket_columns(topics: Sequence[str]) -> list[Expression]:
    """Return the stored tickets before and after of each topic, in turn.

    The database reads them out of TrainingFact.topic_tickets, so no JSON
    travels to Python, where decoding it took longer than the query.
    """
    columns: list[Expression] = []
    for topic in topics:
        for position in (0, 1):
            if connection.vendor == "sqlite":
                columns.append(_sqlite_topic_count(topic, position))
                continue
            count = KeyTextTransform(
                str(position), KeyTransform(topic, "topic_tickets")
            )
            columns.append(Cast(count, IntegerField()))
    return columns


def _sqlite_topic_count(topic: str, position: int) -> RawSQL:
    """Return the stored count at ``position`` of ``topic``, matched by key.

    A JSON path cannot name every key on SQLite: Django writes a key of
    digits, such as "404", as an array index, and SQLite's paths have no
    escape for a double quote. json_each compares each key as text instead.
    """
    sql = (
        f"(SELECT json_extract(topic.value, '$[{int(position)}]') "
        f'FROM json_each("{TrainingFact._meta.db_table}"."topic_tickets") AS topic '
        "WHERE topic.key = %s)"
    )
    return RawSQL(sql, [topic], output_field=IntegerField())


@dataclass(frozen=True)
class AnchoredCohorts:
    """The subjects measured, and how many of each group were left out and why.

    ``trained_days`` holds the training day of each trained subject measured,
    sorted, and ``untrained`` the untrained subjects on their aligned days.
    The trained are measured either from the source tables, through their
    anchors in ``trained``, or from the figures a refresh stored, added up in
    ``stored``. Neither takes part in comparisons, because both give the same
    figures.
    """

    level: SubjectLevel
    trained_days: list[date]
    untrained: list[Anchor]
    trained_awaiting_follow_up: int
    untrained_eligible: int
    trained_eligible: int
    trained: list[Anchor] = field(default_factory=list, compare=False, repr=False)
    stored: WindowTotals | None = field(default=None, compare=False, repr=False)
    # The anchors read from the source tables whose contact was added before
    # the usage window began, when the sample read the day each was added.
    # None when that is not known, and then the windows' SQL checks it.
    added_in_time: list[Anchor] | None = field(default=None, compare=False, repr=False)

    @property
    def anchors(self) -> list[Anchor]:
        """Return the anchors whose figures are read from the source tables."""
        return self.trained + self.untrained

    @property
    def trained_count(self) -> int:
        return len(self.trained_days)

    @property
    def untrained_count(self) -> int:
        return len(self.untrained)


class TrainedSample(NamedTuple):
    """The trained subjects measured, with the counts of those in the period.

    When they are read from the facts, ``anchors`` is empty and ``stored``
    contains their added-up figures.
    """

    days: list[date]
    anchors: list[Anchor]
    eligible: int
    awaiting: int
    stored: WindowTotals | None


def _path_rows(cohort: Cohort, path: LearningPath) -> tuple[QuerySet[Any], str]:
    field = "enrolled_at" if cohort.rule == CohortRule.STARTED else "completed_at"
    rows = PathEnrollment.objects.filter(path=path, **{f"{field}__isnull": False})
    return rows, field


def _attempt_rows(cohort: Cohort) -> QuerySet[Any]:
    rows = Attempt.objects.filter(passed=True, submitted_at__isnull=False)
    if cohort.course is not None:
        rows = rows.filter(enrollment__course=cohort.course)
    return rows


def _enrollment_rows(cohort: Cohort) -> tuple[QuerySet[Any], str]:
    field = "started_at" if cohort.rule == CohortRule.STARTED else "completed_at"
    rows = Enrollment.objects.filter(**{f"{field}__isnull": False})
    if cohort.rule == CohortRule.COMPLETED:
        rows = rows.filter(status=EnrollmentStatus.COMPLETED)
    if cohort.course is not None:
        rows = rows.filter(course=cohort.course)
    return rows, field


def _training_rows(cohort: Cohort) -> tuple[QuerySet[Any], str, str]:
    """Return the rows that meet the rule, their instant and the path to the contact."""
    if cohort.path is not None:
        rows, field = _path_rows(cohort, cohort.path)
        return rows, field, "contact__"
    if cohort.rule == CohortRule.PASSED:
        return _attempt_rows(cohort), "submitted_at", "enrollment__contact__"
    rows, field = _enrollment_rows(cohort)
    return rows, field, "contact__"


def _subject_path(contact: str, level: SubjectLevel) -> str:
    return f"{contact}id" if level == SubjectLevel.CONTACT else f"{contact}account_id"


# The multiplier in two 16-bit halves. An id above about 3.5 billion times
# the whole multiplier overflows a 64-bit integer, which PostgreSQL rejects
# and SQLite turns into an inexact float. Times each half it cannot.
HASH_HIGH, HASH_LOW = divmod(HASH_MULTIPLIER, 2**16)


def _hashed(subject: str) -> Any:
    """Return the sample order of sample_key as an expression on ``subject``.

    For x = id mod 2**32, x * multiplier mod 2**32 is x * low plus
    (x * high mod 2**16) * 2**16, mod 2**32; no product exceeds 2**48.
    """
    wrapped = F(subject) % HASH_MODULUS
    high = (wrapped * HASH_HIGH) % 2**16
    return (wrapped * HASH_LOW + high * 2**16) % HASH_MODULUS


def hashed_sql(column: str) -> str:
    """Return SQL for _hashed's sample order of the integer ``column``.

    The refresh stores it as TrainingFact.sample_key, and PostgreSQL and
    SQLite compute it alike, since no product exceeds 2**48. The modulo
    signs are doubled, because the SQL runs with parameters.
    """
    wrapped = f"({column} %% {HASH_MODULUS})"
    high = f"(({wrapped} * {HASH_HIGH}) %% {2**16})"
    return f"(({wrapped} * {HASH_LOW} + {high} * {2**16}) %% {HASH_MODULUS})"


def _fact_rows(cohort: Cohort, level: SubjectLevel) -> QuerySet[TrainingFact]:
    """Return the precomputed first time each subject met the cohort's rule."""
    rows = TrainingFact.objects.filter(level=level.value, rule=cohort.rule.value)
    if cohort.path is not None:
        return rows.filter(path=cohort.path)
    if cohort.course is not None:
        return rows.filter(course=cohort.course, path__isnull=True)
    return rows.filter(course__isnull=True, path__isnull=True)


def _training_days(
    cohort: Cohort,
    scope: Scope,
    level: SubjectLevel,
    cutoff: datetime,
    precomputed: bool = False,
) -> QuerySet[Any]:
    """Return (subject, first UTC day the rule was met) rows in scope, before cutoff.

    An account's day is the first such day of any of its contacts. The day
    is the UTC day in any site time zone, because the refresh stores the
    trained subjects' windows around their UTC day. The database groups
    the rows, or with ``precomputed`` reads them grouped by the facts
    refresh, so one row per subject comes back.
    """
    if precomputed:
        # The first time before the cutoff is the first time overall when
        # that is before the cutoff, so the stored minimum serves any as-of day.
        return (
            _fact_rows(cohort, level)
            .filter(scope.accounts("account__"), first_at__lt=cutoff)
            .order_by()
            .values(subject=F("subject_id"))
            .annotate(instant=F("first_at"))
            .annotate(day=TruncDate("instant", tzinfo=UTC))
        )
    rows, field, contact = _training_rows(cohort)
    return (
        rows.filter(scope.accounts(f"{contact}account__"), **{f"{field}__lt": cutoff})
        .order_by()
        .values(subject=F(_subject_path(contact, level)))
        .annotate(instant=Min(field))
        .annotate(day=TruncDate("instant", tzinfo=UTC))
    )


def _trained_sample(
    cohort: Cohort,
    scope: Scope,
    level: SubjectLevel,
    as_of: date,
    precomputed: bool = False,
    topics: Sequence[str] = (),
) -> TrainedSample:
    """Return the hashed sample of the trained, with how many ended and wait.

    A subject is trained on the UTC day it first met the rule. It waits
    when its window after training has not ended by as_of. Counting and
    sampling run in the database. With ``precomputed`` the database also
    adds up the sample's stored figures, with its tickets on ``topics``, so
    only the sums and a count per training day come back. Otherwise the
    sampled anchors come back.
    """
    cutoff = utc_day_start(as_of + timedelta(days=1))
    in_period = _training_days(cohort, scope, level, cutoff, precomputed)
    if scope.start is not None:
        in_period = in_period.filter(day__gte=scope.start)
    if scope.end is not None:
        in_period = in_period.filter(day__lte=scope.end)
    last_ended = as_of - timedelta(days=DAYS_AFTER)
    counts = in_period.aggregate(
        subjects=Count("subject"), ended=Count("subject", filter=Q(day__lte=last_ended))
    )
    eligible, awaiting = counts["ended"], counts["subjects"] - counts["ended"]
    # A day up to last_ended is an instant before the next day's 00:00 UTC.
    # PostgreSQL estimates how many rows a range of the column leaves, but
    # not a range of its date, and with the estimate it reads the facts'
    # sample in index order instead of sorting the whole cohort.
    ended = in_period.filter(instant__lt=utc_day_start(last_ended + timedelta(days=1)))
    if precomputed:
        sample = ended.order_by("sample_key", "subject")
        days, totals = _stored_totals(sample, level, topics)
        return TrainedSample(days, [], eligible, awaiting, totals)
    sample = ended.annotate(sample_key=_hashed("subject")).order_by(
        "sample_key", "subject"
    )
    anchors = [
        Anchor(subject_id=subject, trained=True, day=day)
        for subject, day in sample.values_list("subject", "day")[:SAMPLE_LIMIT]
    ]
    days = sorted(anchor.day for anchor in anchors)
    return TrainedSample(days, anchors, eligible, awaiting, None)


def _whole(column: str) -> Cast:
    return Cast(column, BigIntegerField())


def _pair_columns(
    prefix: str, before: Any, after: Any, measured: Q
) -> dict[str, Expression]:
    """Return a sampled fact's columns that PAIR_SUMS_SQL adds up for a pair.

    The values are null, and the flag 0, where ``measured`` is false, so
    the sums skip those facts. The names differ from the fields', which an
    annotation of the same name would hide.
    """
    return {
        f"pair_{prefix}_in": Case(When(measured, then=Value(1)), default=Value(0)),
        f"pair_{prefix}_before": Case(When(measured, then=before)),
        f"pair_{prefix}_after": Case(When(measured, then=after)),
    }


def _flag(column: str) -> Case:
    return Case(When(**{column: True}, then=Value(1)), default=Value(0))


def _stored_columns(level: SubjectLevel, topics: Sequence[str]) -> dict[str, Any]:
    """Return the columns of a sampled fact that _stored_totals adds up."""
    measured = Q(measured=True)
    if level == SubjectLevel.CONTACT:
        # Events per day, scaled by both window lengths to stay whole.
        before = _whole("usage_before") * DAYS_AFTER
        after = _whole("usage_after") * DAYS_BEFORE
        return _pair_columns("usage", before, after, measured)
    scored = measured & Q(health_before__isnull=False, health_after__isnull=False)
    topic_counts = [Coalesce(column, 0) for column in _topic_ticket_columns(topics)]
    columns = {
        **_pair_columns(
            "health", _whole("health_before"), _whole("health_after"), scored
        ),
        **_pair_columns(
            "tickets",
            sum(topic_counts[0::2], Value(0)),
            sum(topic_counts[1::2], Value(0)),
            measured,
        ),
        **_pair_columns(
            "expansion", _flag("expanded_before"), _flag("expanded_after"), measured
        ),
    }
    for index, count in enumerate(topic_counts):
        columns[f"topic_{index}"] = Case(When(measured, then=count))
    return columns


# The PairSums of one pair of columns over the whole sample.
PAIR_SUMS_SQL = (
    "SUM(sample.pair_{p}_in), SUM(sample.pair_{p}_before), "
    "SUM(sample.pair_{p}_after), "
    "SUM((sample.pair_{p}_after - sample.pair_{p}_before) "
    "* (sample.pair_{p}_after - sample.pair_{p}_before))"
)

PAIRS = {
    SubjectLevel.CONTACT: ["usage"],
    SubjectLevel.ACCOUNT: ["health", "tickets", "expansion"],
}


def _stored_totals(
    sample: QuerySet[Any], level: SubjectLevel, topics: Sequence[str]
) -> tuple[list[date], WindowTotals]:
    """Add up the stored figures of the sampled facts, and count them by day.

    ``sample`` selects the sampled facts in order, not yet sliced. The sums
    run over it as a derived table: filtering the facts by the sampled ids
    instead made PostgreSQL scan the whole table. One row contains the
    sums, with no day, and one row per training day its count, because the
    untrained are given the trained days.
    """
    columns = _stored_columns(level, topics)
    rows = sample.annotate(**columns).values("day", *columns)[:SAMPLE_LIMIT]
    rows_sql, params = rows.query.sql_with_params()
    sums = [PAIR_SUMS_SQL.format(p=prefix) for prefix in PAIRS[level]]
    sums += [f"SUM(sample.topic_{index})" for index in range(2 * len(topics))]
    width = 4 * len(PAIRS[level]) + 2 * len(topics)
    sql = (
        f"WITH sample AS ({rows_sql}) "
        f"SELECT NULL, COUNT(*), {', '.join(sums)} FROM sample "
        f"UNION ALL SELECT sample.day, COUNT(*), {', '.join(['NULL'] * width)} "
        "FROM sample GROUP BY sample.day"
    )
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        day_rows = cursor.fetchall()

    days: list[date] = []
    totals = WindowTotals()
    for day, subjects, *figures in day_rows:
        if day is None:
            totals = _sample_totals(level, [int(value or 0) for value in figures])
        else:
            # SQLite returns the day as text.
            day = date.fromisoformat(day) if isinstance(day, str) else day
            days += [day] * subjects
    days.sort()
    return days, totals


def _sample_totals(level: SubjectLevel, figures: list[int]) -> WindowTotals:
    """Build the WindowTotals of the sample's sums, in _stored_totals' order."""
    pairs = []
    for offset in range(0, 4 * len(PAIRS[level]), 4):
        n, before, after, squares = figures[offset : offset + 4]
        pairs.append(PairSums(n, before, after, squares))
    if level == SubjectLevel.CONTACT:
        usage = pairs[0]
        return WindowTotals(usage=replace(usage, scale=DAYS_BEFORE * DAYS_AFTER))
    topic_counts = figures[4 * len(pairs) :]
    return WindowTotals(
        health=pairs[0],
        tickets=pairs[1],
        expansion=pairs[2],
        topics=tuple(zip(topic_counts[0::2], topic_counts[1::2], strict=True)),
    )


def _audience_course(cohort: Cohort) -> Course | None:
    """Return the course whose audience decides who is eligible as untrained.

    For a path this is its first course, by step order: a contact who may
    not take the first course cannot start the path.
    """
    if cohort.path is None:
        return cohort.course
    first_step = PathCourse.objects.filter(path=cohort.path).order_by("order", "pk")
    step = first_step.select_related("course").first()
    return step.course if step is not None else None


def _audience(cohort: Cohort, at: datetime) -> Q:
    """Return the contacts the cohort's course is meant for, as a condition.

    A course's lifecycle stages and audience condition decide who may take
    it (courses.catalogue), so only those contacts are eligible to be
    untrained. A path uses the audience of its first course. Any course,
    a path without courses, or a course for everyone leaves every contact.
    """
    course = _audience_course(cohort)
    if course is None:
        return Q()
    audience = audience_of(course)
    if audience is None:
        return Q()
    try:
        return compile_condition(audience, EvaluationContext("contact", at))
    except ConditionError as error:
        # The catalogue hides such a course; here the comparison goes on
        # with every contact rather than with none.
        logger.warning(
            "Audience of course %s does not compile, so every contact is "
            "eligible as untrained: %s",
            course.pk,
            error,
        )
        return Q()


def _untrained_sample(
    cohort: Cohort,
    scope: Scope,
    level: SubjectLevel,
    as_of: date,
    size: int,
    precomputed: bool = False,
) -> tuple[list[int], int]:
    """Return a hashed sample of untrained subject ids and the number eligible.

    Untrained subjects had not met the rule by the end of as_of. The
    database leaves the trained out with an anti-join, so no trained id
    travels to it or back.
    """
    rows, eligible = _untrained_rows(cohort, scope, level, as_of, size, precomputed)
    return [subject for subject, _ in rows], eligible


# A sampled untrained subject: its id, and for a contact the UTC day it was added.
SampledSubject = tuple[int, date | None]


def _untrained_rows(
    cohort: Cohort,
    scope: Scope,
    level: SubjectLevel,
    as_of: date,
    size: int,
    precomputed: bool = False,
) -> tuple[list[SampledSubject], int]:
    """Return _untrained_sample's ids, each with the UTC day its contact was added.

    Accounts have no such day here, so theirs is None.
    """
    cutoff = utc_day_start(as_of + timedelta(days=1))
    trained: QuerySet[Any]
    if precomputed:
        trained = _fact_rows(cohort, level).filter(
            subject_id=OuterRef("pk"), first_at__lt=cutoff
        )
    else:
        rows, field, contact = _training_rows(cohort)
        trained = rows.filter(
            **{_subject_path(contact, level): OuterRef("pk"), f"{field}__lt": cutoff}
        )
    audience = _audience(cohort, cutoff)
    subjects: QuerySet[Any]
    if level == SubjectLevel.CONTACT:
        subjects = Contact.objects.filter(scope.accounts("account__"), audience)
    else:
        subjects = Account.objects.filter(scope.accounts())
    if level == SubjectLevel.ACCOUNT and audience:
        # Without an audience an account with no contacts stays eligible.
        eligible_contacts = Contact.objects.filter(audience, account=OuterRef("pk"))
        subjects = subjects.filter(Exists(eligible_contacts))
    untrained = subjects.filter(~Exists(trained))

    eligible = untrained.count()
    if size == 0 or eligible == 0:
        return [], eligible
    ordered = untrained.annotate(
        sample_key=_hashed("pk"),
        # The UTC day, because a date loads faster than a datetime. The cast
        # leaves PostgreSQL's dates without a converter in Python.
        added_on=(
            Cast(TruncDate("added_at", tzinfo=UTC), DateField())
            if level == SubjectLevel.CONTACT
            else Value(None, output_field=DateField())
        ),
    ).order_by("sample_key", "pk")
    if size < eligible:
        # The keys spread evenly over [0, HASH_MODULUS), so the first ``size``
        # almost surely lie below this bound, and the database sorts only the
        # subjects below it. Whenever fewer than ``size`` are below, the whole
        # group is sorted instead, so the sample is the same either way.
        bound = math.ceil(HASH_MODULUS * SAMPLE_BOUND_MARGIN * size / eligible)
        below = ordered.filter(sample_key__lt=bound)
        sample = list(below.values_list("pk", "added_on")[:size])
        if len(sample) == size:
            return sample, eligible
    return list(ordered.values_list("pk", "added_on")[:size]), eligible


def sample_key(subject_id: int) -> tuple[int, int]:
    """Return the order of the hashed sample, the same as in _untrained_sample."""
    return (subject_id * HASH_MULTIPLIER) % HASH_MODULUS, subject_id


def align_anchors(trained_days: list[date], untrained_ids: list[int]) -> list[Anchor]:
    """Give each untrained subject one of the trained days, in equal shares.

    The trained days are sorted and dealt out in turn, so the untrained
    anchors have the same calendar spread as the trained ones. Seasonal
    changes in usage then move both groups alike and cancel in the
    difference in differences.
    """
    if not trained_days:
        return []
    days = sorted(trained_days)
    count = len(days)
    # Positional arguments, because a named tuple built by keyword takes
    # about twice as long, and a report builds up to 5,000 of them.
    return [
        Anchor(subject, False, days[index % count])
        for index, subject in enumerate(untrained_ids)
    ]


def anchored_cohorts(
    cohort: Cohort,
    scope: Scope,
    level: SubjectLevel,
    as_of: date,
    precomputed: bool = False,
    topics: Sequence[str] = (),
) -> AnchoredCohorts:
    """Place the trained on their training day and the untrained on aligned days.

    Only subjects whose whole window after training ended by ``as_of`` are
    measured; the trained still within it are counted as awaiting follow-up.
    With ``precomputed`` who was trained when, and the trained subjects'
    figures around that day, are read from the facts (metrics.facts), as of
    their last refresh; ``topics`` are the ticket topics whose counts to read.
    """
    trained = _trained_sample(cohort, scope, level, as_of, precomputed, topics)
    size = 0
    if trained.days:
        size = max(MIN_UNTRAINED_SAMPLE, UNTRAINED_PER_TRAINED * len(trained.days))
    sampled, eligible = _untrained_rows(
        cohort, scope, level, as_of, min(size, SAMPLE_LIMIT), precomputed
    )
    untrained = align_anchors(trained.days, [subject for subject, _ in sampled])
    logger.info(
        "Anchored %s cohorts (%s): %s trained, %s awaiting, %s of %s untrained",
        level,
        cohort.description,
        len(trained.days),
        trained.awaiting,
        len(untrained),
        eligible,
    )
    return AnchoredCohorts(
        level=level,
        trained_days=trained.days,
        untrained=untrained,
        trained_awaiting_follow_up=trained.awaiting,
        untrained_eligible=eligible,
        trained_eligible=trained.eligible,
        trained=trained.anchors,
        stored=trained.stored,
        added_in_time=_added_in_time(untrained, sampled) if precomputed else None,
    )


def _added_in_time(
    untrained: list[Anchor], sampled: list[SampledSubject]
) -> list[Anchor] | None:
    """Return the untrained anchors whose contact was added before its window began.

    Only contacts are checked, and only when the trained are read from the
    facts, so these are every anchor read from the source tables. The
    windows' SQL keeps a contact whose added_at is before 00:00 UTC of the
    window's first day, that is one added on an earlier UTC day.
    """
    days = {anchor.day for anchor in untrained}
    window_starts = {day: day - timedelta(days=DAYS_BEFORE) for day in days}
    checked = []
    for anchor, (_, added_on) in zip(untrained, sampled, strict=True):
        if added_on is None:
            return None
        if added_on < window_starts[anchor.day]:
            checked.append(anchor)
    return checked
