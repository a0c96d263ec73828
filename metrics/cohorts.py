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
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum
from functools import cached_property
from typing import Any, NamedTuple

from django.db import connection
from django.db.models import (
    Case,
    Count,
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
    Window,
)
from django.db.models.expressions import RawSQL
from django.db.models.fields.json import KeyTextTransform, KeyTransform
from django.db.models.functions import Cast, TruncDate

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


class StoredWindow(NamedTuple):
    """One trained subject's outcomes around its training day, from the facts.

    The fields are metrics.TrainingFact's, which metrics.windows fills at
    each refresh. ``measured`` is false for a subject that joined after its
    window before training began. A named tuple, because a report builds
    one for each of up to 10,000 subjects and a frozen dataclass took
    several times longer to build.
    """

    measured: bool
    usage_before: int | None = None
    usage_after: int | None = None
    health_before: int | None = None
    health_after: int | None = None
    expanded_before: bool | None = None
    expanded_after: bool | None = None
    # Tickets before and after on each topic asked for, in turn: (before of
    # the first topic, after of the first topic, before of the second, ...).
    tickets: tuple[int, ...] = ()


# The stored figures of each level; a contact has only usage, an account
# everything else.
STORED_FIELDS = {
    SubjectLevel.CONTACT: ["measured", "usage_before", "usage_after"],
    SubjectLevel.ACCOUNT: [
        "measured",
        "health_before",
        "health_after",
        "expanded_before",
        "expanded_after",
    ],
}


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


def _stored_columns(level: SubjectLevel, topics: Sequence[str]) -> list[Any]:
    if level == SubjectLevel.CONTACT:
        return STORED_FIELDS[level]
    return [*STORED_FIELDS[level], *_topic_ticket_columns(topics)]


def _stored_window(level: SubjectLevel, figures: list[Any]) -> StoredWindow:
    """Build a StoredWindow from the columns of _stored_columns."""
    if level == SubjectLevel.CONTACT:
        measured, usage_before, usage_after = figures
        return StoredWindow(measured, usage_before, usage_after)
    measured, health_before, health_after, expanded_before, expanded_after = figures[:5]
    return StoredWindow(
        measured,
        None,
        None,
        health_before,
        health_after,
        expanded_before,
        expanded_after,
        tuple([count or 0 for count in figures[5:]]),
    )


@dataclass(frozen=True)
class AnchoredCohorts:
    """The subjects measured, and how many of each group were left out and why.

    ``stored`` maps each trained subject to its figures read from the facts,
    or is None when they must be measured from the source tables. It takes
    no part in comparisons, because it contains the same figures either way.
    """

    level: SubjectLevel
    anchors: list[Anchor]
    trained_awaiting_follow_up: int
    untrained_eligible: int
    trained_eligible: int
    stored: dict[int, StoredWindow] | None = field(
        default=None, compare=False, repr=False
    )

    @cached_property
    def trained_count(self) -> int:
        return sum(1 for anchor in self.anchors if anchor.trained)

    @property
    def untrained_count(self) -> int:
        return len(self.anchors) - self.trained_count


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


def _hashed(subject: str) -> Any:
    """Return the sample order of sample_key as an expression on ``subject``."""
    return (F(subject) * HASH_MULTIPLIER) % HASH_MODULUS


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


