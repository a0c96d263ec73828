"""Accounts with rows of every kind the account page shows, and users in each role."""

import itertools
from datetime import date, datetime, timedelta
from typing import Any

from django.contrib.auth.models import Group, Permission
from django.utils import timezone

from courses.models import Enrollment, EnrollmentStatus, LessonProgress
from customers.models import Account, HealthScore, UsageEvent
from lifecycle.models import (
    AccountStage,
    CriterionMet,
    Stage,
    StageChange,
    SuccessCriterion,
)
from tests.factories import make_contact, make_survey, make_ticket
from tests.portal.helpers import make_course
from tests.triggers.factories import make_template, make_trigger
from triggers.models import CsmTask, Firing, OutboxEmail

_sequence = itertools.count(1)

INACTIVE_10_DAYS = {"kind": "inactivity", "days": 10}


def add_activity(account: Account, count: int, now: datetime) -> None:
    """Add `count` rows of every kind the account page and its timeline read.

    Each row is dated within the last `count` days before now, so the
    newest rows change as count grows and every section has rows to show.
    """
    course, lessons = make_course(2)
    trigger = make_trigger(INACTIVE_10_DAYS, name=f"Nudge {next(_sequence)}")
    template = make_template()
    for index in range(count):
        number = next(_sequence)
        moment = now - timedelta(days=index, hours=1)
        contact = make_contact(account, added_at=moment - timedelta(days=400))
        UsageEvent.objects.create(
            account=account,
            contact=contact,
            name="Report Viewed",
            feature="reports",
            occurred_at=moment,
        )
        make_ticket(account, moment, closed_at=moment + timedelta(minutes=30))
        make_survey(contact, moment, score=9)
        enrollment = Enrollment.objects.create(
            contact=contact,
            course=course,
            source="manual",
            enrolled_at=moment,
            status=EnrollmentStatus.ACTIVE,
        )
        LessonProgress.objects.create(
            enrollment=enrollment,
            lesson=lessons[0],
            started_at=moment,
            completed_at=moment,
        )
        firing = Firing.objects.create(
            trigger=trigger,
            subject_type="contact",
            account=account,
            contact=contact,
            occurrence_key=f"k{number}",
            fired_at=moment,
        )
        OutboxEmail.objects.create(
            firing=firing,
            contact=contact,
            template=template,
            to_email=contact.email,
            subject=f"Welcome back {number}",
            body_text="Hello",
            status="skipped",
            skip_reason="The contact unsubscribed.",
        )
        CsmTask.objects.create(
            account=account,
            title=f"Call {contact.first_name}",
            due_on=moment.date(),
            firing=firing,
        )
        HealthScore.objects.update_or_create(
            account=account,
            scored_on=timezone.localdate(now) - timedelta(days=index),
            defaults={"score": 50 + index},
        )


def place_in_stage(
    account: Account, stage: Stage, entered_at: datetime, previous: Stage | None = None
) -> AccountStage:
    StageChange.objects.create(
        account=account,
        from_stage=previous,
        to_stage=stage,
        changed_at=entered_at,
        source="criteria" if previous else "initial",
    )
    placement, _ = AccountStage.objects.update_or_create(
        account=account, defaults={"stage": stage, "entered_at": entered_at}
    )
    return placement


def make_criterion(
    stage: Stage, target_days: int | None, **fields: Any
) -> SuccessCriterion:
    number = next(_sequence)
    defaults: dict[str, Any] = {
        "stage": stage,
        "name": f"Criterion {number}",
        "condition": {"kind": "health_score", "op": ">", "value": 0},
        "target_days": target_days,
        "order": 100 + number,
    }
    defaults.update(fields)
    return SuccessCriterion.objects.create(**defaults)


def meet(account: Account, criterion: SuccessCriterion, met_at: datetime) -> None:
    CriterionMet.objects.create(account=account, criterion=criterion, met_at=met_at)


def days_before(day: date, days: int) -> date:
    return day - timedelta(days=days)


def make_user(django_user_model: Any, *, staff: bool = True, **fields: Any) -> Any:
    number = next(_sequence)
    return django_user_model.objects.create_user(
        username=f"user{number}", password="x", is_staff=staff, **fields
    )


def grant(user: Any, *names: str) -> Any:
    """Give a user permissions by "app_label.codename", creating custom ones."""
    for name in names:
        app_label, codename = name.split(".")
        user.user_permissions.add(
            Permission.objects.get(content_type__app_label=app_label, codename=codename)
        )
    return type(user).objects.get(pk=user.pk)


def join(user: Any, group_name: str) -> Any:
    user.groups.add(Group.objects.get(name=group_name))
    # A fresh instance, because the user caches its permissions.
    return type(user).objects.get(pk=user.pk)
