"""Health scores with the weights that CSMs configure, by default and per stage.

customers.health computes the scores from a HealthPlan. This module builds
the plan from the stored weight sets. The default set (or the built-in
weights when there is none) scores every account, unless the stage the
account was in at the start of the scored day has a set of its own.
The daily task, the admin and the compute_health command call
compute_health() here.
"""

import logging
from collections.abc import Iterable
from datetime import date

from django.db import transaction
from django.db.models import OuterRef, Subquery
from django.utils import timezone

from customers.health import (
    DEFAULT_WEIGHT_SET,
    HealthPlan,
    HealthRun,
    InvalidHealthConfiguration,
    WeightSet,
    check_weight_set,
    registered_measures,
    window_bounds,
)
from customers.health import compute_health as compute_with_plan
from customers.models import Account
from lifecycle.models import HealthSource, HealthWeight, HealthWeightSet, StageChange

logger = logging.getLogger(__name__)


def compute_health(
    on: date | None = None, account_ids: Iterable[int] | None = None
) -> HealthRun:
    """Score every account (or those of account_ids) for on, today by default.

    Recomputing a day replaces its scores, so this is safe to repeat.
    """
    on = on or timezone.localdate()
    ids = None if account_ids is None else list(account_ids)
    plan = load_plan(on, ids)
    return compute_with_plan(on, plan, ids)


def load_plan(on: date, account_ids: list[int] | None = None) -> HealthPlan:
    """Build the plan of on from the stored weight sets and the stage history.

    Two queries read the sets, and one more reads the stage of every
    account when some stage has a set of its own.
    """
    stored = list(
        HealthWeightSet.objects.select_related("stage").prefetch_related("weights")
    )
    default = DEFAULT_WEIGHT_SET
    by_stage: dict[int, WeightSet] = {}
    for row in stored:
        weight_set = _usable_weight_set(row)
        if weight_set is None:
            continue
        if row.stage_id is None:
            default = weight_set
        else:
            by_stage[row.stage_id] = weight_set

    if not by_stage:
        return HealthPlan(default=default)
    stages = _stages_at_start_of(on, account_ids, list(by_stage))
    by_account = {account_id: by_stage[stage_id] for account_id, stage_id in stages}
    return HealthPlan(default=default, by_account=by_account)


def weight_set_of(row: HealthWeightSet) -> WeightSet:
    """Convert a stored set to the WeightSet that customers.health scores with."""
    if row.source == HealthSource.CRM_PROPERTY:
        return WeightSet(row.display_name, crm_property=row.crm_property)
    weights = {weight.measure: weight.weight for weight in row.weights.all()}
    return WeightSet(row.display_name, weights)


def _usable_weight_set(row: HealthWeightSet) -> WeightSet | None:
    """Return the stored set, less weights of measures no app registers any more.

    A set that stays invalid is skipped with an error in the log, so its
    accounts fall back to the default set rather than stop the daily run.
    """
    weight_set = weight_set_of(row)
    known = registered_measures()
    unknown = sorted(set(weight_set.weights) - set(known))
    if unknown:
        logger.warning(
            "Health weight set %s (%s) names measures that are not registered: "
            "%s; their weights are ignored",
            row.pk,
            weight_set.name,
            ", ".join(unknown),
        )
        weights = {
            key: value for key, value in weight_set.weights.items() if key in known
        }
        weight_set = WeightSet(weight_set.name, weights, weight_set.crm_property)
    try:
        check_weight_set(weight_set)
    except InvalidHealthConfiguration as exc:
        logger.error("Skipped health weight set %s: %s", row.pk, exc)
        return None
    return weight_set


def _stages_at_start_of(
    on: date, account_ids: list[int] | None, stage_ids: list[int]
) -> list[tuple[int, int]]:
    """Return (account id, stage id) for accounts in one of stage_ids as on begins.

    The scores of day D read the window that ends at 00:00 UTC of D, so the
    stage is read at the same instant, and recomputing a past day uses the
    stage the account was in then.
    """
    _, day_start = window_bounds(on)
    latest_stage = (
        StageChange.objects.filter(account=OuterRef("pk"), changed_at__lte=day_start)
        .order_by("-changed_at", "-pk")
        .values("to_stage")[:1]
    )
    accounts = Account.objects.filter(signup_date__lte=on)
    if account_ids is not None:
        accounts = accounts.filter(pk__in=account_ids)
    return list(
        accounts.annotate(stage_then=Subquery(latest_stage))
        .filter(stage_then__in=stage_ids)
        .values_list("pk", "stage_then")
    )


def replace_weights(row: HealthWeightSet, weights: dict[str, int]) -> None:
    """Store weights as the set's only weights, in one transaction."""
    with transaction.atomic():
        row.weights.all().delete()
        HealthWeight.objects.bulk_create(
            HealthWeight(weight_set=row, measure=key, weight=weight)
            for key, weight in weights.items()
        )
    logger.info("Stored %s health weights for weight set %s", len(weights), row.pk)
