"""Condition kinds over learning: enrollment, start, completion, scores, versions.

A contact matches through its own enrollments; for started, completed and
enrolled an account matches when any of its contacts does. Only times at
or before as_of count, so evaluation as of a past instant sees the progress
known then. Journeys use these kinds as goals, for example "stop the
reminders once the course is started". A course is named by its slug, and
saving a condition that names a missing course or lesson is rejected.
"""

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from django.db.models import (
    Avg,
    DecimalField,
    Exists,
    OuterRef,
    Q,
    Subquery,
    Value,
)

from conditions import (
    DurationSlot,
    EvaluationContext,
    Kind,
    MissingReferenceError,
    Param,
    TextForm,
    ValueSlot,
    WindowSlot,
    register,
)
from courses.models import (
    Certificate,
    Course,
    CourseVersion,
    Enrollment,
    Lesson,
    LessonProgress,
)

Params = Mapping[str, Any]

COURSE = Param(
    str,
    required=False,
    default="",
    help="Slug of the course; blank for any course.",
)


def _enrollments(context: EvaluationContext, params: Params) -> Any:
    if context.subject == "contact":
        enrollments = Enrollment.objects.filter(contact_id=OuterRef("pk"))
    else:
        enrollments = Enrollment.objects.filter(contact__account_id=OuterRef("pk"))
    if params.get("course"):
        enrollments = enrollments.filter(course__slug=params["course"])
    return enrollments


# The predicates below test that a set of enrollments exists, which
# PostgreSQL runs as a semi-join. Each value reads one time from the same
# set, so it is present exactly when the leaf holds.


def _started(context: EvaluationContext, params: Params) -> Any:
    return _enrollments(context, params).filter(started_at__lte=context.as_of)


def compile_course_started(context: EvaluationContext, params: Params) -> Q:
    return Q(Exists(_started(context, params)))


def value_course_started(context: EvaluationContext, params: Params) -> Subquery:
    """Select the latest time a matching enrollment was started, up to as_of."""
    latest = _started(context, params).order_by("-started_at")
    return Subquery(latest.values("started_at")[:1])


def _completed(context: EvaluationContext, params: Params) -> Any:
    return _enrollments(context, params).filter(completed_at__lte=context.as_of)


def compile_course_completed(context: EvaluationContext, params: Params) -> Q:
    return Q(Exists(_completed(context, params)))


def value_course_completed(context: EvaluationContext, params: Params) -> Subquery:
    """Select the latest time a matching enrollment was completed, up to as_of."""
    latest = _completed(context, params).order_by("-completed_at")
    return Subquery(latest.values("completed_at")[:1])


def _course_words(params: Params) -> str:
    return f"course {params['course']}" if params.get("course") else "any course"


def check_course(params: Params) -> None:
    """Raise MissingReferenceError when the named course does not exist."""
    slug = params.get("course")
    if not slug or Course.objects.filter(slug=slug).exists():
        return
    known = list(Course.objects.order_by("slug").values_list("slug", flat=True)[:30])
    raise MissingReferenceError(
        f"course {slug!r} does not exist; known courses: {', '.join(known) or 'none'}"
    )


def check_lesson(params: Params) -> None:
    """Raise MissingReferenceError when the course or its named lesson is missing."""
    check_course(params)
    title = params.get("lesson")
    if not title:
        return
    lessons = Lesson.objects.filter(module__course__slug=params["course"])
    if lessons.filter(title=title).exists():
        return
    known = list(lessons.order_by("title").values_list("title", flat=True)[:30])
    raise MissingReferenceError(
        f"course {params['course']!r} has no lesson {title!r}; "
        f"its lessons: {', '.join(known) or 'none'}"
    )


register(
    Kind(
        name="course_started",
        reads=frozenset({"learning"}),
        label="Started a course",
        compile=compile_course_started,
        value=value_course_started,
        describe=lambda p: f"started {_course_words(p)}",
        params={"course": COURSE},
        text=TextForm("started", (ValueSlot("course"),)),
        check_references=check_course,
    )
)
register(
    Kind(
        name="course_completed",
        reads=frozenset({"learning"}),
        label="Completed a course",
        compile=compile_course_completed,
        value=value_course_completed,
        describe=lambda p: f"completed {_course_words(p)}",
        params={"course": COURSE},
        text=TextForm("completed", (ValueSlot("course"),)),
        check_references=check_course,
    )
)


