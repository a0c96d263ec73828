"""Functions other apps use from customers.

They return the subjects that existed at an instant, compute health scores,
and record usage events, tickets, survey answers and CRM changes.

Write health scores only through compute_health_scores() and
record_health_score(), which keep Account.health_score equal to the score
of the latest scored day. The record_* and update_* functions send
customers.signals.data_changed, which re-evaluates the triggers that read
the changed data for that account after the write commits.
"""

from datetime import UTC, date, datetime
from typing import Any

from django.db.models import QuerySet

from customers.health import (
    HEALTH_WEIGHTS,
    WINDOW_DAYS,
    compute_health_scores,
    record_health_score,
)
from customers.ingestion import (
    record_survey_response,
    record_ticket,
    record_usage_event,
    update_account_attributes,
    update_contact_attributes,
)
from customers.models import Account, Contact
from customers.signals import send_data_changed

__all__ = [
    "HEALTH_WEIGHTS",
    "WINDOW_DAYS",
    "compute_health_scores",
    "record_health_score",
    "record_survey_response",
    "record_ticket",
    "record_usage_event",
    "send_data_changed",
    "subjects_as_of",
    "update_account_attributes",
    "update_contact_attributes",
    "utc_date",
    "utc_day_start",
]


def utc_date(instant: datetime) -> date:
    """Return the UTC calendar date of an aware instant."""
    _require_aware(instant)
    return instant.astimezone(UTC).date()


def utc_day_start(day: date) -> datetime:
    """Return 00:00 UTC of a date, the instant that a signup date is taken to mean."""
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def subjects_as_of(subject: str, as_of: datetime) -> QuerySet[Any]:
    """Return the contacts or accounts that existed at as_of.

    A contact exists from added_at; an account from 00:00 UTC of its
    signup_date, so an account that signs up today exists all day.
    """
    _require_aware(as_of)
    if subject == "contact":
        return Contact.objects.filter(added_at__lte=as_of)
    if subject == "account":
        return Account.objects.filter(signup_date__lte=utc_date(as_of))
    raise ValueError(f"subject {subject!r} is invalid; use 'contact' or 'account'")


def _require_aware(instant: datetime) -> None:
    if instant.tzinfo is None:
        raise ValueError(
            f"instant {instant.isoformat()} has no time zone; pass an aware datetime"
        )
