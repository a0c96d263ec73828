"""Daily health scores: weighted measures over the 30 days before the scored day.

A score for day D reads the window [D - 30 days, D) in UTC, so it is final
once D has begun and a recomputation gives the same number. Each measure
gives every account a value from 0 to 100. The score is the weighted mean of
the measures that have data for the account, rounded half up:

    score = round(sum(weight * value) / sum(weight of measures with data))

A measure with no data for an account (no contacts, no CSAT answer) is left
out and its weight shared by the others, so missing surveys neither raise
nor lower a score. Usage and support always have data.

Measures live in a registry. customers registers the ones over the customer
record below; other apps register theirs from AppConfig.ready() with
register_measure() (courses adds learning progress), because customers
cannot import them. Weights come from a WeightSet. The caller (lifecycle,
which stores the sets a CSM configures) passes a HealthPlan that names the
set of each account; without one the built-in HEALTH_WEIGHTS apply. A set
with a crm_property takes the score from Account.properties instead.
"""

import json
import logging
import math
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_time
from typing import Any

from django.db import connection, transaction
from django.db.models import Count, Exists, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.fields.json import KeyTransform

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

# The built-in weights, used when no weight set is configured. Measures not
# named here (NPS, renewal proximity, learning) have weight 0 until a CSM
# gives them one.
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

# Days before renewal from which renewal proximity starts to lower the
# score. It reaches 0 on the renewal date and stays 0 after it.
RENEWAL_HORIZON_DAYS = 180

# Rows per upsert statement; a batch of measures is a few megabytes of JSON.
UPSERT_BATCH_SIZE = 5000

# The key under which a score taken from a CRM property is stored in
# HealthScore.measures, so no measure may use it.
CRM_KEY = "crm"

MEASURE_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")


class InvalidHealthConfiguration(ValueError):
    """A weight set or measure that cannot be used, with the value at fault."""


# -- the measure registry -------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """One account's value of one measure, from 0 to 100, with the facts behind it."""

    value: float
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MeasureScope:
    """The day scored, its window, and the accounts a computation covers.

    account_ids None means every account. Measures use narrow() so that a
    computation for a few accounts reads only their rows, and shared() so
    that two measures reading the same aggregate run its query once.
    """

    on: date
    start: datetime
    end: datetime
    account_ids: frozenset[int] | None = None
    _shared: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def narrow(self, queryset: QuerySet[Any], account_field: str = "account_id") -> Any:
        if self.account_ids is None:
            return queryset
        return queryset.filter(**{f"{account_field}__in": self.account_ids})

    def shared(self, name: str, compute: Callable[[], Any]) -> Any:
        if name not in self._shared:
            self._shared[name] = compute()
        return self._shared[name]


@dataclass(frozen=True)
class Measure:
    """A health measure: a set-based function giving each account a Reading.

    compute(scope) must run a fixed number of queries whatever the number of
    accounts, and return readings keyed by account id. An account left out
    gets absent: None leaves the measure out of that account's score.
    """

    key: str
    label: str
    compute: Callable[[MeasureScope], Mapping[int, Reading]]
    description: str = ""
    absent: Reading | None = None


_MEASURES: dict[str, Measure] = {}


def register_measure(measure: Measure) -> Measure:
    """Add a measure to the registry; apps call this from AppConfig.ready()."""
    if not MEASURE_KEY.match(measure.key) or measure.key == CRM_KEY:
        raise InvalidHealthConfiguration(
            f"measure key {measure.key!r} is invalid; use lowercase letters, "
            f"digits and underscores, up to 40, other than {CRM_KEY!r}"
        )
    existing = _MEASURES.get(measure.key)
    if existing is not None and existing.compute is not measure.compute:
        raise InvalidHealthConfiguration(
            f"health measure {measure.key!r} is registered twice"
        )
    _MEASURES[measure.key] = measure
    return measure


