"""The per-account daily roll-up equals the usage events and tickets it counts."""

from collections import Counter
from datetime import UTC, date, datetime, timedelta

import pytest
from django.core.cache import cache

from customers.models import SupportTicket, UsageEvent
from metrics.models import AccountDay
from metrics.report_cache import cached_report, clear_cached_reports
from metrics.rollups import rebuild_account_days
from tests.factories import make_account, make_contact, make_event, make_ticket
from tests.sqlite_child import run_on_sqlite

pytestmark = pytest.mark.django_db

# 23:30 UTC, so an instant an hour later is on the next UTC day.
LATE = datetime(2024, 5, 10, 23, 30, tzinfo=UTC)


def stored_days() -> dict[tuple[int, date], tuple[int, int]]:
    return {
        (row.account_id, row.day): (row.usage_events, row.tickets)
        for row in AccountDay.objects.all()
    }


def counted_days() -> dict[tuple[int, date], tuple[int, int]]:
    """Count events and tickets per account and UTC day in Python."""
    usage = Counter(
        (account, instant.astimezone(UTC).date())
        for account, instant in UsageEvent.objects.values_list(
            "account_id", "occurred_at"
        )
    )
    tickets = Counter(
        (account, instant.astimezone(UTC).date())
        for account, instant in SupportTicket.objects.values_list(
            "account_id", "opened_at"
        )
    )
    return {key: (usage[key], tickets[key]) for key in usage.keys() | tickets.keys()}


def test_inserts_counted_per_utc_day():
    contact = make_contact()
    make_event(contact, LATE)
    make_event(contact, LATE + timedelta(minutes=10))
    make_event(contact, LATE + timedelta(hours=1))
    make_ticket(contact.account, LATE)

    assert stored_days() == {
        (contact.account_id, date(2024, 5, 10)): (2, 1),
        (contact.account_id, date(2024, 5, 11)): (1, 0),
    }


def test_bulk_insert_counted_once():
    contact = make_contact()
    UsageEvent.objects.bulk_create(
        UsageEvent(
            account=contact.account,
            contact=contact,
            name="Signed In",
            occurred_at=LATE - timedelta(hours=hours),
        )
        for hours in range(30)
    )

    assert stored_days() == counted_days()
    assert sum(usage for usage, _ in stored_days().values()) == 30


def test_moved_ticket_and_event_change_days():
    contact = make_contact()
    other = make_account()
    event = make_event(contact, LATE)
    ticket = make_ticket(contact.account, LATE)

    ticket.opened_at = LATE + timedelta(days=3)
    ticket.save()
    UsageEvent.objects.filter(pk=event.pk).update(account=other)

    assert stored_days() == counted_days()
    assert stored_days() == {
        (other.pk, date(2024, 5, 10)): (1, 0),
        (contact.account_id, date(2024, 5, 13)): (0, 1),
    }


def test_deletes_remove_emptied_days():
    contact = make_contact()
    make_event(contact, LATE)
    ticket = make_ticket(contact.account, LATE)
    make_ticket(contact.account, LATE + timedelta(days=1))

    UsageEvent.objects.all().delete()
    ticket.delete()

    assert stored_days() == {(contact.account_id, date(2024, 5, 11)): (0, 1)}


def test_account_delete_leaves_no_rows():
    contact = make_contact()
    make_event(contact, LATE)
    make_ticket(contact.account, LATE)

    contact.account.delete()

    assert not AccountDay.objects.exists()


def test_rebuild_matches_triggers():
    contact = make_contact()
    for hours in range(0, 90, 7):
        make_event(contact, LATE - timedelta(hours=hours))
    make_ticket(contact.account, LATE)
    kept = stored_days()
    AccountDay.objects.all().delete()

    rows = rebuild_account_days()

    assert rows == len(kept)
    assert stored_days() == kept == counted_days()


def test_rollup_on_sqlite(tmp_path):
    """Run the embedded demo's row triggers in a child process on SQLite."""
    script = """
import json
from datetime import UTC, datetime, timedelta
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from customers.models import Account, Contact, SupportTicket, UsageEvent
from metrics.models import AccountDay
late = datetime(2024, 5, 10, 23, 30, tzinfo=UTC)
account = Account.objects.create(external_id="A1", name="A", signup_date=late.date())
contact = Contact.objects.create(
    account=account, external_id="C1", email="c@example.com", added_at=late
)
for minutes in (0, 90):
    UsageEvent.objects.create(
        account=account, contact=contact, name="Signed In",
        occurred_at=late + timedelta(minutes=minutes),
    )
ticket = SupportTicket.objects.create(
    account=account, external_id="T1", priority="low", opened_at=late
)
ticket.opened_at = late + timedelta(days=2)
ticket.save()
UsageEvent.objects.filter(occurred_at=late).delete()
rows = AccountDay.objects.order_by("day")
print(json.dumps([[str(row.day), row.usage_events, row.tickets] for row in rows]))
"""

    rows = run_on_sqlite(script, tmp_path)

    assert rows == [["2024-05-11", 1, 0], ["2024-05-12", 0, 1]]


def test_cached_report_reused_until_cleared(settings):
    settings.NUDGEPATH_DASHBOARD_CACHE_SECONDS = 60
    cache.clear()
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    first = cached_report("test", ("a", date(2024, 1, 1)), compute)
    again = cached_report("test", ("a", date(2024, 1, 1)), compute)
    other = cached_report("test", ("b", date(2024, 1, 1)), compute)
    clear_cached_reports()
    after_clear = cached_report("test", ("a", date(2024, 1, 1)), compute)

    assert (first, again, other, after_clear) == (1, 1, 2, 3)


def test_cache_off_computes_each_time(settings):
    settings.NUDGEPATH_DASHBOARD_CACHE_SECONDS = 0
    calls = []

    def compute():
        calls.append(1)
        return len(calls)

    assert cached_report("test", ("a",), compute) == 1
    assert cached_report("test", ("a",), compute) == 2