# -- enrollment state and scores ------------------------------------------------


def _enrolled(context: EvaluationContext, params: Params) -> Any:
    """Select enrollments made by as_of (in the window, when given) and not ended."""
    enrollments = (
        _enrollments(context, params)
        .filter(enrolled_at__lte=context.as_of)
        .exclude(ended_at__lte=context.as_of)
    )
    if params.get("days"):
        enrollments = enrollments.filter(
            enrolled_at__gt=context.as_of - timedelta(days=params["days"])
        )
    return enrollments


def compile_enrolled(context: EvaluationContext, params: Params) -> Q:
    """Enrolled by as_of (in the window, when given) and not withdrawn or failed."""
    return Q(Exists(_enrolled(context, params)))


def value_enrolled(context: EvaluationContext, params: Params) -> Subquery:
    """Select the time of the latest enrollment that the leaf accepts."""
    latest = _enrolled(context, params).order_by("-enrolled_at")
    return Subquery(latest.values("enrolled_at")[:1])


def _waiting(context: EvaluationContext, params: Params) -> Any:
    """Select enrollments N days old or more, not started, ended or done by as_of."""
    return (
        _enrollments(context, params)
        .filter(enrolled_at__lte=context.as_of - timedelta(days=params["days"]))
        .exclude(started_at__lte=context.as_of)
        .exclude(completed_at__lte=context.as_of)
        .exclude(ended_at__lte=context.as_of)
    )


def compile_not_started(context: EvaluationContext, params: Params) -> Q:
    """Enrolled at least N days before as_of and not started, ended or done by then."""
    return Q(Exists(_waiting(context, params)))


def value_not_started(context: EvaluationContext, params: Params) -> Subquery:
    """Select the enrollment time of the longest-waiting enrollment."""
    earliest = _waiting(context, params).order_by("enrolled_at")
    return Subquery(earliest.values("enrolled_at")[:1])


def value_course_score(context: EvaluationContext, params: Params) -> Subquery:
    """Select the contact's final score in the course, once it completed or ended.

    NOTE: Enrollment.score keeps no history, so it is read only from an
    enrollment completed or ended by as_of, taking it as the final score
    set then. A score changed later is seen with its current value.
    """
    finished = _finished_with_score(context, params)
    return Subquery(finished.values("score")[:1], output_field=SCORE_FIELD)


def compile_course_score(context: EvaluationContext, params: Params) -> Q:
    """Match a final score in the course that compares with the value.

    A contact has at most one enrollment per course, so "its score" is "a
    score", and EXISTS with the comparison inside lets PostgreSQL test it as
    a semi-join instead of sorting the enrollments for each contact.
    """
    lookup = SCORE_LOOKUPS[params["op"]]
    finished = _finished_with_score(context, params).filter(
        **{f"score__{lookup}": params["value"]}
    )
    return Q(Exists(finished))


def _finished_with_score(context: EvaluationContext, params: Params) -> Any:
    return (
        _enrollments(context, params)
        .filter(Q(completed_at__lte=context.as_of) | Q(ended_at__lte=context.as_of))
        .exclude(score__isnull=True)
    )


def value_quiz_score(context: EvaluationContext, params: Params) -> Subquery:
    """Select the score of one lesson, or the mean of the course's scored lessons.

    Only progress completed by as_of counts.
    """
    progress = LessonProgress.objects.filter(
        enrollment__contact_id=OuterRef("pk"),
        enrollment__course__slug=params["course"],
        completed_at__lte=context.as_of,
        score__isnull=False,
    )
    if params.get("lesson"):
        progress = progress.filter(lesson__title=params["lesson"])
    averaged = (
        progress.order_by()
        .values(group=Value(1))
        .annotate(average=Avg("score", output_field=SCORE_FIELD))
        .values("average")
    )
    return Subquery(averaged, output_field=SCORE_FIELD)