def registered_measures() -> dict[str, Measure]:
    """Return the measures by key, in the order they were registered."""
    return dict(_MEASURES)


# -- weights --------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class WeightSet:
    """The weights of the measures, or the CRM property that replaces them.

    Instances compare by identity, so a plan can map many accounts to a few
    sets. check_weight_set() validates one before it is used.
    """

    name: str
    weights: Mapping[str, int] = field(default_factory=dict)
    crm_property: str = ""

    def positive_weights(self) -> dict[str, int]:
        return {key: weight for key, weight in self.weights.items() if weight > 0}


def check_weight_set(weight_set: WeightSet) -> None:
    """Raise InvalidHealthConfiguration naming the first value that is invalid."""
    name = weight_set.name
    if weight_set.crm_property:
        if len(weight_set.crm_property) > 200:
            raise InvalidHealthConfiguration(
                f"CRM property name of weight set {name!r} is longer than 200 "
                "characters; give the property's name as the CRM sync stores it"
            )
        return

    known = registered_measures()
    for key, weight in weight_set.weights.items():
        if key not in known:
            raise InvalidHealthConfiguration(
                f"measure {key!r} in weight set {name!r} is not registered; "
                f"measures: {', '.join(known)}"
            )
        if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
            raise InvalidHealthConfiguration(
                f"weight {weight!r} for {known[key].label} in weight set {name!r} "
                "is invalid; give a whole number of 0 or more"
            )
    if not weight_set.positive_weights():
        raise InvalidHealthConfiguration(
            f"weight set {name!r} has no positive weight; give at least one "
            "measure a weight above 0, or read the score from a CRM property"
        )


DEFAULT_WEIGHT_SET = WeightSet("built-in weights", HEALTH_WEIGHTS)


@dataclass(frozen=True)
class HealthPlan:
    """The weight set of each account: an override by account id, else the default."""

    default: WeightSet = DEFAULT_WEIGHT_SET
    by_account: Mapping[int, WeightSet] = field(default_factory=dict)

    def weight_set_for(self, account_id: int) -> WeightSet:
        return self.by_account.get(account_id, self.default)

    def weight_sets(self) -> list[WeightSet]:
        distinct = {id(self.default): self.default}
        for weight_set in self.by_account.values():
            distinct.setdefault(id(weight_set), weight_set)
        return list(distinct.values())


# -- scoring one account --------------------------------------------------------


def window_bounds(on: date) -> tuple[datetime, datetime]:
    """Return the start (inclusive) and end (exclusive) of the window scored for on."""
    end = datetime.combine(on, day_time.min, tzinfo=UTC)
    return end - timedelta(days=WINDOW_DAYS), end


def score_readings(
    weight_set: WeightSet, readings: Mapping[str, Reading | None]
) -> tuple[int | None, dict[str, Any]]:
    """Compute the score and each measure's stored contribution for one account.

    Only measures with a positive weight count. The score is None when none
    of them has data for the account.
    """
    weights = weight_set.positive_weights()
    available_weight = sum(
        weight for key, weight in weights.items() if readings.get(key) is not None
    )

    measures: dict[str, Any] = {}
    total_points = 0.0
    for key, weight in weights.items():
        reading = readings.get(key)
        label = _MEASURES[key].label if key in _MEASURES else key
        if reading is None:
            measures[key] = {"label": label, "available": False, "weight": weight}
            continue
        points = weight * reading.value / available_weight
        total_points += points
        measures[key] = {
            "label": label,
            "available": True,
            "weight": weight,
            "value": round(reading.value, 2),
            "points": round(points, 2),
            **reading.detail,
        }

    if available_weight == 0:
        return None, measures
    return round_half_up(total_points), measures


def round_half_up(value: float) -> int:
    # round() rounds halves to even, but a score of 72.5 should read 73.
    return math.floor(value + 0.5)


