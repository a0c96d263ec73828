"""Daily health scores: weighted measures over the 30 days before the scored day.

A score for day D reads the window [D - 30 days, D) in UTC, so it is final
once D has begun and a recomputation gives the same number. Each measure is
a fraction from 0 to 1. The score is the weighted mean of the measures that
are available, scaled to 0-100 and rounded half up:

    score = round(100 * sum(weight * fraction) / sum(weight of available measures))

A measure with no data (no contacts, no CSAT answer) is left out and its
weight shared by the others, so missing surveys neither raise nor lower a
score. Usage and support are always available.
"""

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Sum

from customers.models import (
    Account,
    Contact,
    HealthScore,
    SupportTicket,
    SurveyKind,
    SurveyResponse,
    TicketPriority,
    UsageEvent,
)

logger = logging.getLogger(__name__)

WINDOW_DAYS = 30

# Points out of 100 that each measure earns when its fraction is 1. Each
# stored score keeps the weights it was computed with in its measures.
HEALTH_WEIGHTS: Mapping[str, int] = {
    "usage": 40,
    "active_users": 25,
    "support": 20,
    "csat": 15,
}

# Uses per seat in the window that earn the full usage measure: about one a
# working day. A usage event with quantity N counts as N uses.
USAGE_TARGET_PER_SEAT = 20

# Share of the support measure that each ticket still open at the end of the
# window takes away; two urgent tickets take all of it.
OPEN_TICKET_PENALTY: Mapping[str, float] = {
    TicketPriority.URGENT: 0.5,
    TicketPriority.HIGH: 0.25,
}

UPSERT_BATCH_SIZE = 1000


@dataclass(frozen=True)
class AccountInputs:
    """The aggregated facts about one account's window that the measures read."""

    seats: int
    uses: int = 0
    active_contacts: int = 0
    contacts: int = 0
    open_urgent: int = 0
    open_high: int = 0
    csat_total: int = 0
    csat_count: int = 0


def window_bounds(on: date) -> tuple[datetime, datetime]:
    """Return the start (inclusive) and end (exclusive) of the window scored for on."""
    end = datetime.combine(on, time.min, tzinfo=UTC)
    return end - timedelta(days=WINDOW_DAYS), end


def score_measures(inputs: AccountInputs) -> tuple[int, dict[str, Any]]:
    """Compute the score and each measure's stored detail from one account's inputs."""
    fractions: dict[str, float | None] = {
        "usage": _usage_fraction(inputs),
        "active_users": _active_users_fraction(inputs),
        "support": _support_fraction(inputs),
        "csat": _csat_fraction(inputs),
    }
    available_weight = sum(
        HEALTH_WEIGHTS[name] for name, value in fractions.items() if value is not None
    )

    measures: dict[str, Any] = {}
    total_points = 0.0
    for name, fraction in fractions.items():
        detail = _measure_inputs(name, inputs)
        if fraction is None:
            measures[name] = {"available": False, "weight": HEALTH_WEIGHTS[name]}
            measures[name].update(detail)
            continue
        points = 100 * HEALTH_WEIGHTS[name] * fraction / available_weight
        total_points += points
        measures[name] = {
            "available": True,
            "weight": HEALTH_WEIGHTS[name],
            "fraction": round(fraction, 4),
            "points": round(points, 2),
            **detail,
        }

    return round_half_up(total_points), measures


def round_half_up(value: float) -> int:
    # round() rounds halves to even, but a score of 72.5 should read 73.
    return math.floor(value + 0.5)


def _usage_fraction(inputs: AccountInputs) -> float:
    target = max(inputs.seats, 1) * USAGE_TARGET_PER_SEAT
    return min(1.0, inputs.uses / target)


def _active_users_fraction(inputs: AccountInputs) -> float | None:
    if inputs.contacts == 0:
        return None
    # Events of contacts added after the window could push this above 1.
    return min(1.0, inputs.active_contacts / inputs.contacts)


def _support_fraction(inputs: AccountInputs) -> float:
    penalty = (
        inputs.open_urgent * OPEN_TICKET_PENALTY[TicketPriority.URGENT]
        + inputs.open_high * OPEN_TICKET_PENALTY[TicketPriority.HIGH]
    )
    return max(0.0, 1.0 - penalty)


def _csat_fraction(inputs: AccountInputs) -> float | None:
    if inputs.csat_count == 0:
        return None
    average = inputs.csat_total / inputs.csat_count
    # CSAT runs from 1 to 5, so 1 maps to 0 and 5 to the full measure.
    return min(1.0, max(0.0, (average - 1) / 4))


def _measure_inputs(name: str, inputs: AccountInputs) -> dict[str, Any]:
    if name == "usage":
        return {"uses": inputs.uses, "seats": inputs.seats}
    if name == "active_users":
        return {"active_contacts": inputs.active_contacts, "contacts": inputs.contacts}
    if name == "support":
        return {"open_urgent": inputs.open_urgent, "open_high": inputs.open_high}
    average = inputs.csat_total / inputs.csat_count if inputs.csat_count else None
    return {
        "csat_average": None if average is None else round(average, 2),
        "csat_answers": inputs.csat_count,
    }


# -- computing a day for every account ----------------------------------------


