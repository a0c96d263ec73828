"""Preview of a trigger: who matches now, and the values that made them match.

A preview writes nothing. It counts the matching subjects with one query
and reads a sample of them with one more. In that second query each leaf of
the condition is compiled alone and annotated twice: whether it holds, and
the value it tests when its kind exposes one (Kind.value). A third query
finds which sample subjects already fired for their current occurrence. The
number of queries therefore does not grow with the population.
"""

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, cast

from django.db.models import BooleanField, ExpressionWrapper
from django.utils import timezone

from conditions import (
    EvaluationContext,
    Subject,
    compile_condition,
    get_kind,
    leaf_value,
    validate,
)
from customers.services import subjects_as_of
from triggers.models import Firing, SubjectType, Trigger
from triggers.occurrences import key_expression, key_text

logger = logging.getLogger(__name__)

SAMPLE_SIZE = 20


@dataclass(frozen=True)
class Leaf:
    """One leaf of a condition tree, located by its path such as $.all[0]."""

    path: str
    kind: str
    description: str
    node: Mapping[str, Any]
    params: Mapping[str, Any]
    has_value: bool


@dataclass(frozen=True)
class LeafResult:
    """Whether a leaf holds for one subject, and the value it tested, as text."""

    holds: bool
    value: str


@dataclass(frozen=True)
class SampleSubject:
    """One matching subject of a preview, with the result of each leaf."""

    contact_id: int | None
    account_id: int
    label: str
    account_name: str
    occurrence_key: str
    fired_before: bool
    leaves: tuple[LeafResult, ...]


@dataclass(frozen=True)
class Preview:
    """How many subjects match as of an instant, and a sample of them."""

    as_of: datetime
    matched: int
    leaves: tuple[Leaf, ...]
    sample: tuple[SampleSubject, ...]

    @property
    def sample_would_fire(self) -> int:
        return sum(1 for subject in self.sample if not subject.fired_before)


def preview_trigger(
    trigger: Trigger, as_of: datetime | None = None, sample_size: int = SAMPLE_SIZE
) -> Preview:
    """Count the subjects that match as of an instant and describe a sample.

    as_of defaults to now. The sample contains the first sample_size
    matching subjects by id, so the same data gives the same sample.
    Raises ConditionError when the stored condition is invalid.
    """
    as_of = as_of or timezone.now()
    context = EvaluationContext(cast(Subject, trigger.subject_type), as_of)
    validate(trigger.condition, context.subject)
    leaves = tuple(condition_leaves(trigger.condition, context.subject))

    matched = count_matching(trigger, context)
    sample = sample_matching(trigger, context, leaves, sample_size)
    logger.info(
        "Previewed trigger %s as of %s: %s subjects match",
        trigger.slug,
        as_of.isoformat(),
        matched,
    )
    return Preview(as_of=as_of, matched=matched, leaves=leaves, sample=sample)


def condition_leaves(tree: Any, subject: Subject, path: str = "$") -> list[Leaf]:
    """List the leaves of a valid condition tree in order, with their paths.

    The paths are those that validation errors use, so a CSM can find a
    leaf in the stored condition.
    """
    if "not" in tree:
        return condition_leaves(tree["not"], subject, f"{path}.not")
    for group in ("all", "any"):
        if group in tree:
            leaves = []
            for index, child in enumerate(tree[group]):
                leaves += condition_leaves(child, subject, f"{path}.{group}[{index}]")
            return leaves

    kind = get_kind(tree["kind"])
    params = kind.clean(tree, path)
    return [
        Leaf(
            path=path,
            kind=kind.name,
            description=kind.describe({"kind": kind.name, **params}),
            node=tree,
            params=params,
            has_value=kind.value is not None,
        )
    ]


def count_matching(trigger: Trigger, context: EvaluationContext) -> int:
    """Count the subjects that existed and match as of the context, in one query."""
    condition = compile_condition(trigger.condition, context)
    return subjects_as_of(context.subject, context.as_of).filter(condition).count()