def crm_score(raw: Any) -> int | None:
    """Read a CRM property value as a score from 0 to 100, or None if it is not one.

    CRMs store numbers as text, so "72" and "72.4" are read as numbers too.
    """
    if isinstance(raw, bool) or raw is None:
        return None
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(value) or not 0 <= value <= 100:
        return None
    return round_half_up(value)


# -- computing a day for every account ----------------------------------------


@dataclass(frozen=True)
class HealthRun:
    """The counts of one computation of a day."""

    on: date
    scored: int
    # Accounts with no row for the day: no weighted measure had data, or
    # their CRM property was missing or not a score from 0 to 100.
    unscored: int
    elapsed_ms: float


def compute_health_scores(
    on: date,
    plan: HealthPlan | None = None,
    account_ids: Iterable[int] | None = None,
) -> int:
    """Score the accounts that had signed up by on; return how many were scored.

    See compute_health() for what is written.
    """
    return compute_health(on, plan, account_ids).scored


def compute_health(
    on: date,
    plan: HealthPlan | None = None,
    account_ids: Iterable[int] | None = None,
) -> HealthRun:
    """Score every account (or those of account_ids) that had signed up by on.

    Each measure with a positive weight in some set runs its own few
    aggregate queries over all accounts. An upsert in batches of 5,000
    stores the rows, unique per account and day, so recomputing a day
    replaces it. One UPDATE then copies the score to Account.health_score
    where on is the latest scored day. All of it is one transaction, so a
    failure leaves the day as it was.
    """
    plan = plan or HealthPlan()
    for weight_set in plan.weight_sets():
        check_weight_set(weight_set)
    start, end = window_bounds(on)
    scope = MeasureScope(
        on, start, end, None if account_ids is None else frozenset(account_ids)
    )
    started = time.monotonic()

    with transaction.atomic():
        _lock_day(on)
        accounts = scope.narrow(Account.objects.filter(signup_date__lte=on), "pk")
        account_list = sorted(accounts.values_list("pk", flat=True))
        readings = _read_measures(scope, plan)
        crm_values = _read_crm_properties(scope, plan)

        rows: list[ScoreRow] = []
        for account_id in account_list:
            weight_set = plan.weight_set_for(account_id)
            if weight_set.crm_property:
                raw = crm_values[weight_set.crm_property].get(account_id)
                score, measures = _score_from_crm(weight_set, raw)
            else:
                score, measures = score_readings(
                    weight_set, _readings_of(account_id, weight_set, readings)
                )
            if score is not None:
                rows.append((account_id, score, measures))

        _upsert_scores(on, rows)
        refresh_latest_scores(on, accounts)
        scored_ids = {account_id for account_id, _, _ in rows}
        _remove_stale_scores(on, [pk for pk in account_list if pk not in scored_ids])

    run = HealthRun(
        on=on,
        scored=len(rows),
        unscored=len(account_list) - len(rows),
        elapsed_ms=(time.monotonic() - started) * 1000,
    )
    log = logger.warning if run.unscored else logger.info
    log(
        "Computed health scores for %s accounts on %s in %.0f ms; "
        "%s accounts left unscored for lack of data",
        run.scored,
        on,
        run.elapsed_ms,
        run.unscored,
    )
    return run


ScoreRow = tuple[int, int, dict[str, Any]]