def _trained_anchors(
    cohort: Cohort,
    scope: Scope,
    level: SubjectLevel,
    as_of: date,
    precomputed: bool = False,
    topics: Sequence[str] = (),
) -> tuple[list[Anchor], int, int, dict[int, StoredWindow] | None]:
    """Return the hashed sample of trained anchors, the eligible and those waiting.

    A subject is trained on the UTC day it first met the rule. It waits
    when its window after training has not ended by as_of. Counting and
    sampling run in the database, so at most SAMPLE_LIMIT rows come back.
    With ``precomputed`` each sampled subject's stored figures come back
    too, with its tickets on ``topics``; otherwise the last value is None.
    """
    cutoff = utc_day_start(as_of + timedelta(days=1))
    in_period = _training_days(cohort, scope, level, cutoff, precomputed)
    if scope.start is not None:
        in_period = in_period.filter(day__gte=scope.start)
    if scope.end is not None:
        in_period = in_period.filter(day__lte=scope.end)
    last_ended = as_of - timedelta(days=DAYS_AFTER)
    if precomputed:
        rows = _counted_sample(in_period, last_ended, _stored_columns(level, topics))
    else:
        rows = _counted_sample_of_groups(in_period, last_ended)
    eligible = awaiting = 0
    anchors = []
    stored = {}
    for subjects, ended_subjects, subject, day, *figures in rows:
        eligible, awaiting = ended_subjects, subjects - ended_subjects
        # Past the ended rows: waiting subjects, or none in the live path.
        if day is None or day > last_ended:
            break
        anchors.append(Anchor(subject_id=subject, trained=True, day=day))
        if precomputed:
            stored[subject] = _stored_window(level, figures)
    return anchors, eligible, awaiting, stored if precomputed else None


def _counted_sample(
    in_period: QuerySet[Any], last_ended: date, stored_columns: list[Any]
) -> list[tuple]:
    """Return the ended subjects' sample in one query, each row with the counts.

    Each row is (subjects, ended subjects, subject, day, *stored_columns).
    The window counts run over every row in the period before the limit
    applies. The ended come first, so the first SAMPLE_LIMIT rows are the
    sample, and rows of waiting subjects follow only when fewer ended.
    """
    ended = Q(day__lte=last_ended)
    rows = (
        in_period.annotate(
            waiting=Case(When(ended, then=Value(0)), default=Value(1)),
            sample_key=_hashed("subject"),
            subjects=Window(Count("subject")),
            ended_subjects=Window(Count("subject", filter=ended)),
        )
        .order_by("waiting", "sample_key", "subject")
        .values_list("subjects", "ended_subjects", "subject", "day", *stored_columns)
    )
    return list(rows[:SAMPLE_LIMIT])


def _counted_sample_of_groups(
    in_period: QuerySet[Any], last_ended: date
) -> list[tuple]:
    """Return what _counted_sample returns, in two queries over grouped rows.

    The live path's day is an aggregate, and Django computes no window
    aggregate over one, so the counts are a query of their own.
    """
    counts = in_period.aggregate(
        subjects=Count("subject"), ended=Count("subject", filter=Q(day__lte=last_ended))
    )
    sample = (
        in_period.filter(day__lte=last_ended)
        .annotate(sample_key=_hashed("subject"))
        .order_by("sample_key", "subject")
        .values_list("subject", "day")[:SAMPLE_LIMIT]
    )
    rows = [(counts["subjects"], counts["ended"], *row) for row in sample]
    return rows or [(counts["subjects"], counts["ended"], None, None)]


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
    if size == 0:
        return [], eligible
    ordered = untrained.annotate(sample_key=_hashed("pk")).order_by("sample_key", "pk")
    return list(ordered.values_list("pk", flat=True)[:size]), eligible


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
    return [
        Anchor(subject_id=subject, trained=False, day=days[index % len(days)])
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
    trained, trained_eligible, awaiting, stored = _trained_anchors(
        cohort, scope, level, as_of, precomputed, topics
    )
    size = 0
    if trained:
        size = max(MIN_UNTRAINED_SAMPLE, UNTRAINED_PER_TRAINED * len(trained))
    untrained_ids, eligible = _untrained_sample(
        cohort, scope, level, as_of, min(size, SAMPLE_LIMIT), precomputed
    )
    untrained = align_anchors([anchor.day for anchor in trained], untrained_ids)
    logger.info(
        "Anchored %s cohorts (%s): %s trained, %s awaiting, %s of %s untrained",
        level,
        cohort.description,
        len(trained),
        awaiting,
        len(untrained),
        eligible,
    )
    return AnchoredCohorts(
        level=level,
        anchors=trained + untrained,
        trained_awaiting_follow_up=awaiting,
        untrained_eligible=eligible,
        trained_eligible=trained_eligible,
        stored=stored,
    )
