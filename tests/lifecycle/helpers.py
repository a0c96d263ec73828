"""Accounts in known lifecycle situations, built from the shared factories."""

from datetime import UTC, date, datetime, timedelta

from customers.models import Account
from tests.factories import NOW, make_account, make_contact, make_event

KICKOFF = date(2024, 6, 1)


def at(year: int, month: int, day: int, hour: int = 12) -> datetime:
    return datetime(year, month, day, hour, tzinfo=UTC)


def onboarded_account(**fields) -> Account:
    """An account that meets both onboarding criteria at NOW.

    Of adoption's criteria it meets only "active users stable or growing".
    """
    account = make_account(kickoff_date=KICKOFF, **fields)
    contacts = [make_contact(account) for _ in range(3)]
    make_event(contacts[0], at(2024, 6, 3, 10))
    return account


def adopted_account(**fields) -> Account:
    """An account that meets the onboarding and adoption criteria at NOW."""
    account = onboarded_account(**fields)
    contact = account.contacts.earliest("pk")
    for feature in ("reports", "alerts", "exports"):
        make_event(contact, NOW - timedelta(days=1), feature=feature)
    return account