def _upsert_scores(on: date, rows: list[ScoreRow]) -> None:
    """Insert or replace the day's score of each account, in batches.

    On PostgreSQL each batch is one INSERT ... ON CONFLICT that reads the
    rows from a single JSON parameter. bulk_create() sends one parameter
    per value, and quoting those took most of the time of a day at 10,000
    accounts (bench/health.py). SQLite, for the embedded demo, uses
    bulk_create().
    """
    if connection.vendor != "postgresql":
        HealthScore.objects.bulk_create(
            [
                HealthScore(account_id=pk, scored_on=on, score=score, measures=measures)
                for pk, score, measures in rows
            ],
            batch_size=UPSERT_BATCH_SIZE,
            update_conflicts=True,
            unique_fields=["account", "scored_on"],
            update_fields=["score", "measures"],
        )
        return

    table = connection.ops.quote_name(HealthScore._meta.db_table)
    statement = f"""
        INSERT INTO {table} (account_id, scored_on, score, measures, created_at)
        SELECT scored.account_id, %s, scored.score, scored.measures, now()
        FROM jsonb_to_recordset(%s::jsonb)
            AS scored(account_id integer, score smallint, measures jsonb)
        ON CONFLICT (account_id, scored_on)
        DO UPDATE SET score = EXCLUDED.score, measures = EXCLUDED.measures
    """
    with connection.cursor() as cursor:
        for first in range(0, len(rows), UPSERT_BATCH_SIZE):
            batch = [
                {"account_id": pk, "score": score, "measures": measures}
                for pk, score, measures in rows[first : first + UPSERT_BATCH_SIZE]
            ]
            cursor.execute(statement, [on, json.dumps(batch)])


def _remove_stale_scores(on: date, unscored_ids: list[int]) -> None:
    """Delete the day's earlier scores of accounts that this run left unscored.

    A recomputation replaces the day, so an account that lost its data (a
    CRM property removed, say) keeps no score from the earlier run.
    Account.health_score then falls back to the latest day still scored.
    """
    if not unscored_ids:
        return
    removed, _ = HealthScore.objects.filter(
        scored_on=on, account_id__in=unscored_ids
    ).delete()
    if not removed:
        return
    latest = HealthScore.objects.filter(account=OuterRef("pk")).order_by("-scored_on")
    Account.objects.filter(pk__in=unscored_ids).update(
        health_score=Subquery(latest.values("score")[:1])
    )
    logger.info("Removed %s stale health scores of %s", removed, on)


def _lock_day(on: date) -> None:
    # Two computations of one day (the daily task and one started from the
    # admin) would update the same Account rows in different orders and
    # could deadlock, so they take turns. SQLite locks the whole database
    # for writes already.
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT pg_advisory_xact_lock(hashtext('health'), %s)", [on.toordinal()]
            )


def _read_measures(
    scope: MeasureScope, plan: HealthPlan
) -> dict[str, Mapping[int, Reading]]:
    """Run each measure that some weight set gives a positive weight, once."""
    needed: dict[str, None] = {}
    for weight_set in plan.weight_sets():
        if not weight_set.crm_property:
            needed.update(dict.fromkeys(weight_set.positive_weights()))
    return {key: _MEASURES[key].compute(scope) for key in needed}


def _readings_of(
    account_id: int,
    weight_set: WeightSet,
    readings: Mapping[str, Mapping[int, Reading]],
) -> dict[str, Reading | None]:
    return {
        key: readings[key].get(account_id, _MEASURES[key].absent)
        for key in weight_set.positive_weights()
    }


def _read_crm_properties(
    scope: MeasureScope, plan: HealthPlan
) -> dict[str, dict[int, Any]]:
    """Read each CRM property that a weight set names, one query per property."""
    names = {ws.crm_property for ws in plan.weight_sets() if ws.crm_property}
    values = {}
    for name in sorted(names):
        accounts = scope.narrow(
            Account.objects.filter(signup_date__lte=scope.on), "pk"
        ).annotate(crm_value=KeyTransform(name, "properties"))
        values[name] = dict(accounts.values_list("pk", "crm_value"))
    return values


def _score_from_crm(
    weight_set: WeightSet, raw: Any
) -> tuple[int | None, dict[str, Any]]:
    score = crm_score(raw)
    if score is None:
        return None, {}
    contribution = {
        "label": f"CRM property {weight_set.crm_property}",
        "available": True,
        "property": weight_set.crm_property,
        "weight": 1,
        "value": score,
        "points": score,
    }
    return score, {CRM_KEY: contribution}