def compile_quiz_score(context: EvaluationContext, params: Params) -> Q:
    """Match the contacts whose score passes, grouping the scores once.

    The contacts with a passing average are found in one pass over the
    course's scored progress, instead of a correlated average per contact,
    so the query reads the course's progress rows once whatever the number
    of contacts. A contact without a score is not in the set, so the
    comparison is false for it and its negation true, as for every
    missing value.
    """
    progress = LessonProgress.objects.filter(
        enrollment__course__slug=params["course"],
        completed_at__lte=context.as_of,
        score__isnull=False,
    )
    if params.get("lesson"):
        progress = progress.filter(lesson__title=params["lesson"])
    lookup = SCORE_LOOKUPS[params["op"]]
    passing = (
        progress.order_by()
        .values("enrollment__contact_id")
        .annotate(average=Avg("score", output_field=SCORE_FIELD))
        .filter(**{f"average__{lookup}": params["value"]})
        .values("enrollment__contact_id")
    )
    return Q(pk__in=passing)


SCORE_FIELD: Any = DecimalField(max_digits=7, decimal_places=2)
REQUIRED_COURSE = Param(str, help="Slug of the course.")
SCORE_OPERATORS = (">", ">=", "<", "<=", "==")
SCORE_LOOKUPS = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte", "==": "exact"}
SCORE = Param(float, minimum=0, maximum=100, help="Score, 0 to 100.")

register(
    Kind(
        name="course_enrolled",
        reads=frozenset({"learning"}),
        label="Enrolled in a course",
        compile=compile_enrolled,
        value=value_enrolled,
        describe=lambda p: (
            f"enrolled in {_course_words(p)}"
            + (f" in the last {p['days']} days" if p.get("days") else "")
        ),
        params={
            "course": COURSE,
            "days": Param(
                int,
                required=False,
                minimum=1,
                maximum=3650,
                help="Enrolled in the last N days; absent for any time.",
            ),
        },
        text=TextForm("enrolled", (ValueSlot("course"), WindowSlot("days"))),
        check_references=check_course,
    )
)
register(
    Kind(
        name="course_not_started",
        reads=frozenset({"learning"}),
        label="Enrolled N days ago or more and not started",
        compile=compile_not_started,
        value=value_not_started,
        describe=lambda p: (
            f"not started {_course_words(p)} {p['days']} days after enrolling"
        ),
        params={
            "course": COURSE,
            "days": Param(int, minimum=0, maximum=3650, help="Days since enrolling."),
        },
        subjects=("contact",),
        text=TextForm("not_started", (ValueSlot("course"), DurationSlot("days"))),
        check_references=check_course,
    )
)
register(
    Kind(
        name="course_score",
        reads=frozenset({"learning"}),
        label="Final score in a course",
        compile=compile_course_score,
        value=value_course_score,
        describe=lambda p: f"score in {p['course']} {p['op']} {p['value']}",
        params={
            "course": REQUIRED_COURSE,
            "op": Param(str, choices=SCORE_OPERATORS, help="Comparison."),
            "value": SCORE,
        },
        subjects=("contact",),
        text=TextForm("course_score", (ValueSlot("course"),)),
        check_references=check_course,
    )
)
register(
    Kind(
        name="quiz_score",
        reads=frozenset({"learning"}),
        label="Score of a quiz or assessment lesson, or their mean",
        compile=compile_quiz_score,
        value=value_quiz_score,
        describe=lambda p: (
            f"score of {p.get('lesson') or 'the assessments'} in {p['course']} "
            f"{p['op']} {p['value']}"
        ),
        params={
            "course": REQUIRED_COURSE,
            "lesson": Param(
                str,
                required=False,
                help="Title of the lesson; absent for the mean of scored lessons.",
            ),
            "op": Param(str, choices=SCORE_OPERATORS, help="Comparison."),
            "value": SCORE,
        },
        subjects=("contact",),
        text=TextForm("quiz_score", (ValueSlot("course"),)),
        check_references=check_lesson,
    )
)


