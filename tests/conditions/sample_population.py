"""A small, varied customer record written through the ORM, the same on any database.

Every condition kind of the benchmark cases finds both matching and
non-matching subjects in it. The same seed gives the same rows on
PostgreSQL and on SQLite, so the two can be compared by external id.
"""

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from courses.models import (
    Certificate,
    Course,
    CourseVersion,
    Enrollment,
    EnrollmentStatus,
    Lesson,
    LessonProgress,
)
from courses.services import ensure_course
from customers.models import (
    Account,
    Contact,
    HealthScore,
    Subscription,
    SupportTicket,
    SurveyResponse,
    UsageEvent,
)
from lifecycle.models import AccountStage, Stage, StageChange

AS_OF = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
ACCOUNTS = 24
EVENT_NAMES = ["Signed In", "Feature Used", "Report Exported", "Integration Connected"]
FEATURES = ["reports", "alerts", "exports", "billing", "sso"]
ROLES = ["admin", "manager", "member", "analyst"]


def build(seed: int = 7) -> None:
    """Write the population as of AS_OF; call once on an empty database."""
    from bench.scale import SCALE_COURSES

    rng = random.Random(seed)
    for slug, title, modules in SCALE_COURSES:
        ensure_course(slug, title, "", modules)
    stages = list(Stage.objects.order_by("order"))
    today = AS_OF.date()
    for number in range(ACCOUNTS):
        account = _account(rng, number, today)
        _subscriptions(rng, account, today)
        _health(rng, account, today)
        _stages(rng, account, stages)
        contacts = [_contact(rng, account, index) for index in range(rng.randint(1, 6))]
        for contact in contacts:
            _usage(rng, contact)
            _learning(rng, contact)
            _surveys(rng, contact)
        _tickets(rng, account, contacts)
    # A random generator of its own, so the rows above stay as they were.
    _recertification(random.Random(seed + 1))
    _certificates(random.Random(seed + 2))


def _when(rng: random.Random, days_back: int) -> datetime:
    """Return an instant up to days_back before AS_OF, at a random minute."""
    return AS_OF - timedelta(minutes=rng.randint(1, days_back * 24 * 60))


def _account(rng: random.Random, number: int, today: date) -> Account:
    signup = today - timedelta(days=rng.randint(30, 900))
    return Account.objects.create(
        external_id=f"A{number}",
        name=f"Account {number}",
        plan=rng.choice(["Basic", "Pro", "Enterprise"]),
        seats=rng.randint(1, 40),
        signup_date=signup,
        kickoff_date=signup + timedelta(days=rng.randint(0, 20)),
        renewal_date=(
            None if number % 7 == 0 else today + timedelta(days=rng.randint(-20, 200))
        ),
        health_score=None if number % 5 == 0 else rng.randint(20, 100),
        properties={"industry": rng.choice(["fintech", "health", "retail"])},
    )


def _subscriptions(rng: random.Random, account: Account, today: date) -> None:
    start = account.signup_date
    for index in range(rng.randint(1, 3)):
        Subscription.objects.create(
            account=account,
            external_id=f"{account.external_id}-S{index}",
            started_on=start,
            plan=rng.choice(["Basic", "Pro", "Enterprise"]),
            seats=rng.randint(1, 40),
            mrr=Decimal(100),
            arr=Decimal(1200),
            is_upgrade=index > 0 and rng.random() < 0.5,
        )
        start = min(today, start + timedelta(days=rng.randint(30, 400)))


def _health(rng: random.Random, account: Account, today: date) -> None:
    for days_ago in range(0, 61, 10):
        HealthScore.objects.create(
            account=account,
            scored_on=today - timedelta(days=days_ago),
            score=rng.randint(20, 100),
        )


def _stages(rng: random.Random, account: Account, stages: list[Stage]) -> None:
    reached = stages[: rng.randint(1, len(stages))]
    changed_at = _when(rng, 400)
    previous = None
    for stage in reached:
        StageChange.objects.create(
            account=account,
            from_stage=previous,
            to_stage=stage,
            changed_at=changed_at,
            source="initial" if previous is None else "criteria",
        )
        previous = stage
        changed_at = min(AS_OF, changed_at + timedelta(days=rng.randint(5, 90)))
    AccountStage.objects.create(
        account=account, stage=reached[-1], entered_at=changed_at
    )


def _contact(rng: random.Random, account: Account, index: int) -> Contact:
    return Contact.objects.create(
        account=account,
        external_id=f"{account.external_id}-C{index}",
        email=f"{account.external_id.lower()}-{index}@example.com",
        role=rng.choice(ROLES),
        is_champion=index == 0,
        added_at=_when(rng, 120),
    )


def _usage(rng: random.Random, contact: Contact) -> None:
    busy = rng.random()
    UsageEvent.objects.bulk_create(
        UsageEvent(
            account_id=contact.account_id,
            contact=contact,
            name=rng.choice(EVENT_NAMES),
            feature=rng.choice([*FEATURES, ""]),
            occurred_at=_when(rng, 100),
        )
        for _ in range(int(busy * busy * 60))
    )