def refresh_latest_scores(on: date, accounts: QuerySet[Account]) -> int:
    """Copy the score of on to Account.health_score where no later day is scored."""
    scored_on_day = HealthScore.objects.filter(account=OuterRef("pk"), scored_on=on)
    scored_later = HealthScore.objects.filter(account=OuterRef("pk"), scored_on__gt=on)
    return (
        accounts.filter(Exists(scored_on_day))
        .exclude(Exists(scored_later))
        .update(health_score=Subquery(scored_on_day.values("score")[:1]))
    )


# -- the measures over the customer record --------------------------------------


def _usage_by_account(scope: MeasureScope) -> dict[int, dict[str, int]]:
    """Sum uses and count distinct active contacts per account in the window."""
    rows = (
        scope.narrow(
            UsageEvent.objects.filter(
                occurred_at__gte=scope.start, occurred_at__lt=scope.end
            )
        )
        .values("account_id", "account__seats")
        .annotate(uses=Sum("quantity"), active_contacts=Count("contact", distinct=True))
        .order_by()
    )
    return {row["account_id"]: row for row in rows}


def usage_readings(scope: MeasureScope) -> dict[int, Reading]:
    readings = {}
    for account_id, row in scope.shared(
        "usage", lambda: _usage_by_account(scope)
    ).items():
        seats = row["account__seats"]
        uses = row["uses"] or 0
        target = max(seats, 1) * USAGE_TARGET_PER_SEAT
        readings[account_id] = Reading(
            100 * min(1.0, uses / target), {"uses": uses, "seats": seats}
        )
    return readings


def active_users_readings(scope: MeasureScope) -> dict[int, Reading]:
    usage = scope.shared("usage", lambda: _usage_by_account(scope))
    contacts = (
        scope.narrow(Contact.objects.filter(added_at__lt=scope.end))
        .values("account_id")
        .annotate(contacts=Count("pk"))
        .order_by()
    )
    readings = {}
    for row in contacts:
        active = usage.get(row["account_id"], {}).get("active_contacts", 0)
        # Events of contacts added after the window could push this above 1.
        fraction = min(1.0, active / row["contacts"])
        readings[row["account_id"]] = Reading(
            100 * fraction,
            {"active_contacts": active, "contacts": row["contacts"]},
        )
    return readings


def support_readings(scope: MeasureScope) -> dict[int, Reading]:
    """Count urgent and high tickets opened before the end and still open then."""
    rows = (
        scope.narrow(
            SupportTicket.objects.filter(
                opened_at__lt=scope.end,
                priority__in=[TicketPriority.URGENT, TicketPriority.HIGH],
            )
        )
        .filter(Q(closed_at__isnull=True) | Q(closed_at__gte=scope.end))
        .values("account_id")
        .annotate(
            open_urgent=Count("pk", filter=Q(priority=TicketPriority.URGENT)),
            open_high=Count("pk", filter=Q(priority=TicketPriority.HIGH)),
        )
        .order_by()
    )
    readings = {}
    for row in rows:
        penalty = (
            row["open_urgent"] * OPEN_TICKET_PENALTY[TicketPriority.URGENT]
            + row["open_high"] * OPEN_TICKET_PENALTY[TicketPriority.HIGH]
        )
        readings[row["account_id"]] = Reading(
            100 * max(0.0, 1.0 - penalty),
            {"open_urgent": row["open_urgent"], "open_high": row["open_high"]},
        )
    return readings


def _survey_answers(scope: MeasureScope, kind: str) -> Any:
    return scope.narrow(
        SurveyResponse.objects.filter(
            kind=kind, submitted_at__gte=scope.start, submitted_at__lt=scope.end
        )
    )


