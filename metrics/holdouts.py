"""Treated against held-out subjects of each trigger with a holdout.

A trigger with a holdout leaves a fixed share of the subjects that fire it
untreated (triggers.holdouts). Because the assignment depends only on a
hash of the trigger and the subject, the two groups differ only by chance
and by the treatment, so this comparison, unlike the trained/untrained one,
estimates the effect of the trigger's actions.

Each subject counts once per trigger, at its first acted or held-out
firing, and only when its follow-up period has ended by the as-of instant.
Aggregation runs in the database: two queries, one per subject type. Usage
reads the daily roll-ups, and raw events only on the two partial days at
the ends of each follow-up.
"""

import logging
import time as clock
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.db.models import (
    Count,
    DateTimeField,
    Exists,
    ExpressionWrapper,
    F,
    OuterRef,
    Q,
    QuerySet,
    Value,
)
from django.db.models.functions import TruncDate, TruncDay
from django.utils import timezone

from courses.models import Enrollment, EnrollmentStatus
from customers.models import ChurnEvent, UsageDay, UsageEvent
from metrics.models import AccountDay
from metrics.stats import (
    Difference,
    ProportionEstimate,
    Verdict,
    difference_of_proportions,
    estimate_proportion,
)
from triggers.models import Firing, FiringOutcome, SubjectType, Trigger

logger = logging.getLogger(__name__)

# Days after a firing in which its outcomes are counted. Long enough for a
# course to be taken and for usage to respond; firings younger than this are
# left out, not counted as having no outcome.
FOLLOW_UP_DAYS = 30

COMPARED_OUTCOMES = (FiringOutcome.ACTED, FiringOutcome.HELD_OUT)

OUTCOME_LABELS = {
    "active": "Used the product",
    "completed": "Completed a course",
    "churned": "Account churned",
}


@dataclass(frozen=True)
class HoldoutMetric:
    """One outcome share, treated minus control."""

    key: str
    label: str
    treated: ProportionEstimate
    control: ProportionEstimate
    difference: Difference

    @property
    def verdict(self) -> Verdict:
        return self.difference.verdict


@dataclass(frozen=True)
class HoldoutComparison:
    """One trigger's treated and control subjects and their outcome shares.

    ``awaiting_follow_up`` counts the subjects left out because their first
    firing is less than the follow-up period before the as-of instant.
    """

    trigger_id: int
    slug: str
    name: str
    subject_type: str
    holdout_percent: int
    treated: int
    control: int
    awaiting_follow_up: int
    metrics: list[HoldoutMetric]


def _first_firings(subject_type: str) -> QuerySet[Firing]:
    """Return each subject's first acted or held-out firing of each trigger."""
    earlier = Firing.objects.filter(
        trigger=OuterRef("trigger"),
        outcome__in=COMPARED_OUTCOMES,
    ).filter(
        Q(fired_at__lt=OuterRef("fired_at"))
        | Q(fired_at=OuterRef("fired_at"), pk__lt=OuterRef("pk"))
    )
    if subject_type == SubjectType.CONTACT:
        earlier = earlier.filter(contact=OuterRef("contact"))
    else:
        earlier = earlier.filter(account=OuterRef("account"), contact__isnull=True)
    return Firing.objects.filter(
        subject_type=subject_type,
        outcome__in=COMPARED_OUTCOMES,
        trigger__in=Trigger.objects.filter(firings__outcome=FiringOutcome.HELD_OUT),
    ).exclude(Exists(earlier))


def _used_product(subject_type: str) -> Q:
    """Return whether the subject used the product in (fired_at, window_end].

    Whole UTC days inside the follow-up are read from the daily roll-ups,
    customers.UsageDay per contact and metrics.AccountDay per account. The
    two days at its ends are only partly inside, so their events are read
    by time, from at most one day of raw events each. The shares are then
    those of the raw events over the exact follow-up.
    """
    whole_days = {
        "day__gt": OuterRef("fired_day"),
        "day__lt": OuterRef("window_end_day"),
    }
    first_day = {
        "occurred_at__gt": OuterRef("fired_at"),
        "occurred_at__lt": OuterRef("fired_day_end"),
    }
    last_day = {
        "occurred_at__gte": OuterRef("window_end_day_start"),
        "occurred_at__lte": OuterRef("window_end"),
    }
    rolled_up: QuerySet[Any]
    if subject_type == SubjectType.CONTACT:
        subject = {"contact": OuterRef("contact")}
        rolled_up = UsageDay.objects.filter(**subject, **whole_days)
    else:
        subject = {"account": OuterRef("account")}
        rolled_up = AccountDay.objects.filter(
            **subject, **whole_days, usage_events__gt=0
        )
    events = UsageEvent.objects.filter(**subject)
    return (
        Q(Exists(rolled_up))
        | Q(Exists(events.filter(**first_day)))
        | Q(Exists(events.filter(**last_day)))
    )


