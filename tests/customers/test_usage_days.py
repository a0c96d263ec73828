"""The daily usage roll-up follows every write to the usage events."""

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from customers.models import UsageDay, UsageEvent
from customers.usage import rebuild_usage_days
from tests.factories import NOW, make_account, make_contact, make_event
from tests.sqlite_child import run_on_sqlite

pytestmark = pytest.mark.django_db


def counted_from_events() -> Counter:
    """Count the stored events per key in Python, the way the roll-up should."""
    return Counter(
        (
            event.account_id,
            event.contact_id,
            event.name,
            event.feature,
            event.occurred_at.astimezone(UTC).date(),
        )
        for event in UsageEvent.objects.all()
    )


def rolled_up() -> Counter:
    rows = UsageDay.objects.values_list(
        "account_id", "contact_id", "name", "feature", "day", "count"
    )
    return Counter({tuple(row[:5]): row[5] for row in rows})


def test_single_inserts_are_counted_per_utc_day():
    contact = make_contact()
    # 23:30 and 00:30 UTC fall on two days, whatever the site time zone.
    late = datetime(2024, 6, 14, 23, 30, tzinfo=UTC)
    make_event(contact, late)
    make_event(contact, late + timedelta(minutes=10))
    make_event(contact, late + timedelta(hours=1))
    make_event(contact, late, name="Signed In")
    make_event(contact, late, feature="reports")

    assert rolled_up() == counted_from_events()
    assert (
        UsageDay.objects.get(
            contact=contact, name="Feature Used", feature="", day=late.date()
        ).count
        == 2
    )


def test_bulk_insert_update_and_delete_keep_the_counts():
    account = make_account()
    first, second = make_contact(account), make_contact(account)
    events = UsageEvent.objects.bulk_create(
        UsageEvent(
            account=account,
            contact=(first, second)[index % 2],
            name=("Signed In", "Feature Used")[index % 3 == 0],
            feature="",
            occurred_at=NOW - timedelta(hours=5 * index),
        )
        for index in range(60)
    )
    assert rolled_up() == counted_from_events()

    # Moving events to another day, name and contact subtracts and adds.
    moved = UsageEvent.objects.filter(pk__in=[event.pk for event in events[:20]])
    moved.update(occurred_at=NOW - timedelta(days=40), name="Report Exported")
    UsageEvent.objects.filter(pk=events[30].pk).update(contact=first)
    assert rolled_up() == counted_from_events()

    UsageEvent.objects.filter(pk__in=[event.pk for event in events[40:]]).delete()
    assert rolled_up() == counted_from_events()
    assert not UsageDay.objects.filter(count__lte=0).exists()


def test_upsert_counts_inserted_and_updated_rows_once():
    contact = make_contact()
    original = make_event(contact, NOW, external_id="evt-1")
    again = UsageEvent(
        account=contact.account,
        contact=contact,
        external_id="evt-1",
        name="Signed In",
        occurred_at=NOW - timedelta(days=3),
    )
    fresh = UsageEvent(
        account=contact.account,
        contact=contact,
        external_id="evt-2",
        name="Signed In",
        occurred_at=NOW,
    )
    UsageEvent.objects.bulk_create(
        [again, fresh],
        update_conflicts=True,
        unique_fields=["external_id"],
        update_fields=["name", "occurred_at"],
    )

    assert UsageEvent.objects.filter(pk=original.pk, name="Signed In").exists()
    assert rolled_up() == counted_from_events()
    assert sum(rolled_up().values()) == 2


def test_events_without_a_contact_are_counted_per_account():
    account = make_account()
    contact = make_contact(account)
    for hours in (1, 2, 3):
        UsageEvent.objects.create(
            account=account, name="Sync Ran", occurred_at=NOW - timedelta(hours=hours)
        )
    make_event(contact, NOW)

    assert rolled_up() == counted_from_events()
    assert UsageDay.objects.get(account=account, contact=None).count == 3


def test_deleting_an_account_leaves_no_rows():
    contact = make_contact()
    make_event(contact, NOW)
    contact.account.delete()

    assert not UsageDay.objects.exists()


def test_rebuild_restores_rows_written_without_the_triggers():
    contact = make_contact()
    other = make_contact()
    for days in range(5):
        make_event(contact, NOW - timedelta(days=days))
        make_event(other, NOW - timedelta(days=days))
    expected = counted_from_events()
    with connection.cursor() as cursor:
        cursor.execute("DELETE FROM customers_usageday")

    rebuild_usage_days(account_ids=[contact.account_id])
    assert set(rolled_up()) == {key for key in expected if key[1] == contact.pk}

    rebuild_usage_days()
    assert rolled_up() == expected


def test_sqlite_triggers_follow_inserts_updates_and_deletes(tmp_path):
    """Migrate an SQLite database, the demo's, and write events through the ORM."""
    script = """
import json, os
from collections import Counter
from datetime import UTC, datetime, timedelta
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from customers.models import Account, Contact, UsageDay, UsageEvent
account = Account.objects.create(name="A", external_id="A1", signup_date="2024-01-01")
people = [
    Contact.objects.create(account=account, email=f"p{n}@example.com",
        external_id=f"C{n}", added_at=datetime(2024, 1, 1, tzinfo=UTC))
    for n in range(2)
]
start = datetime(2024, 6, 14, 22, 0, tzinfo=UTC)
events = UsageEvent.objects.bulk_create(
    UsageEvent(account=account, contact=None if n % 7 == 0 else people[n % 2],
        name="Signed In" if n % 3 else "Feature Used", feature="f" if n % 5 else "",
        occurred_at=start + timedelta(minutes=37 * n))
    for n in range(50)
)
UsageEvent.objects.filter(pk__in=[e.pk for e in events[:10]]).update(
    occurred_at=start - timedelta(days=2))
UsageEvent.objects.filter(pk__in=[e.pk for e in events[10:15]]).update(contact=None)
UsageEvent.objects.filter(pk__in=[e.pk for e in events[40:]]).delete()
def key(row, day):
    return json.dumps([row.account_id, row.contact_id, row.name, row.feature, day])
expected = Counter(
    key(e, e.occurred_at.astimezone(UTC).date().isoformat())
    for e in UsageEvent.objects.all()
)
actual = {key(d, d.day.isoformat()): d.count for d in UsageDay.objects.all()}
print(json.dumps({"expected": expected, "actual": actual}))
"""
    result = run_on_sqlite(script, tmp_path)

    assert result["actual"] == result["expected"]
    assert sum(result["expected"].values()) == 40