def sample_matching(
    trigger: Trigger,
    context: EvaluationContext,
    leaves: Sequence[Leaf],
    sample_size: int = SAMPLE_SIZE,
) -> tuple[SampleSubject, ...]:
    """Read the first matching subjects by id with each leaf's result and value.

    Two queries whatever the population: one for the subjects with every
    leaf annotated, and one for the firings they already have.
    """
    condition = compile_condition(trigger.condition, context)
    annotations = _leaf_annotations(leaves, context)
    annotations["occurrence_value"] = key_expression(
        trigger.occurrence, trigger.condition, context, trigger
    )
    subjects = (
        subjects_as_of(context.subject, context.as_of)
        .filter(condition)
        .annotate(**annotations)
        .order_by("pk")
    )
    if context.subject == SubjectType.CONTACT:
        subjects = subjects.select_related("account")
    rows = list(subjects[:sample_size])

    fired = _fired_pairs(trigger, rows, context.subject)
    return tuple(_sample_subject(trigger, row, leaves, context, fired) for row in rows)


def format_value(value: Any, as_of: datetime) -> str:
    """Render a leaf's value as text, with the distance in days for dates.

    Booleans are written true and false, as in the condition language, and
    fractional numbers (an average score) with at most two decimals.
    """
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float | Decimal):
        return _number_words(value)
    if isinstance(value, datetime):
        days = (as_of - value).days
        local = timezone.localtime(value)
        return f"{local:%Y-%m-%d %H:%M} ({_days_words(days)})"
    if isinstance(value, date):
        days = (timezone.localdate(as_of) - value).days
        return f"{value.isoformat()} ({_days_words(days)})"
    return str(value)


def _number_words(value: float | Decimal) -> str:
    rounded = Decimal(str(value)).quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    text = f"{rounded:f}"
    return text.rstrip("0").rstrip(".") if "." in text else text


def _days_words(days_before: int) -> str:
    if days_before == 0:
        return "today"
    if days_before > 0:
        return f"{days_before} days ago" if days_before > 1 else "1 day ago"
    ahead = -days_before
    return f"in {ahead} days" if ahead > 1 else "in 1 day"


def _leaf_annotations(
    leaves: Sequence[Leaf], context: EvaluationContext
) -> dict[str, Any]:
    """Build, for each leaf, a boolean of the leaf alone and its value if any."""
    annotations: dict[str, Any] = {}
    for index, leaf in enumerate(leaves):
        alone = compile_condition(leaf.node, context)
        annotations[f"leaf_{index}_holds"] = ExpressionWrapper(
            alone, output_field=BooleanField()
        )
        if leaf.has_value:
            annotations[f"leaf_{index}_value"] = leaf_value(leaf.node, context)
    return annotations


def _fired_pairs(
    trigger: Trigger, rows: Sequence[Any], subject: Subject
) -> set[tuple[int, str]]:
    """Return the (subject id, occurrence key) pairs among the rows that fired."""
    if not rows:
        return set()
    subject_field = "contact_id" if subject == SubjectType.CONTACT else "account_id"
    keys = {key_text(trigger.occurrence, row.occurrence_value) for row in rows}
    firings = Firing.objects.filter(
        trigger=trigger,
        subject_type=subject,
        occurrence_key__in=keys,
        **{f"{subject_field}__in": [row.pk for row in rows]},
    )
    return set(firings.values_list(subject_field, "occurrence_key"))


def _sample_subject(
    trigger: Trigger,
    row: Any,
    leaves: Sequence[Leaf],
    context: EvaluationContext,
    fired: set[tuple[int, str]],
) -> SampleSubject:
    results = []
    for index, leaf in enumerate(leaves):
        value = ""
        if leaf.has_value:
            value = format_value(getattr(row, f"leaf_{index}_value"), context.as_of)
        # A leaf that compares NULL (no health history, say) is neither true
        # nor false in SQL; the filter treats it as not holding, and so does this.
        holds = bool(getattr(row, f"leaf_{index}_holds"))
        results.append(LeafResult(holds=holds, value=value))

    key = key_text(trigger.occurrence, row.occurrence_value)
    if context.subject == SubjectType.CONTACT:
        return SampleSubject(
            contact_id=row.pk,
            account_id=row.account_id,
            label=row.email,
            account_name=row.account.name,
            occurrence_key=key,
            fired_before=(row.pk, key) in fired,
            leaves=tuple(results),
        )
    return SampleSubject(
        contact_id=None,
        account_id=row.pk,
        label=row.name,
        account_name=row.name,
        occurrence_key=key,
        fired_before=(row.pk, key) in fired,
        leaves=tuple(results),
    )
