"""Data builders for the metrics tests: courses, enrollments and account cohorts.

Each test keeps its own description of what it planted, so expected values
are computed from that description, not read back from the database.
"""

import itertools
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, TypeVar

import numpy as np

from courses.models import Course, Enrollment, EnrollmentStatus, Lesson
from courses.services import LessonSpec, ModuleSpec, ensure_course
from customers.models import Account, ChurnEvent, Contact, SupportTicket, UsageEvent

_sequence = itertools.count(1)

T = TypeVar("T")


def present(value: T | None) -> T:
    """Return value, failing the test when it is None."""
    assert value is not None
    return value


def at_noon(day: date) -> datetime:
    return datetime.combine(day, time(12), tzinfo=UTC)


def make_course(lessons_per_module: tuple[int, ...], slug: str = "") -> Course:
    number = next(_sequence)
    modules = tuple(
        ModuleSpec(
            title=f"Module {module_number}",
            lessons=tuple(
                LessonSpec(title=f"Lesson {module_number}.{lesson_number}")
                for lesson_number in range(1, lesson_count + 1)
            ),
        )
        for module_number, lesson_count in enumerate(lessons_per_module, start=1)
    )
    course, _ = ensure_course(
        slug or f"course-{number}", f"Course {number}", "", modules
    )
    return course


def lessons_by_module(course: Course) -> list[list[Lesson]]:
    """Return the course's lessons grouped by module, both in course order."""
    return [
        list(module.lessons.order_by("order", "pk"))
        for module in course.modules.order_by("order", "pk")
    ]


def make_enrollment(
    contact: Contact,
    course: Course,
    status: str = EnrollmentStatus.ACTIVE,
    completed_at: datetime | None = None,
    furthest_lesson: Lesson | None = None,
    **fields: Any,
) -> Enrollment:
    defaults: dict[str, Any] = {
        "source": "manual",
        "enrolled_at": datetime(2023, 1, 1, tzinfo=UTC),
    }
    defaults.update(fields)
    return Enrollment.objects.create(
        contact=contact,
        course=course,
        status=status,
        completed_at=completed_at,
        furthest_lesson=furthest_lesson,
        **defaults,
    )


@dataclass
class PlantedAccount:
    """What a test planted for one account, kept beside the saved rows."""

    signup_date: date
    trained: bool
    churned_on: date | None = None
    usage_days: list[date] = field(default_factory=list)
    ticket_days: list[date] = field(default_factory=list)
    renewal_date: date | None = None


def save_cohort(planted: list[PlantedAccount], course: Course, as_of: date) -> None:
    """Save planted accounts in bulk, each with one contact.

    Trained accounts get a completed enrollment in ``course`` a day before
    ``as_of``; the others get none.
    """
    prefix = f"cohort{next(_sequence)}"
    accounts = Account.objects.bulk_create(
        Account(
            external_id=f"A-{prefix}-{index}",
            name=f"Cohort account {index}",
            signup_date=account.signup_date,
            churned_on=account.churned_on,
            renewal_date=account.renewal_date,
        )
        for index, account in enumerate(planted)
    )
    contacts = Contact.objects.bulk_create(
        Contact(
            account=account,
            external_id=f"C-{prefix}-{index}",
            email=f"{prefix}-{index}@example.com",
            first_name="Learner",
            added_at=at_noon(account.signup_date),
        )
        for index, account in enumerate(accounts)
    )
    Enrollment.objects.bulk_create(
        Enrollment(
            contact=contact,
            course=course,
            source="manual",
            status=EnrollmentStatus.COMPLETED,
            enrolled_at=at_noon(as_of - timedelta(days=20)),
            completed_at=at_noon(as_of - timedelta(days=1)),
        )
        for contact, account in zip(contacts, planted, strict=True)
        if account.trained
    )
    UsageEvent.objects.bulk_create(
        UsageEvent(
            account=saved,
            contact=contact,
            name="Feature Used",
            occurred_at=at_noon(day),
        )
        for saved, contact, account in zip(accounts, contacts, planted, strict=True)
        for day in account.usage_days
    )
    SupportTicket.objects.bulk_create(
        SupportTicket(
            account=saved,
            external_id=f"T-{prefix}-{index}-{number}",
            opened_at=at_noon(day),
            priority="medium",
        )
        for index, (saved, account) in enumerate(zip(accounts, planted, strict=True))
        for number, day in enumerate(account.ticket_days)
    )


def planted_cohort(
    rng: np.random.Generator,
    size: int,
    trained: bool,
    churn_probability: float,
    mean_ttv_days: float,
    as_of: date,
) -> list[PlantedAccount]:
    """Draw accounts whose churn and time-to-value follow the given parameters."""
    cohort = []
    for _ in range(size):
        signup_date = as_of - timedelta(days=int(rng.integers(200, 400)))
        churned_on = None
        if rng.random() < churn_probability:
            churned_on = as_of - timedelta(days=int(rng.integers(1, 100)))
        ttv = int(rng.poisson(mean_ttv_days))
        cohort.append(
            PlantedAccount(
                signup_date=signup_date,
                trained=trained,
                churned_on=churned_on,
                usage_days=[signup_date + timedelta(days=ttv)],
            )
        )
    return cohort


def save_churn_event(account: Account, churned_on: date) -> ChurnEvent:
    return ChurnEvent.objects.create(
        account=account,
        external_id=f"CE-test{next(_sequence)}",
        churned_on=churned_on,
    )
