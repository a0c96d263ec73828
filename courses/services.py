"""What other apps may use from courses: enrolling, authoring, sign-in links.

Views, tasks, importers and tests call these functions; none of them reaches
into the models directly to write.
"""

import hashlib
import logging
import secrets
import smtplib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth.models import User
from django.core.mail import send_mail
from django.db import IntegrityError, models, transaction
from django.db.models import (
    Case,
    Count,
    Exists,
    F,
    OuterRef,
    QuerySet,
    Subquery,
    Value,
    When,
)
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone
from django.utils.http import url_has_allowed_host_and_scheme

from courses.certificates import issue_certificate
from courses.models import (
    Attempt,
    AttemptStatus,
    CompletionRule,
    Course,
    Enrollment,
    EnrollmentSource,
    EnrollmentStatus,
    Lesson,
    LessonKind,
    LessonProgress,
    Module,
    SignInLink,
)
from courses.recertification import counted_by_own_rule, retakes_left
from customers.models import Contact
from customers.services import send_data_changed

logger = logging.getLogger(__name__)

# Highest score of a quiz, exam or course, in percent.
MAX_SCORE = Decimal(100)


def announce_learning_change(account_id: int) -> None:
    """Send data_changed ("learning") for an account, inside the write's transaction.

    The triggers that read enrollments, progress or scores are then evaluated
    for that account after the commit.
    """
    send_data_changed(Enrollment, account_id, "learning")


def enroll(
    contact: Contact,
    course: Course,
    *,
    source: str = EnrollmentSource.MANUAL,
    origin: str = "",
    at: datetime | None = None,
) -> tuple[Enrollment, bool]:
    """Enroll a contact in a course once; return the enrollment and whether it is new.

    The unique constraint on (contact, course) decides, so two workers
    enrolling the same contact at once still create one row. A new
    enrollment sends data_changed ("learning") for the contact's account.
    """
    enrolled_at = at or timezone.now()
    try:
        with transaction.atomic():
            enrollment = Enrollment.objects.create(
                contact=contact,
                course=course,
                source=source,
                origin=origin,
                enrolled_at=enrolled_at,
            )
            announce_learning_change(contact.account_id)
    except IntegrityError:
        existing = Enrollment.objects.get(contact=contact, course=course)
        return existing, False
    logger.info(
        "Enrolled contact %s in course %s (source=%s origin=%s)",
        contact.pk,
        course.pk,
        source,
        origin,
    )
    return enrollment, True


@dataclass(frozen=True)
class LessonSpec:
    title: str
    body: str = ""
    kind: str = LessonKind.TEXT


@dataclass(frozen=True)
class ModuleSpec:
    title: str
    lessons: tuple[LessonSpec, ...]


@transaction.atomic
def ensure_course(
    slug: str, title: str, summary: str, modules: tuple[ModuleSpec, ...]
) -> tuple[Course, bool]:
    """Create an authored course with its modules and lessons unless the slug exists."""
    course, created = Course.objects.get_or_create(
        slug=slug, defaults={"title": title, "summary": summary}
    )
    if not created:
        return course, False
    for module_order, module_spec in enumerate(modules, start=1):
        module = Module.objects.create(
            course=course, title=module_spec.title, order=module_order
        )
        Lesson.objects.bulk_create(
            Lesson(
                module=module,
                title=lesson.title,
                body=lesson.body,
                kind=lesson.kind,
                order=lesson_order,
            )
            for lesson_order, lesson in enumerate(module_spec.lessons, start=1)
        )
    return course, True


def course_path(course: Course) -> str:
    return reverse("portal:course", kwargs={"slug": course.slug})


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_sign_in_url(contact: Contact, next_path: str = "") -> str:
    """Store a single-use sign-in link for the contact and return its absolute URL.

    Only the token's SHA-256 is stored, so a database leak exposes no
    working link.
    """
    token = secrets.token_urlsafe(32)
    SignInLink.objects.create(
        contact=contact,
        token_hash=_hash_token(token),
        next_path=next_path or reverse("portal:home"),
        expires_at=timezone.now() + timedelta(hours=settings.MAGIC_LINK_MAX_AGE_HOURS),
    )
    return settings.SITE_URL + reverse("portal:magic-link", kwargs={"token": token})


