"""Compiled forms chosen for speed keep the meaning of the condition.

Counts compared with 0 or 1 compile to EXISTS, kinds over the account are
evaluated once per account for contacts, and day boundaries are compared
on the timestamp instead of its date. Each test checks the edges that the
rewritten form could get wrong.
"""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.test import override_settings
from django.utils import timezone

from conditions import EvaluationContext, compile_condition, parse_condition
from customers.models import Contact
from lifecycle.models import Stage, StageChange
from tests.factories import NOW, make_account, make_contact, make_event, make_ticket

pytestmark = pytest.mark.django_db


def contacts_matching(text, as_of=NOW):
    tree = parse_condition(text, "contact")
    condition = compile_condition(tree, EvaluationContext("contact", as_of))
    return set(Contact.objects.filter(condition).values_list("pk", flat=True))


def test_count_zero_and_at_least_one():
    quiet = make_contact()
    busy = make_contact()
    make_event(busy, NOW - timedelta(days=1), name="Signed In")
    other_name = make_contact()
    make_event(other_name, NOW - timedelta(days=1), name="Feature Used")
    stale = make_contact()
    make_event(stale, NOW - timedelta(days=10), name="Signed In")

    none = {quiet.pk, other_name.pk, stale.pk}
    window = 'count(event "Signed In", last 10 days)'
    assert contacts_matching(f"{window} == 0") == none
    assert contacts_matching(f"{window} < 1") == none
    assert contacts_matching(f"{window} <= 0") == none
    assert contacts_matching(f"{window} >= 1") == {busy.pk}
    assert contacts_matching(f"{window} > 0") == {busy.pk}
    assert contacts_matching(f"not {window} == 0") == {busy.pk}


def test_count_of_two_still_counts():
    twice = make_contact()
    once = make_contact()
    for days_ago in (1, 2):
        make_event(twice, NOW - timedelta(days=days_ago))
    make_event(once, NOW - timedelta(days=1))

    assert contacts_matching("count(event, last 7 days) >= 2") == {twice.pk}
    assert contacts_matching("count(event, last 7 days) == 1") == {once.pk}
    assert contacts_matching("count(event, last 7 days) < 2") == {once.pk}


def test_account_kinds_reach_every_contact_of_the_account():
    troubled = make_account()
    first, second = make_contact(troubled), make_contact(troubled)
    calm = make_account()
    calm_contact = make_contact(calm)
    make_ticket(troubled, NOW - timedelta(days=2), priority="urgent")

    text = 'tickets(last 30 days, priority "urgent") >= 1'
    assert contacts_matching(text) == {first.pk, second.pk}
    assert contacts_matching(f"not {text}") == {calm_contact.pk}
    assert contacts_matching("contact_count >= 2") == {first.pk, second.pk}
    assert contacts_matching("contact_count == 1") == {calm_contact.pk}


def test_account_kind_combined_with_a_contact_field():
    account = make_account()
    admin = make_contact(account, role="admin")
    make_contact(account, role="analyst")
    make_contact(make_account(), role="admin")

    text = 'contact.role == "admin" and contact_count >= 2'
    assert contacts_matching(text) == {admin.pk}


@override_settings(TIME_ZONE="Europe/Paris")
def test_first_usage_days_in_the_site_time_zone():
    # Kickoff on 1 June; 7 days of it end at midnight between 8 and 9 June
    # in Paris, which is 22:00 UTC on 8 June (summer time, UTC+2).
    account = make_account(kickoff_date=date(2024, 6, 1))
    contact = make_contact(account)
    text = "first_usage(within 7 days of kickoff)"
    as_of = datetime(2024, 6, 20, tzinfo=UTC)

    event = make_event(contact, datetime(2024, 6, 8, 22, 0, tzinfo=UTC))
    assert contacts_matching(text, as_of) == set()

    event.occurred_at = datetime(2024, 6, 8, 21, 59, 59, tzinfo=UTC)
    event.save()
    assert contacts_matching(text, as_of) == {contact.pk}

    # The window opens at midnight in Paris, 22:00 UTC on 31 May.
    event.occurred_at = datetime(2024, 5, 31, 21, 59, 59, tzinfo=UTC)
    event.save()
    assert contacts_matching(text, as_of) == set()
    event.occurred_at = datetime(2024, 5, 31, 22, 0, tzinfo=UTC)
    event.save()
    assert contacts_matching(text, as_of) == {contact.pk}


def test_first_usage_not_seen_before_as_of():
    account = make_account(kickoff_date=date(2024, 6, 10))
    contact = make_contact(account)
    make_event(contact, datetime(2024, 6, 16, tzinfo=UTC))

    assert contacts_matching("first_usage(within 7 days of kickoff)") == set()
    later = datetime(2024, 6, 20, tzinfo=UTC)
    assert contacts_matching("first_usage(within 7 days of kickoff)", later) == {
        contact.pk
    }


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Entered on 5 June, today is 15 June: 10 days in the stage.
        ("days_in_stage >= 10", True),
        ("days_in_stage > 10", False),
        ("days_in_stage == 10", True),
        ("days_in_stage != 10", False),
        ("days_in_stage <= 10", True),
        ("days_in_stage < 10", False),
        ("days_in_stage == 9", False),
        ("days_in_stage != 11", True),
        ('days_in_stage("adoption") >= 10', True),
        ('days_in_stage("onboarding") >= 10', False),
        ('days_in_stage("adoption") != 9', True),
        ('not days_in_stage("adoption") > 10', True),
        ('not days_in_stage("onboarding") < 100', True),
    ],
)
def test_days_in_stage_boundaries(text, expected):
    account = make_account()
    contact = make_contact(account)
    # The last second of 5 June and the first of 6 June bound the day.
    StageChange.objects.create(
        account=account,
        to_stage=Stage.objects.get(slug="adoption"),
        changed_at=datetime(2024, 6, 5, 23, 59, 59, tzinfo=UTC),
        source="criteria",
    )

    assert (contact.pk in contacts_matching(text)) is expected


@override_settings(TIME_ZONE="America/New_York")
def test_days_in_stage_site_time_zone():
    account = make_account()
    contact = make_contact(account)
    # 03:00 UTC on 6 June is 23:00 on 5 June in New York.
    StageChange.objects.create(
        account=account,
        to_stage=Stage.objects.get(slug="adoption"),
        changed_at=datetime(2024, 6, 6, 3, 0, tzinfo=UTC),
        source="criteria",
    )
    as_of = datetime(2024, 6, 15, 16, 0, tzinfo=UTC)
    assert timezone.localdate(as_of) == date(2024, 6, 15)

    assert contacts_matching("days_in_stage == 10", as_of) == {contact.pk}
