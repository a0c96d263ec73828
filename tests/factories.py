"""Small factories for the customer record; each returns a saved row."""

import itertools
from datetime import UTC, date, datetime, timedelta
from typing import Any

from customers.models import (
    Account,
    Contact,
    HealthScore,
    SupportTicket,
    SurveyResponse,
    UsageEvent,
)

_sequence = itertools.count(1)

# A fixed instant that tests evaluate against, far from any date boundary.
NOW = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


def make_account(**fields: Any) -> Account:
    number = next(_sequence)
    defaults: dict[str, Any] = {
        "external_id": f"A-test{number}",
        "name": f"Account {number}",
        "signup_date": date(2024, 1, 1),
    }
    defaults.update(fields)
    return Account.objects.create(**defaults)


def make_contact(account: Account | None = None, **fields: Any) -> Contact:
    number = next(_sequence)
    defaults: dict[str, Any] = {
        "account": account or make_account(),
        "external_id": f"C-test{number}",
        "email": f"learner{number}@example.com",
        "first_name": f"Learner{number}",
        "last_name": "Test",
        "added_at": NOW - timedelta(days=365),
    }
    defaults.update(fields)
    return Contact.objects.create(**defaults)


def make_event(contact: Contact, occurred_at: datetime, **fields: Any) -> UsageEvent:
    defaults: dict[str, Any] = {
        "account": contact.account,
        "contact": contact,
        "name": "Feature Used",
        "occurred_at": occurred_at,
    }
    defaults.update(fields)
    return UsageEvent.objects.create(**defaults)


def make_health(account: Account, scored_on: date, score: int) -> HealthScore:
    return HealthScore.objects.create(account=account, scored_on=scored_on, score=score)


def make_survey(
    contact: Contact, submitted_at: datetime, score: int, kind: str = "nps"
) -> SurveyResponse:
    return SurveyResponse.objects.create(
        account=contact.account,
        contact=contact,
        kind=kind,
        score=score,
        submitted_at=submitted_at,
    )


def make_ticket(account: Account, opened_at: datetime, **fields: Any) -> SupportTicket:
    defaults: dict[str, Any] = {
        "external_id": f"T-test{next(_sequence)}",
        "priority": "medium",
    }
    defaults.update(fields)
    return SupportTicket.objects.create(
        account=account, opened_at=opened_at, **defaults
    )