def csat_readings(scope: MeasureScope) -> dict[int, Reading]:
    """Average CSAT from surveys submitted in the window and tickets closed in it."""
    surveys = (
        _survey_answers(scope, SurveyKind.CSAT)
        .values("account_id")
        .annotate(total=Sum("score"), answers=Count("pk"))
        .order_by()
    )
    tickets = (
        scope.narrow(
            SupportTicket.objects.filter(
                satisfaction_score__isnull=False,
                closed_at__gte=scope.start,
                closed_at__lt=scope.end,
            )
        )
        .values("account_id")
        .annotate(total=Sum("satisfaction_score"), answers=Count("pk"))
        .order_by()
    )
    sums: dict[int, list[int]] = {}
    for row in [*surveys, *tickets]:
        total_and_answers = sums.setdefault(row["account_id"], [0, 0])
        total_and_answers[0] += row["total"]
        total_and_answers[1] += row["answers"]

    readings = {}
    for account_id, (total, answers) in sums.items():
        average = total / answers
        # CSAT runs from 1 to 5, so 1 maps to 0 and 5 to 100.
        value = 100 * min(1.0, max(0.0, (average - 1) / 4))
        readings[account_id] = Reading(
            value, {"csat_average": round(average, 2), "csat_answers": answers}
        )
    return readings


def nps_readings(scope: MeasureScope) -> dict[int, Reading]:
    """Net Promoter Score of the NPS responses submitted in the window."""
    rows = (
        _survey_answers(scope, SurveyKind.NPS)
        .values("account_id")
        .annotate(
            answers=Count("pk"),
            promoters=Count("pk", filter=Q(score__gte=9)),
            detractors=Count("pk", filter=Q(score__lte=6)),
        )
        .order_by()
    )
    readings = {}
    for row in rows:
        nps = 100 * (row["promoters"] - row["detractors"]) / row["answers"]
        # NPS runs from -100 to 100, so -100 maps to 0 and 100 to 100.
        readings[row["account_id"]] = Reading(
            (nps + 100) / 2,
            {
                "nps": round(nps, 1),
                "nps_answers": row["answers"],
                "promoters": row["promoters"],
                "detractors": row["detractors"],
            },
        )
    return readings


def renewal_readings(scope: MeasureScope) -> dict[int, Reading]:
    """Lower the value as the renewal date comes within RENEWAL_HORIZON_DAYS."""
    rows = scope.narrow(
        Account.objects.filter(signup_date__lte=scope.on, renewal_date__isnull=False),
        "pk",
    ).values_list("pk", "renewal_date")
    readings = {}
    for account_id, renewal_date in rows:
        days = (renewal_date - scope.on).days
        fraction = min(1.0, max(0.0, days / RENEWAL_HORIZON_DAYS))
        readings[account_id] = Reading(100 * fraction, {"days_to_renewal": days})
    return readings


register_measure(
    Measure(
        key="usage",
        label="Product usage",
        compute=usage_readings,
        description=(
            f"Uses in the window per seat; {USAGE_TARGET_PER_SEAT} uses a seat "
            "earn 100."
        ),
        absent=Reading(0.0, {"uses": 0}),
    )
)
register_measure(
    Measure(
        key="active_users",
        label="Active users",
        compute=active_users_readings,
        description="Share of the account's contacts with a usage event in the window.",
    )
)
register_measure(
    Measure(
        key="support",
        label="Support tickets",
        compute=support_readings,
        description=(
            "100, less 50 for each urgent and 25 for each high-priority ticket "
            "open at the end of the window."
        ),
        absent=Reading(100.0, {"open_urgent": 0, "open_high": 0}),
    )
)
register_measure(
    Measure(
        key="csat",
        label="CSAT",
        compute=csat_readings,
        description="Average CSAT (1-5) of surveys and closed tickets in the window.",
    )
)
register_measure(
    Measure(
        key="nps",
        label="NPS",
        compute=nps_readings,
        description="Net Promoter Score of the NPS responses in the window.",
    )
)
register_measure(
    Measure(
        key="renewal",
        label="Renewal proximity",
        compute=renewal_readings,
        description=(
            f"100 while renewal is over {RENEWAL_HORIZON_DAYS} days away, falling "
            "to 0 on the renewal date."
        ),
    )
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