# -- recertification -----------------------------------------------------------


def _marking_version(context: EvaluationContext) -> Any:
    """Select the enrollment's marking version, once it was published by as_of."""
    return CourseVersion.objects.filter(
        course_id=OuterRef("course_id"),
        number=OuterRef("recertification_version"),
        published_at__lte=context.as_of,
    )


def _recertification_due(context: EvaluationContext, params: Params) -> Any:
    """Select completed enrollments marked for recertification by as_of.

    NOTE: the mark keeps no history of its own, so it is dated by the
    publication of the version that set it. Recertifying clears it, so as
    of a past instant a learner who recertified since then is not due. A
    learner marked again by a later version is due only from that
    version's publication.
    """
    return (
        _enrollments(context, params)
        .filter(recertification_version__isnull=False, completed_at__lte=context.as_of)
        .filter(Exists(_marking_version(context)))
    )


def compile_recertification_due(context: EvaluationContext, params: Params) -> Q:
    """Match contacts with an enrollment in the course that must recertify."""
    return Q(Exists(_recertification_due(context, params)))


def value_recertification_due(context: EvaluationContext, params: Params) -> Subquery:
    """Select when recertification became due: the marking version's publication."""
    published = _marking_version(context).values("published_at")[:1]
    due = _recertification_due(context, params).annotate(due_since=Subquery(published))
    return Subquery(due.order_by("-due_since").values("due_since")[:1])


register(
    Kind(
        name="recertification_due",
        reads=frozenset({"learning"}),
        label="Must recertify in a course",
        compile=compile_recertification_due,
        value=value_recertification_due,
        describe=lambda p: f"must recertify in {p['course']}",
        params={"course": REQUIRED_COURSE},
        subjects=("contact",),
        text=TextForm("recertification_due", (ValueSlot("course"),)),
        check_references=check_course,
    )
)


# -- certificate expiry ----------------------------------------------------------


def _valid_certificates(
    context: EvaluationContext, params: Params, contact: Any
) -> Any:
    """Select the certificates in the course issued and not revoked by as_of."""
    return Certificate.objects.filter(
        enrollment__contact_id=contact,
        enrollment__course__slug=params["course"],
        issued_at__lte=context.as_of,
    ).exclude(revoked_at__lte=context.as_of)


def _expiring(context: EvaluationContext, params: Params) -> Any:
    """Select certificates that expire after as_of and at most N days after it."""
    end = context.as_of + timedelta(days=params["days"])
    return _valid_certificates(context, params, OuterRef("pk")).filter(
        expires_at__gt=context.as_of, expires_at__lte=end
    )


def compile_certificate_expires(context: EvaluationContext, params: Params) -> Q:
    """Match a certificate expiring in the window, unless another outlasts it.

    A recertification issues a certificate for the newer version, so a
    learner whose newer certificate never expires, or expires after the
    window, has nothing to renew and is left out.
    """
    end = context.as_of + timedelta(days=params["days"])
    lasting = _valid_certificates(context, params, OuterRef("pk")).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=end)
    )
    return Q(Exists(_expiring(context, params))) & ~Q(Exists(lasting))


def value_certificate_expires(context: EvaluationContext, params: Params) -> Subquery:
    """Select the earliest expiry in the window."""
    soonest = _expiring(context, params).order_by("expires_at")
    return Subquery(soonest.values("expires_at")[:1])


register(
    Kind(
        name="certificate_expires_within",
        reads=frozenset({"learning"}),
        label="Certificate in a course expires in the next N days",
        compile=compile_certificate_expires,
        value=value_certificate_expires,
        describe=lambda p: (
            f"certificate in {p['course']} expires in the next {p['days']} days"
        ),
        params={
            "course": REQUIRED_COURSE,
            "days": Param(
                int, minimum=1, maximum=3650, help="Expires in the next N days."
            ),
        },
        subjects=("contact",),
        text=TextForm(
            "certificate_expires_within",
            (ValueSlot("course"), WindowSlot("days", direction="next")),
        ),
        check_references=check_course,
    )
)