def _with_outcomes(firings: QuerySet[Firing], subject_type: str, days: int) -> Any:
    """Annotate each firing with its outcomes in (fired_at, fired_at + days]."""
    follow_up = timedelta(days=days)
    firings = firings.annotate(
        window_end=ExpressionWrapper(
            F("fired_at") + Value(follow_up), output_field=DateTimeField()
        ),
    )
    completion_window = {
        "status": EnrollmentStatus.COMPLETED,
        "completed_at__gt": OuterRef("fired_at"),
        "completed_at__lte": OuterRef("window_end"),
    }
    if subject_type == SubjectType.CONTACT:
        completions = Enrollment.objects.filter(
            contact=OuterRef("contact"), **completion_window
        )
    else:
        completions = Enrollment.objects.filter(
            contact__account=OuterRef("account"), **completion_window
        )
    # Churn days are UTC calendar days: a churn on the day of the firing
    # came before it, one on the last day of the window counts.
    churn_events = ChurnEvent.objects.filter(
        account=OuterRef("account"),
        churned_on__gt=OuterRef("fired_day"),
        churned_on__lte=OuterRef("window_end_day"),
    )
    return firings.annotate(
        fired_day=TruncDate("fired_at"),
        window_end_day=TruncDate("window_end"),
        fired_day_end=ExpressionWrapper(
            TruncDay("fired_at") + Value(timedelta(days=1)),
            output_field=DateTimeField(),
        ),
        window_end_day_start=TruncDay("window_end"),
    ).annotate(
        active=_used_product(subject_type),
        completed=Exists(completions),
        churned=Exists(churn_events)
        | Q(
            account__churned_on__gt=F("fired_day"),
            account__churned_on__lte=F("window_end_day"),
        ),
    )


def _group_counts(
    subject_type: str, as_of: datetime, days: int
) -> list[dict[str, Any]]:
    firings = _with_outcomes(_first_firings(subject_type), subject_type, days)
    ended = Q(window_end__lte=as_of)
    return list(
        firings.values("trigger_id", "outcome")
        .annotate(
            subjects=Count("pk", filter=ended),
            awaiting=Count("pk", filter=~ended),
            **{
                key: Count("pk", filter=ended & Q(**{key: True}))
                for key in OUTCOME_LABELS
            },
        )
        .order_by()
    )


def _metric(
    key: str, treated: dict[str, int], control: dict[str, int]
) -> HoldoutMetric:
    return HoldoutMetric(
        key=key,
        label=OUTCOME_LABELS[key],
        treated=estimate_proportion(treated[key], treated["subjects"]),
        control=estimate_proportion(control[key], control["subjects"]),
        difference=difference_of_proportions(
            treated[key], treated["subjects"], control[key], control["subjects"]
        ),
    )


def holdout_comparison(
    as_of: datetime | None = None, follow_up_days: int = FOLLOW_UP_DAYS
) -> list[HoldoutComparison]:
    """Compare treated and held-out subjects of every trigger with held-out firings.

    For each subject's first firing whose follow-up of follow_up_days ended
    by as_of (default now): whether the subject used the product, whether
    the subject (a contact, or any contact of an account) completed a
    course, and whether the account churned, each within the follow-up.
    Shares are compared with metrics.stats.difference_of_proportions.
    """
    started = clock.monotonic()
    as_of = as_of or timezone.now()
    if timezone.is_naive(as_of):
        raise ValueError(
            f"as_of {as_of.isoformat()} has no time zone; pass an aware datetime"
        )
    empty = {"subjects": 0, "awaiting": 0, **dict.fromkeys(OUTCOME_LABELS, 0)}
    groups: dict[int, dict[str, dict[str, int]]] = {}
    with timezone.override(UTC):
        for subject_type in SubjectType.values:
            for row in _group_counts(subject_type, as_of, follow_up_days):
                by_outcome = groups.setdefault(row["trigger_id"], {})
                by_outcome[row["outcome"]] = {key: row[key] for key in empty}

    triggers = Trigger.objects.filter(pk__in=groups).order_by("name", "pk")
    report = []
    for trigger in triggers:
        treated = groups[trigger.pk].get(FiringOutcome.ACTED, empty)
        control = groups[trigger.pk].get(FiringOutcome.HELD_OUT, empty)
        report.append(
            HoldoutComparison(
                trigger_id=trigger.pk,
                slug=trigger.slug,
                name=trigger.name,
                subject_type=trigger.subject_type,
                holdout_percent=trigger.holdout_percent,
                treated=treated["subjects"],
                control=control["subjects"],
                awaiting_follow_up=treated["awaiting"] + control["awaiting"],
                metrics=[_metric(key, treated, control) for key in OUTCOME_LABELS],
            )
        )
    logger.info(
        "Compared holdouts of %s triggers as of %s in %.0f ms",
        len(report),
        as_of.isoformat(),
        (clock.monotonic() - started) * 1000,
    )
    return report