def claim_sign_in_link(token: str) -> SignInLink | None:
    """Mark an unexpired, unused link as used and return it; None when it is not valid.

    The conditional UPDATE claims the link, so two requests racing with the
    same token sign in at most once.
    """
    now = timezone.now()
    claimed = SignInLink.objects.filter(
        token_hash=_hash_token(token), used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if not claimed:
        return None
    return SignInLink.objects.select_related("contact").get(
        token_hash=_hash_token(token)
    )


# --- Sign-in: redeeming links and requesting new ones -----------------------

# A contact can receive at most this many sign-in links per hour, counting
# every SignInLink row created for them, including links in trigger emails.
SIGN_IN_LINKS_PER_HOUR = 5

SIGN_IN_EMAIL_SUBJECT = "Your Nudgepath sign-in link"


def find_sign_in_link(token: str) -> SignInLink | None:
    """Return the unexpired, unused link for a token without claiming it.

    The confirmation page calls this to report an unusable link before the
    learner presses the button.
    """
    return SignInLink.objects.filter(
        token_hash=_hash_token(token),
        used_at__isnull=True,
        expires_at__gt=timezone.now(),
    ).first()


def safe_next_path(value: str | None) -> str:
    """Return value when it is a path on this site, otherwise the portal home.

    Only "/..." paths pass. Absolute URLs, scheme-relative "//host" forms,
    control characters and backslash tricks that browsers read as another
    host are rejected.
    """
    home = reverse("portal:home")
    if not value or not value.startswith("/"):
        return home
    # Browsers drop tabs and newlines inside URLs, and a newline would also
    # break the Location header, so any control character is rejected.
    if any(ord(char) < 32 or ord(char) == 127 for char in value):
        return home
    if not url_has_allowed_host_and_scheme(value, allowed_hosts=set()):
        return home
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return home
    return value


def _username_candidates(contact: Contact) -> list[str]:
    max_length = User._meta.get_field("username").max_length or 150
    candidates = [contact.external_id, contact.email, f"contact-{contact.pk}"]
    return [name[:max_length] for name in candidates if name]


def _create_portal_user(contact: Contact) -> User:
    """Create a Django user with an unusable password for a contact.

    A username that already belongs to another user is skipped, never
    reused, so a contact cannot take over a staff user with the same name.
    """
    for username in _username_candidates(contact):
        try:
            with transaction.atomic():
                return User.objects.create_user(
                    username=username,
                    email=contact.email,
                    password=None,
                    first_name=contact.first_name,
                    last_name=contact.last_name,
                )
        except IntegrityError:
            # The candidate may be an email address, so it stays out of the log.
            logger.info(
                "A username for contact %s is taken; trying the next", contact.pk
            )
    # The last candidate contains the contact's primary key, so reaching this
    # line means a user was created by hand with that exact name.
    suffix = secrets.token_hex(4)
    return User.objects.create_user(
        username=f"contact-{contact.pk}-{suffix}", email=contact.email, password=None
    )


@transaction.atomic
def portal_user_for(contact: Contact) -> User:
    """Return the contact's Django user, creating it on first sign-in.

    The contact row is locked so that two links redeemed at the same moment
    create one user.
    """
    locked = (
        Contact.objects.select_for_update(of=("self",))
        .select_related("user")
        .get(pk=contact.pk)
    )
    if locked.user is not None:
        return locked.user
    user = _create_portal_user(locked)
    locked.user = user
    locked.save(update_fields=["user", "updated_at"])
    contact.user = user
    logger.info("Created portal user %s for contact %s", user.pk, contact.pk)
    return user


@dataclass(frozen=True)
class RedeemedLink:
    user: User
    next_path: str
    contact_id: int


@transaction.atomic
def redeem_sign_in_link(token: str) -> RedeemedLink | None:
    """Claim a sign-in link and return the contact's user and where to go next.

    Returns None when the token is unknown, used or expired. Claiming and
    creating the user share one transaction, so a failure leaves the link
    usable.
    """
    link = claim_sign_in_link(token)
    if link is None:
        return None
    user = portal_user_for(link.contact)
    return RedeemedLink(
        user=user, next_path=safe_next_path(link.next_path), contact_id=link.contact_id
    )


def _find_contact_by_email(email: str) -> Contact | None:
    exact = Contact.objects.filter(email=email).first()
    if exact is not None:
        return exact
    # Contact.email is unique only as typed, so a case-insensitive match is
    # used only when it is unambiguous.
    matches = list(Contact.objects.filter(email__iexact=email)[:2])
    return matches[0] if len(matches) == 1 else None


def request_sign_in_link(email: str, next_path: str = "") -> bool:
    """Email a new sign-in link to the contact with this address.

    Returns whether an email went out. Nothing is sent for an unknown address
    or a contact who already received SIGN_IN_LINKS_PER_HOUR links in the
    last hour. Callers must respond the same way in every case so the page
    does not reveal which addresses exist.
    """
    # NOTE: the mail is sent inside the request, so the response for a known
    # address takes longer than for an unknown one. A queued task would hide that.
    contact = _find_contact_by_email(email.strip())
    if contact is None:
        logger.info("Sign-in link requested for an unknown address")
        return False

    url = _create_rate_limited_sign_in_url(contact, safe_next_path(next_path))
    if url is None:
        logger.warning(
            "Sign-in link for contact %s not sent: %s links in the last hour",
            contact.pk,
            SIGN_IN_LINKS_PER_HOUR,
        )
        return False

    body = render_to_string(
        "portal/email/sign_in_link.txt",
        {
            "contact": contact,
            "url": url,
            "max_age_hours": settings.MAGIC_LINK_MAX_AGE_HOURS,
        },
    )
    try:
        send_mail(SIGN_IN_EMAIL_SUBJECT, body, None, [contact.email])
    except (smtplib.SMTPException, OSError) as exc:
        logger.error("Sending a sign-in link to contact %s failed: %s", contact.pk, exc)
        return False
    logger.info("Sent a sign-in link to contact %s", contact.pk)
    return True


@transaction.atomic
def _create_rate_limited_sign_in_url(contact: Contact, next_path: str) -> str | None:
    # Locking the contact makes concurrent requests count one after another,
    # so a burst cannot get past the hourly limit.
    Contact.objects.select_for_update().get(pk=contact.pk)
    since = timezone.now() - timedelta(hours=1)
    recent = SignInLink.objects.filter(contact=contact, created_at__gte=since).count()
    if recent >= SIGN_IN_LINKS_PER_HOUR:
        return None
    return create_sign_in_url(contact, next_path)


# --- Learner progress ----------------------------------------------------------

# Course order of lessons: module order, then lesson order, with ids breaking ties.
LESSON_ORDER = ("module__order", "module_id", "order", "id")


def enrollments_for(contact: Contact) -> QuerySet[Enrollment]:
    """Return the contact's enrollments in published courses, newest first.

    Every portal page reaches a course or lesson through this queryset, so
    a learner can only open courses they are enrolled in. Enrollments that
    a trigger ended are left out.
    """
    return (
        Enrollment.objects.filter(contact=contact, course__is_published=True)
        .exclude(status=EnrollmentStatus.UNENROLLED)
        .select_related("course")
        .order_by("-enrolled_at", "-id")
    )


def lesson_path(course: Course, lesson: Lesson) -> str:
    return reverse(
        "portal:lesson", kwargs={"slug": course.slug, "lesson_id": lesson.pk}
    )


@dataclass(frozen=True)
class Progress:
    """An enrollment's progress over the lessons its completion rule counts.

    The required lessons rule counts required lessons, the all lessons rule
    every lesson, and the exam rule the exams only.
    """

    completed: int
    total: int
    # Rounded down, so 100 means every counted lesson is completed.
    percent: int
    # The lesson the Resume button opens (_next_lessons); None when none is left.
    next_lesson_id: int | None

    @classmethod
    def of(cls, completed: int, total: int, next_lesson_id: int | None) -> "Progress":
        percent = completed * 100 // total if total else 0
        return cls(completed, total, percent, next_lesson_id)


def enrollment_progress(
    enrollments: Iterable[Enrollment], *, find_next_lesson: bool = True
) -> dict[int, Progress]:
    """Compute progress for many enrollments, keyed by enrollment id.

    Three aggregate queries, however many enrollments are passed. Without
    find_next_lesson, next_lesson_id is None and the third query, which
    probes every lesson of each course, is skipped.
    """
    enrollment_list = list(enrollments)
    if not enrollment_list:
        return {}
    enrollment_ids = [enrollment.pk for enrollment in enrollment_list]
    course_ids = {enrollment.course_id for enrollment in enrollment_list}

    counted_per_course = dict(
        Lesson.objects.filter(counted_by_own_rule(), module__course_id__in=course_ids)
        .values("module__course_id")
        .annotate(total=Count("id"))
        .values_list("module__course_id", "total")
    )

    # Only progress on lessons of the enrollment's own course counts, so a
    # stray row written against another course cannot inflate the figure.
    completed_per_enrollment = dict(
        LessonProgress.objects.filter(
            counted_by_own_rule("lesson__"),
            enrollment_id__in=enrollment_ids,
            completed_at__isnull=False,
            lesson__module__course_id=F("enrollment__course_id"),
        )
        .values("enrollment_id")
        .annotate(done=Count("id"))
        .values_list("enrollment_id", "done")
    )

    next_lessons = _next_lessons(enrollment_ids) if find_next_lesson else {}

    return {
        enrollment.pk: Progress.of(
            completed_per_enrollment.get(enrollment.pk, 0),
            counted_per_course.get(enrollment.course_id, 0),
            next_lessons.get(enrollment.pk),
        )
        for enrollment in enrollment_list
    }


def _next_lessons(enrollment_ids: list[int]) -> dict[int, int | None]:
    """Return the lesson each enrollment resumes at, in one query.

    Under the exam rule that is the first exam not passed, because no other
    lesson counts. Otherwise, and once every exam is passed, it is the first
    lesson not completed, required or not, so a learner reads in order.
    """
    first_incomplete = (
        Lesson.objects.filter(module__course_id=OuterRef("course_id"))
        .exclude(
            Exists(
                LessonProgress.objects.filter(
                    enrollment_id=OuterRef(OuterRef("pk")),
                    lesson_id=OuterRef("pk"),
                    completed_at__isnull=False,
                )
            )
        )
        .annotate(
            exam_first=Case(
                When(
                    kind=LessonKind.EXAM,
                    module__course__completion_rule=CompletionRule.PASS_EXAM,
                    then=Value(0),
                ),
                default=Value(1),
            )
        )
    )
    return dict(
        Enrollment.objects.filter(pk__in=enrollment_ids)
        .annotate(
            next_lesson_id=Subquery(
                first_incomplete.order_by("exam_first", *LESSON_ORDER).values("id")[:1]
            )
        )
        .values_list("pk", "next_lesson_id")
    )


def lesson_of_course(enrollment: Enrollment, lesson: Lesson) -> Lesson:
    """Re-read the lesson with its module, raising ValueError for another course's."""
    fresh = Lesson.objects.select_related("module").get(pk=lesson.pk)
    if fresh.module.course_id != enrollment.course_id:
        raise ValueError(
            f"Lesson {lesson.pk} belongs to course {fresh.module.course_id}, not to "
            f"course {enrollment.course_id} of enrollment {enrollment.pk}; "
            "pass a lesson of the enrolled course."
        )
    return fresh


def _lesson_position(lesson: Lesson) -> tuple[int, int, int, int]:
    return (lesson.module.order, lesson.module_id, lesson.order, lesson.pk)


def _advance(locked: Enrollment, lesson: Lesson, at: datetime) -> bool:
    """Set started_at on first activity and move furthest_lesson forward, never back.

    Returns whether the enrollment changed. The certificate, when the
    course issues them, is issued in the same transaction.
    """
    changed = []
    if locked.started_at is None:
        locked.started_at = at
        changed.append("started_at")
    furthest = locked.furthest_lesson
    if furthest is None or _lesson_position(lesson) > _lesson_position(furthest):
        locked.furthest_lesson = lesson
        changed.append("furthest_lesson")
    if changed:
        locked.save(update_fields=[*changed, "updated_at"])
    return bool(changed)


def lock_enrollment(enrollment: Enrollment) -> Enrollment:
    """Re-read the enrollment locked FOR UPDATE until the transaction ends.

    Progress and attempt writes for one enrollment run one at a time behind
    this row lock, so the completion check reads the other writers'
    committed rows.
    """
    return (
        Enrollment.objects.select_for_update(of=("self",))
        .select_related("furthest_lesson__module", "contact")
        .get(pk=enrollment.pk)
    )


def count_repeat_view(
    enrollment: Enrollment, lesson: Lesson, at: datetime | None = None
) -> bool:
    """Count a view of a lesson with one UPDATE when nothing else changes.

    Returns False, having written nothing, unless the learner has a progress
    row on the lesson, the enrollment has started, and the lesson is not
    past the furthest lesson. Then the view changes only counters, which
    no completion rule or condition reads, so it needs neither the
    enrollment lock nor data_changed. Otherwise record_lesson_view counts it.
    Pass the enrollment with furthest_lesson and its module loaded, or
    reading them costs a query.
    """
    viewed_at = at or timezone.now()
    if enrollment.started_at is None or enrollment.furthest_lesson_id is None:
        return False
    furthest = enrollment.furthest_lesson
    if furthest is None or _lesson_position(lesson) > _lesson_position(furthest):
        return False
    if lesson.module.course_id != enrollment.course_id:
        return False
    # The same counters as record_lesson_view: the new view's heartbeats
    # count from now on (courses.heartbeats). One UPDATE in autocommit: the
    # transaction that turned synchronous_commit off for it cost three round
    # trips (BEGIN, SET LOCAL, COMMIT) and saved less than a disk flush,
    # which takes about 0.1 ms on the benchmark machine.
    updated = LessonProgress.objects.filter(
        enrollment_id=enrollment.pk, lesson_id=lesson.pk
    ).update(
        views=F("views") + 1,
        heartbeat_view=F("views") + 1,
        heartbeat_sequence=0,
        heartbeat_at=viewed_at,
        updated_at=timezone.now(),
    )
    return bool(updated)


@transaction.atomic
def record_lesson_view(
    enrollment: Enrollment, lesson: Lesson, at: datetime | None = None
) -> LessonProgress:
    """Record that the learner opened a lesson: one more view, started on first view.

    The new view is the one whose heartbeats count time from then on.

    The first view of a lesson sends data_changed ("learning") for the
    contact's account. Later views only count views, which no condition
    reads, so they send nothing.
    """
    viewed_at = at or timezone.now()
    lesson = lesson_of_course(enrollment, lesson)
    locked = lock_enrollment(enrollment)

    # The enrollment lock serializes progress writes, so this read is still
    # true at the insert below.
    first_view = not LessonProgress.objects.filter(
        enrollment=locked, lesson=lesson
    ).exists()
    LessonProgress.objects.bulk_create(
        [LessonProgress(enrollment=locked, lesson=lesson, started_at=viewed_at)],
        ignore_conflicts=True,
    )
    # The view's number becomes the one whose heartbeats count from now on
    # (courses.heartbeats), with its time as the start of the first interval.
    LessonProgress.objects.filter(enrollment=locked, lesson=lesson).update(
        views=F("views") + 1,
        heartbeat_view=F("views") + 1,
        heartbeat_sequence=0,
        heartbeat_at=viewed_at,
        updated_at=timezone.now(),
    )
    advanced = _advance(locked, lesson, viewed_at)
    if first_view or advanced:
        announce_learning_change(locked.contact.account_id)

    enrollment.started_at = locked.started_at
    enrollment.furthest_lesson_id = locked.furthest_lesson_id
    return LessonProgress.objects.get(enrollment=locked, lesson=lesson)


@transaction.atomic
def complete_lesson(
    enrollment: Enrollment, lesson: Lesson, at: datetime | None = None
) -> Enrollment:
    """Mark a lesson completed, and the enrollment once all required lessons are.

    Idempotent: a lesson keeps the time it was first completed, and the
    enrollment's completed_at is set once. Only an active enrollment becomes
    completed; progress on a failed or withdrawn one is still recorded. A
    call that changes anything sends data_changed ("learning") for the
    contact's account.
    """
    completed_at = at or timezone.now()
    lesson = lesson_of_course(enrollment, lesson)
    locked = lock_enrollment(enrollment)

    if _complete(locked, lesson, completed_at):
        announce_learning_change(locked.contact.account_id)

    enrollment.refresh_from_db()
    return enrollment


@transaction.atomic
def record_lesson_score(
    enrollment: Enrollment,
    lesson: Lesson,
    score: Decimal | int | float | str,
    at: datetime | None = None,
) -> LessonProgress:
    """Store the score of a submitted quiz or exam and complete the lesson.

    The score is a percentage from 0 to 100, rounded to two decimals. A
    later attempt replaces the stored score, because progress keeps one
    score per lesson, and the lesson keeps the time it was first completed.
    Sends data_changed ("learning") for the contact's account when the
    score or the completion changed.
    """
    value = _percentage(score, f"score of lesson {lesson.pk}")
    submitted_at = at or timezone.now()
    lesson = lesson_of_course(enrollment, lesson)
    if lesson.kind not in (LessonKind.QUIZ, LessonKind.EXAM):
        raise ValueError(
            f"lesson {lesson.pk} is a {lesson.kind} lesson, not a quiz or exam; "
            "only quizzes and exams have scores"
        )
    locked = lock_enrollment(enrollment)

    completed = _complete(locked, lesson, submitted_at)
    rescored = (
        LessonProgress.objects.filter(enrollment=locked, lesson=lesson)
        .exclude(score=value)
        .update(score=value, updated_at=timezone.now())
    )
    if completed or rescored:
        announce_learning_change(locked.contact.account_id)

    enrollment.refresh_from_db()
    return LessonProgress.objects.get(enrollment=locked, lesson=lesson)


def _percentage(score: Decimal | int | float | str, label: str) -> Decimal:
    """Return score as a Decimal with two places, raising ValueError outside 0-100."""
    try:
        value = Decimal(str(score)).quantize(Decimal("0.01"))
    except (InvalidOperation, ValueError):
        raise ValueError(
            f"{label} {score!r} is not a number; pass a percentage from 0 to 100"
        ) from None
    if isinstance(score, bool) or not 0 <= value <= MAX_SCORE:
        raise ValueError(
            f"{label} {score!r} is invalid; use a percentage from 0 to 100"
        )
    return value


def record_assessment_result(
    locked: Enrollment, lesson: Lesson, attempt: Attempt, at: datetime
) -> bool:
    """Record a submitted attempt on the lesson's progress; return whether it changed.

    A quiz keeps the latest score and is completed by any submission. An
    exam keeps the best score and is completed only by a passing attempt.
    A self-assessment is completed and has no score. A scored lesson also
    updates the course grade, Enrollment.score. The caller holds the
    enrollment lock.
    """
    if lesson.kind == LessonKind.EXAM:
        kept_score = (
            Attempt.objects.filter(
                enrollment=locked, lesson=lesson, score__isnull=False
            )
            .exclude(status=AttemptStatus.OPEN)
            .aggregate(best=models.Max("score"))["best"]
        )
        completes = bool(attempt.passed)
    else:
        kept_score = attempt.score
        completes = True

    _ensure_progress_row(locked, lesson, at)
    changed = False
    if completes:
        changed = _complete(locked, lesson, at)
    else:
        changed = _advance(locked, lesson, at)
    if kept_score is not None:
        changed = _store_lesson_score(locked, lesson, kept_score) or changed
        changed = _store_course_score(locked) or changed
    return changed


def _ensure_progress_row(locked: Enrollment, lesson: Lesson, at: datetime) -> None:
    LessonProgress.objects.bulk_create(
        [LessonProgress(enrollment=locked, lesson=lesson, started_at=at)],
        ignore_conflicts=True,
    )


def _store_lesson_score(locked: Enrollment, lesson: Lesson, score: Decimal) -> bool:
    return bool(
        LessonProgress.objects.filter(enrollment=locked, lesson=lesson)
        .exclude(score=score)
        .update(score=score, updated_at=timezone.now())
    )


def _store_course_score(locked: Enrollment) -> bool:
    """Set the course grade: the mean of the scored lessons' scores, by weight.

    Each quiz or exam with a score counts with its weight, or with weight 1
    when none is set. Lessons never taken are left out.
    """
    rows = LessonProgress.objects.filter(
        enrollment=locked,
        score__isnull=False,
        lesson__module__course_id=locked.course_id,
    ).values_list("score", "lesson__weight")
    total = Decimal(0)
    weights = 0
    for score, weight in rows:
        assert score is not None  # the filter above leaves out null scores
        share = 1 if weight is None else weight
        total += score * share
        weights += share
    if not weights:
        return False
    grade = (total / weights).quantize(Decimal("0.01"))
    if locked.score == grade:
        return False
    locked.score = grade
    locked.save(update_fields=["score", "updated_at"])
    return True


def _complete(locked: Enrollment, lesson: Lesson, completed_at: datetime) -> bool:
    """Complete a lesson, and the enrollment when it was the last required one.

    Returns whether anything changed. The caller holds the enrollment lock.
    """
    # The unique (enrollment, lesson) constraint turns a second insert into a
    # no-op, and the conditional UPDATE only fills a missing completed_at.
    # Under the enrollment lock, the read before them stays true.
    done_before = LessonProgress.objects.filter(
        enrollment=locked, lesson=lesson, completed_at__isnull=False
    ).exists()
    LessonProgress.objects.bulk_create(
        [
            LessonProgress(
                enrollment=locked,
                lesson=lesson,
                started_at=completed_at,
                completed_at=completed_at,
            )
        ],
        ignore_conflicts=True,
    )
    LessonProgress.objects.filter(
        enrollment=locked, lesson=lesson, completed_at__isnull=True
    ).update(completed_at=completed_at, updated_at=timezone.now())
    advanced = _advance(locked, lesson, completed_at)

    finished = _finish_if_due(locked, completed_at)
    return not done_before or advanced or finished


def _finish_if_due(locked: Enrollment, completed_at: datetime) -> bool:
    """Complete an active enrollment once its course's completion rule is met.

    A completed enrollment due for recertification is recertified the same
    way, on the course's current version. Returns whether it changed.
    """
    recertifying = (
        locked.status == EnrollmentStatus.COMPLETED
        and locked.recertification_version is not None
    )
    if locked.status != EnrollmentStatus.ACTIVE and not recertifying:
        return False
    if _lessons_left_by_rule(locked):
        return False
    version = Course.objects.values_list("version", flat=True).get(pk=locked.course_id)
    if recertifying:
        _recertify(locked, version, completed_at)
        return True
    locked.status = EnrollmentStatus.COMPLETED
    locked.completed_at = completed_at
    locked.completed_version = version
    locked.save(
        update_fields=["status", "completed_at", "completed_version", "updated_at"]
    )
    logger.info(
        "Enrollment %s completed version %s of course %s",
        locked.pk,
        version,
        locked.course_id,
    )
    issue_certificate(locked, completed_at)
    # Imported here because courses.paths imports this module.
    from courses.paths import open_path_courses

    open_path_courses([locked.contact_id], completed_at)
    return True


def _recertify(locked: Enrollment, version: int, at: datetime) -> None:
    """Record a recertification on the current version and issue its certificate.

    completed_at keeps the first completion, which conditions and the
    dashboards count from.
    """
    locked.completed_version = version
    locked.recertification_version = None
    locked.recertified_at = at
    locked.save(
        update_fields=[
            "completed_version",
            "recertification_version",
            "recertified_at",
            "updated_at",
        ]
    )
    logger.info(
        "Enrollment %s recertified on version %s of course %s",
        locked.pk,
        version,
        locked.course_id,
    )
    issue_certificate(locked, at)


def _lessons_left_by_rule(enrollment: Enrollment) -> bool:
    """Return whether the course's completion rule still needs a lesson completed.

    Under the exam rule, an exam lesson is completed only when an attempt
    passed, and a course without an exam lesson is never completed. A
    learner due for recertification must also pass again the quizzes and
    exams that changed after they passed them.
    """
    rule = Course.objects.values_list("completion_rule", flat=True).get(
        pk=enrollment.course_id
    )
    lessons = Lesson.objects.filter(module__course_id=enrollment.course_id)
    if rule == CompletionRule.REQUIRED_LESSONS:
        lessons = lessons.filter(is_required=True)
    elif rule == CompletionRule.PASS_EXAM:
        lessons = lessons.filter(kind=LessonKind.EXAM)
        if not lessons.exists():
            return True
    completed = LessonProgress.objects.filter(
        enrollment=enrollment, lesson_id=OuterRef("pk"), completed_at__isnull=False
    )
    if lessons.exclude(Exists(completed)).exists():
        return True
    # Due for recertification, a quiz or exam that a version changed after
    # the learner passed it counts as not passed (courses.recertification).
    return bool(retakes_left(enrollment))


class LessonState(models.TextChoices):
    NOT_STARTED = "not_started", "Not started"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"


@dataclass(frozen=True)
class LessonEntry:
    lesson: Lesson
    state: LessonState
    progress: LessonProgress | None


@dataclass(frozen=True)
class ModuleEntry:
    module: Module
    lessons: list[LessonEntry]


def course_lessons(course_id: int) -> list[Lesson]:
    """Return the course's lessons in order, with their modules: one query."""
    return list(
        Lesson.objects.filter(module__course_id=course_id)
        .select_related("module")
        .order_by(*LESSON_ORDER)
    )


def course_outline(
    enrollment: Enrollment, lessons: list[Lesson] | None = None
) -> list[ModuleEntry]:
    """Return the course's modules and lessons in order, each with the learner's state.

    Two queries: one for the lessons with their modules, unless the caller
    passes course_lessons() of the enrollment's course, and one for
    progress. Modules without lessons are left out.
    """
    if lessons is None:
        lessons = course_lessons(enrollment.course_id)
    progress_by_lesson = {
        row.lesson_id: row
        for row in LessonProgress.objects.filter(
            enrollment=enrollment, lesson__module__course_id=enrollment.course_id
        )
    }

    outline: list[ModuleEntry] = []
    for lesson in lessons:
        if not outline or outline[-1].module.pk != lesson.module_id:
            outline.append(ModuleEntry(module=lesson.module, lessons=[]))
        progress = progress_by_lesson.get(lesson.pk)
        outline[-1].lessons.append(
            LessonEntry(lesson=lesson, state=_state_of(progress), progress=progress)
        )
    return outline


def _state_of(progress: LessonProgress | None) -> LessonState:
    if progress is None:
        return LessonState.NOT_STARTED
    if progress.completed_at is not None:
        return LessonState.COMPLETED
    return LessonState.IN_PROGRESS


# --- Batch writes for trigger sweeps -------------------------------------------

# Rows per INSERT statement; Django lowers it further where SQLite limits the
# number of query parameters.
BULK_INSERT_BATCH_SIZE = 1000


def enroll_many(
    pairs: Iterable[tuple[int, int]],
    *,
    source: str = EnrollmentSource.MANUAL,
    origin: str = "",
    at: datetime | None = None,
) -> set[tuple[int, int]]:
    """Enroll each (contact id, course id) pair once; return the pairs newly enrolled.

    The number of queries does not grow with the pairs up to
    BULK_INSERT_BATCH_SIZE (fewer on SQLite): one reads the pairs enrolled
    already, one inserts the others with ON CONFLICT DO NOTHING, and one
    reads back the rows this call wrote. As in enroll(), the unique
    constraint on (contact, course) decides, so an enrollment that another
    transaction inserted first is kept as it is and not returned.

    It sends no data_changed, on purpose. Its callers are sweeps and journey
    steps, which are evaluations already, and one signal per enrolled
    account would queue an evaluation per account. A trigger that reads an
    enrollment another trigger made fires at the next scheduled sweep.
    """
    requested = set(pairs)
    if not requested:
        return set()
    enrolled_at = at or timezone.now()
    in_scope = Enrollment.objects.filter(
        contact_id__in={contact_id for contact_id, _ in requested},
        course_id__in={course_id for _, course_id in requested},
    )
    existing = requested & set(in_scope.values_list("contact_id", "course_id"))
    missing = sorted(requested - existing)
    if not missing:
        return set()

    Enrollment.objects.bulk_create(
        [
            Enrollment(
                contact_id=contact_id,
                course_id=course_id,
                source=source,
                origin=origin,
                enrolled_at=enrolled_at,
            )
            for contact_id, course_id in missing
        ],
        batch_size=BULK_INSERT_BATCH_SIZE,
        ignore_conflicts=True,
    )

    # The insert reports no ids when conflicts are ignored, so the rows are
    # read back by the values this call wrote.
    # NOTE: a pair that another transaction enrolls between the first read
    # and the insert, with the same source, origin and time, is returned too.
    written = in_scope.filter(source=source, origin=origin, enrolled_at=enrolled_at)
    created = set(written.values_list("contact_id", "course_id")) & set(missing)
    if created:
        logger.info(
            "Enrolled %s contacts in %s courses (source=%s origin=%s)",
            len({contact_id for contact_id, _ in created}),
            len({course_id for _, course_id in created}),
            source,
            origin,
        )
    return created


def create_sign_in_urls(
    contacts: Iterable[Contact], next_path: str = ""
) -> dict[int, str]:
    """Store one single-use sign-in link per contact; return the URL by contact id.

    One INSERT per BULK_INSERT_BATCH_SIZE contacts (fewer on SQLite). As in
    create_sign_in_url(), only the tokens' SHA-256 hashes are stored.
    """
    tokens = {contact.pk: secrets.token_urlsafe(32) for contact in contacts}
    if not tokens:
        return {}
    path = next_path or reverse("portal:home")
    expires_at = timezone.now() + timedelta(hours=settings.MAGIC_LINK_MAX_AGE_HOURS)
    SignInLink.objects.bulk_create(
        [
            SignInLink(
                contact_id=contact_id,
                token_hash=_hash_token(token),
                next_path=path,
                expires_at=expires_at,
            )
            for contact_id, token in tokens.items()
        ],
        batch_size=BULK_INSERT_BATCH_SIZE,
    )
    return {
        contact_id: settings.SITE_URL
        + reverse("portal:magic-link", kwargs={"token": token})
        for contact_id, token in tokens.items()
    }


def end_trigger_enrollments(
    origin: str,
    *,
    keep_contact_ids: Iterable[int] = (),
    keep_account_ids: Iterable[int] = (),
    account_ids: Iterable[int] | None = None,
    at: datetime | None = None,
) -> int:
    """Unenroll the active automatic enrollments of an origin; return how many.

    Only enrollments with source automatic and exactly this origin (such as
    "trigger:inactive-10-days") that are active and not completed change:
    manual and imported enrollments, those of another origin, and completed,
    failed or withdrawn ones are never touched. Contacts in keep_contact_ids,
    and the contacts of accounts in keep_account_ids, keep theirs.
    account_ids, when given, limits the change to contacts of those accounts.
    One UPDATE statement.
    """
    ended_at = at or timezone.now()
    ending = Enrollment.objects.filter(
        source=EnrollmentSource.AUTOMATIC,
        origin=origin,
        status=EnrollmentStatus.ACTIVE,
        completed_at__isnull=True,
    )
    if account_ids is not None:
        ending = ending.filter(contact__account_id__in=list(account_ids))
    ending = ending.exclude(contact_id__in=list(keep_contact_ids)).exclude(
        contact__account_id__in=list(keep_account_ids)
    )
    ended = ending.update(
        status=EnrollmentStatus.UNENROLLED, ended_at=ended_at, updated_at=timezone.now()
    )
    if ended:
        logger.info("Unenrolled %s contacts enrolled by %s", ended, origin)
    return ended


def restore_trigger_enrollments(
    origin: str, pairs: Iterable[tuple[int, int]], at: datetime | None = None
) -> int:
    """Make unenrolled enrollments of an origin active again; return how many.

    A trigger that unenrolled a contact and fires for them again restores
    the same enrollment, with its progress, because the unique (contact,
    course) constraint leaves no room for a second one. enrolled_at moves to
    the new enrollment time.
    """
    requested = set(pairs)
    if not requested:
        return 0
    restored = 0
    candidates = Enrollment.objects.filter(
        origin=origin,
        status=EnrollmentStatus.UNENROLLED,
        contact_id__in={contact_id for contact_id, _ in requested},
        course_id__in={course_id for _, course_id in requested},
    )
    ids = [
        pk
        for pk, contact_id, course_id in candidates.values_list(
            "pk", "contact_id", "course_id"
        )
        if (contact_id, course_id) in requested
    ]
    if ids:
        restored = Enrollment.objects.filter(
            pk__in=ids, status=EnrollmentStatus.UNENROLLED
        ).update(
            status=EnrollmentStatus.ACTIVE,
            ended_at=None,
            enrolled_at=at or timezone.now(),
            updated_at=timezone.now(),
        )
        logger.info("Enrolled %s contacts again for %s", restored, origin)
    return restored