def _learning(rng: random.Random, contact: Contact) -> None:
    for course_lessons in _courses():
        if rng.random() < 0.4:
            continue
        course, lessons = course_lessons
        enrolled_at = _when(rng, 90)
        done = rng.random() < 0.5
        enrollment = Enrollment.objects.create(
            contact=contact,
            course=course,
            source=rng.choice(["manual", "automatic"]),
            status=EnrollmentStatus.COMPLETED if done else EnrollmentStatus.ACTIVE,
            enrolled_at=enrolled_at,
            started_at=None if rng.random() < 0.3 else enrolled_at,
            completed_at=enrolled_at + timedelta(days=2) if done else None,
            score=Decimal(rng.randint(40, 100)) if done else None,
        )
        for lesson in lessons[: rng.randint(0, len(lessons))]:
            LessonProgress.objects.create(
                enrollment=enrollment,
                lesson=lesson,
                started_at=enrolled_at,
                completed_at=enrolled_at + timedelta(days=1),
                score=Decimal(rng.randint(30, 100)) if lesson.kind != "text" else None,
            )


def _recertification(rng: random.Random) -> None:
    """Publish onboarding version 2 before AS_OF and version 3 after it.

    Each completion is then marked by either version, recertified, or kept,
    so recertification_due finds learners due and not due as of AS_OF.
    """
    from bench.scale import ONBOARDING

    course = Course.objects.get(slug=ONBOARDING)
    for number, published_at in (
        (2, AS_OF - timedelta(days=20)),
        (3, AS_OF + timedelta(days=10)),
    ):
        CourseVersion.objects.create(
            course=course,
            number=number,
            fingerprint=f"{number:064d}",
            lesson_count=4,
            requires_recertification=True,
            published_at=published_at,
        )
    course.version = 3
    course.save(update_fields=["version"])

    completed = Enrollment.objects.filter(
        course=course, completed_at__isnull=False
    ).order_by("contact__external_id")
    for enrollment in completed:
        choice = rng.choice(["marked", "marked later", "recertified", "kept"])
        if choice == "marked":
            enrollment.recertification_version = 2
        elif choice == "marked later":
            enrollment.recertification_version = 3
        elif choice == "recertified":
            enrollment.completed_version = 2
            enrollment.recertified_at = AS_OF - timedelta(days=rng.randint(1, 19))
        enrollment.save(
            update_fields=[
                "recertification_version",
                "completed_version",
                "recertified_at",
            ]
        )


def _certificates(rng: random.Random) -> None:
    """Certify onboarding completions, with expiries from before AS_OF to never.

    Some certificates are revoked, and some are renewed by a newer one.
    """
    from bench.scale import ONBOARDING

    completed = Enrollment.objects.filter(
        course__slug=ONBOARDING, completed_at__isnull=False
    ).order_by("contact__external_id")
    for enrollment in completed:
        assert enrollment.completed_at is not None
        days_left = rng.choice([None, -10, 5, 20, 45, 59, 61, 120])
        revoked = rng.random() < 0.15
        Certificate.objects.create(
            enrollment=enrollment,
            course_version=1,
            code=f"{enrollment.pk:016d}{1:016d}",
            learner_name="Sample learner",
            course_title="Scale onboarding",
            issued_at=enrollment.completed_at,
            expires_at=None if days_left is None else AS_OF + timedelta(days=days_left),
            revoked_at=AS_OF - timedelta(days=2) if revoked else None,
        )
        if rng.random() < 0.2:
            Certificate.objects.create(
                enrollment=enrollment,
                course_version=2,
                code=f"{enrollment.pk:016d}{2:016d}",
                learner_name="Sample learner",
                course_title="Scale onboarding",
                issued_at=AS_OF - timedelta(days=rng.choice([1, -1])),
                expires_at=AS_OF + timedelta(days=rng.choice([30, 400])),
            )


def _courses() -> list[tuple]:
    from bench.scale import SCALE_COURSES

    slugs = [slug for slug, _, _ in SCALE_COURSES]
    found = []
    for slug in slugs:
        lessons = list(
            Lesson.objects.filter(module__course__slug=slug)
            .select_related("module__course")
            .order_by("module__order", "order")
        )
        found.append((lessons[0].module.course, lessons))
    return found


def _surveys(rng: random.Random, contact: Contact) -> None:
    for _ in range(rng.randint(0, 3)):
        kind = rng.choice(["nps", "csat"])
        SurveyResponse.objects.create(
            account_id=contact.account_id,
            contact=contact,
            kind=kind,
            score=rng.randint(0, 10) if kind == "nps" else rng.randint(1, 5),
            submitted_at=_when(rng, 100),
        )


def _tickets(rng: random.Random, account: Account, contacts: list[Contact]) -> None:
    for index in range(rng.randint(0, 5)):
        opened = _when(rng, 60)
        SupportTicket.objects.create(
            account=account,
            contact=rng.choice(contacts),
            external_id=f"{account.external_id}-T{index}",
            opened_at=opened,
            closed_at=None if rng.random() < 0.5 else opened + timedelta(days=1),
            priority=rng.choice(["low", "medium", "high", "urgent"]),
            topic=rng.choice(["billing", "login", "reports"]),
        )
