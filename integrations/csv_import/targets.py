"""The models a CSV mapping may write, and the row checks each one needs.

A target names a model of the customer record. Its writable fields are the
model's concrete fields except the primary key, the timestamps that Django
sets and the fields that other writers own (health score, CSM owner, user
account), so a mapping can name any column that an importer may fill.
A row check states a rule that spans fields, such as a ticket that cannot
close before it opened, and rejects the row before the database would.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from django.db import models

from customers.models import (
    Account,
    ChurnEvent,
    Contact,
    Subscription,
    SupportTicket,
    SurveyKind,
    SurveyResponse,
    UsageEvent,
)

# Set by Django or owned by other writers; a mapping never fills them.
NOT_WRITABLE = {"id", "created_at", "updated_at", "health_score", "owner", "user"}

# The JSON field whose keys a mapping may fill one by one, as properties.NAME.
PROPERTIES = "properties"

RowCheck = Callable[[Mapping[str, Any]], str | None]


@dataclass(frozen=True)
class Target:
    name: str
    model: type[models.Model]
    # Checks over a whole converted row; each returns the reason to reject it.
    checks: tuple[RowCheck, ...] = field(default=())

    @property
    def label(self) -> str:
        return self.name.replace("_", " ")

    def writable_fields(self) -> dict[str, models.Field[Any, Any]]:
        """Return the model fields a mapping may set, by name."""
        return {
            model_field.name: model_field
            for model_field in self.model._meta.concrete_fields
            if model_field.name not in NOT_WRITABLE
        }


def _not_before(later: str, earlier: str) -> RowCheck:
    def check(row: Mapping[str, Any]) -> str | None:
        end, start = row.get(later), row.get(earlier)
        if end is not None and start is not None and end < start:
            return f"{later} {end} is before {earlier} {start}"
        return None

    return check


def _survey_score_in_range(row: Mapping[str, Any]) -> str | None:
    # The same rule as the survey_score_in_range database constraint.
    kind, score = row.get("kind"), row.get("score")
    if score is None:
        return None
    if kind == SurveyKind.NPS and not 0 <= score <= 10:
        return f"score {score} is not an NPS answer 0-10"
    if kind == SurveyKind.CSAT and not 1 <= score <= 5:
        return f"score {score} is not a CSAT score 1-5"
    return None


TARGETS: dict[str, Target] = {
    target.name: target
    for target in (
        Target("account", Account),
        Target("contact", Contact),
        Target("subscription", Subscription, (_not_before("ended_on", "started_on"),)),
        Target("usage_event", UsageEvent),
        Target("ticket", SupportTicket, (_not_before("closed_at", "opened_at"),)),
        Target("survey_response", SurveyResponse, (_survey_score_in_range,)),
        Target("churn_event", ChurnEvent),
    )
}