def compute_health_scores(on: date) -> int:
    """Score every account that had signed up by on; return how many were scored.

    Six aggregate queries read the window for all accounts at once. An
    upsert in batches of 1,000 stores the rows, unique per account and day,
    so recomputing a day replaces it. One UPDATE then copies the score to
    Account.health_score where on is the latest scored day.
    """
    started = datetime.now(tz=UTC)
    inputs = gather_inputs(on)
    rows = []
    for account_id, account_inputs in inputs.items():
        score, measures = score_measures(account_inputs)
        rows.append(
            HealthScore(
                account_id=account_id, scored_on=on, score=score, measures=measures
            )
        )

    HealthScore.objects.bulk_create(
        rows,
        batch_size=UPSERT_BATCH_SIZE,
        update_conflicts=True,
        unique_fields=["account", "scored_on"],
        update_fields=["score", "measures"],
    )
    refresh_latest_scores(on, Account.objects.filter(signup_date__lte=on))

    elapsed_ms = (datetime.now(tz=UTC) - started).total_seconds() * 1000
    logger.info(
        "Computed health scores for %s accounts on %s in %.0f ms",
        len(rows),
        on,
        elapsed_ms,
    )
    return len(rows)


def gather_inputs(on: date) -> dict[int, AccountInputs]:
    """Aggregate each account's window in a few grouped queries, keyed by account id."""
    start, end = window_bounds(on)
    seats = dict(Account.objects.filter(signup_date__lte=on).values_list("pk", "seats"))
    facts: dict[int, dict[str, int]] = {pk: {} for pk in seats}

    usage = (
        UsageEvent.objects.filter(occurred_at__gte=start, occurred_at__lt=end)
        .values("account_id")
        .annotate(
            uses=Sum("quantity"),
            active_contacts=Count("contact", distinct=True),
        )
        .order_by()
    )
    _merge(facts, usage, ("uses", "active_contacts"))

    contacts = (
        Contact.objects.filter(added_at__lt=end)
        .values("account_id")
        .annotate(contacts=Count("pk"))
        .order_by()
    )
    _merge(facts, contacts, ("contacts",))

    _merge(facts, _open_ticket_counts(end), ("open_urgent", "open_high"))

    for answers in _csat_answers(start, end):
        for row in answers:
            account_facts = facts.get(row["account_id"])
            if account_facts is None:
                continue
            account_facts["csat_total"] = (
                account_facts.get("csat_total", 0) + row["csat_total"]
            )
            account_facts["csat_count"] = (
                account_facts.get("csat_count", 0) + row["csat_count"]
            )

    return {
        pk: AccountInputs(seats=seats[pk], **account_facts)
        for pk, account_facts in facts.items()
    }


def _open_ticket_counts(end: datetime) -> Any:
    """Count urgent and high tickets opened before end and still open at end."""
    return (
        SupportTicket.objects.filter(
            opened_at__lt=end,
            priority__in=[TicketPriority.URGENT, TicketPriority.HIGH],
        )
        .filter(Q(closed_at__isnull=True) | Q(closed_at__gte=end))
        .values("account_id")
        .annotate(
            open_urgent=Count("pk", filter=Q(priority=TicketPriority.URGENT)),
            open_high=Count("pk", filter=Q(priority=TicketPriority.HIGH)),
        )
        .order_by()
    )


def _csat_answers(start: datetime, end: datetime) -> tuple[Any, Any]:
    """Sum CSAT from surveys submitted in the window and tickets closed in it."""
    surveys = (
        SurveyResponse.objects.filter(
            kind=SurveyKind.CSAT, submitted_at__gte=start, submitted_at__lt=end
        )
        .values("account_id")
        .annotate(csat_total=Sum("score"), csat_count=Count("pk"))
        .order_by()
    )
    tickets = (
        SupportTicket.objects.filter(
            satisfaction_score__isnull=False, closed_at__gte=start, closed_at__lt=end
        )
        .values("account_id")
        .annotate(csat_total=Sum("satisfaction_score"), csat_count=Count("pk"))
        .order_by()
    )
    return surveys, tickets


def _merge(
    facts: dict[int, dict[str, int]],
    rows: Iterable[dict[str, Any]],
    names: tuple[str, ...],
) -> None:
    # Rows of accounts that had not signed up by the scored day are dropped.
    for row in rows:
        account_facts = facts.get(row["account_id"])
        if account_facts is None:
            continue
        for name in names:
            account_facts[name] = row[name] or 0


def refresh_latest_scores(on: date, accounts: QuerySet[Account]) -> int:
    """Copy the score of on to Account.health_score where no later day is scored."""
    scored_on_day = HealthScore.objects.filter(account=OuterRef("pk"), scored_on=on)
    scored_later = HealthScore.objects.filter(account=OuterRef("pk"), scored_on__gt=on)
    return (
        accounts.filter(Exists(scored_on_day))
        .exclude(Exists(scored_later))
        .update(health_score=Subquery(scored_on_day.values("score")[:1]))
    )


# -- a score from the CRM -------------------------------------------------------


def record_health_score(
    account: Account,
    on: date,
    score: int,
    measures: Mapping[str, Any] | None = None,
) -> HealthScore:
    """Store a score computed elsewhere (a CRM) for one account and day.

    It replaces a score already stored for that day, and becomes
    Account.health_score unless a later day is scored.
    """
    if isinstance(score, bool) or not isinstance(score, int) or not 0 <= score <= 100:
        raise ValueError(
            f"health score {score!r} for account {account.pk} on {on} is invalid; "
            "give a whole number from 0 to 100"
        )

    HealthScore.objects.bulk_create(
        [
            HealthScore(
                account=account,
                scored_on=on,
                score=score,
                measures=dict(measures or {}),
            )
        ],
        update_conflicts=True,
        unique_fields=["account", "scored_on"],
        update_fields=["score", "measures"],
    )
    refresh_latest_scores(on, Account.objects.filter(pk=account.pk))
    account.refresh_from_db(fields=["health_score"])
    logger.info("Recorded health score %s for account %s on %s", score, account.pk, on)
    return HealthScore.objects.get(account=account, scored_on=on)
