"""Occurrence keys computed in SQL equal the keys written in Python."""

from datetime import date, timedelta

import pytest
from django.utils import timezone

from conditions import EvaluationContext
from tests.factories import NOW, make_account, make_contact, make_event, make_survey
from tests.triggers.factories import make_trigger
from triggers.evaluation import new_matching_subjects, subjects_as_of
from triggers.models import Firing, Occurrence
from triggers.occurrences import key_expression, key_text, key_text_expression
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

INACTIVE_10_DAYS = {"kind": "inactivity", "days": 10}
NPS_PROMOTER = {
    "kind": "survey_score",
    "survey": "nps",
    "days": 30,
    "min": 9,
    "max": 10,
}
EVERYONE = {"kind": "contact_count", "op": ">=", "value": 1}


def keys_both_ways(occurrence: str, tree: dict) -> list[tuple[str, str]]:
    """Return (Python key, SQL key) for every contact as of NOW."""
    context = EvaluationContext("contact", NOW)
    rows = subjects_as_of("contact", NOW).annotate(
        value=key_expression(occurrence, tree, context),
        text=key_text_expression(occurrence, tree, context),
    )
    return [(key_text(occurrence, row.value), row.text) for row in rows]


@pytest.mark.parametrize("zone", ["UTC", "Pacific/Auckland", "America/Los_Angeles"])
def test_inactivity_spell_keys_match(zone):
    # Events near midnight UTC fall on another local day east and west of UTC.
    make_contact()
    late = make_contact()
    make_event(late, NOW.replace(hour=23, minute=30) - timedelta(days=12))
    early = make_contact()
    make_event(early, NOW.replace(hour=0, minute=30) - timedelta(days=20))

    with timezone.override(zone):
        pairs = keys_both_ways(Occurrence.INACTIVITY_SPELL, INACTIVE_10_DAYS)

    assert len(pairs) == 3
    for python_key, sql_key in pairs:
        assert sql_key == python_key
    assert ("never", "never") in pairs


def test_renewal_date_keys_match():
    make_contact(make_account(renewal_date=date(2024, 8, 1)))
    make_contact(make_account(renewal_date=None))

    pairs = keys_both_ways(Occurrence.RENEWAL_DATE, EVERYONE)

    assert sorted(sql for _, sql in pairs) == ["2024-08-01", "none"]
    for python_key, sql_key in pairs:
        assert sql_key == python_key


def test_survey_response_keys_match():
    promoter = make_contact()
    response = make_survey(promoter, NOW - timedelta(days=2), 10)
    make_survey(make_contact(), NOW - timedelta(days=2), 3)

    pairs = keys_both_ways(Occurrence.SURVEY_RESPONSE, NPS_PROMOTER)

    assert sorted(sql for _, sql in pairs) == ["none", f"response:{response.pk}"]
    for python_key, sql_key in pairs:
        assert sql_key == python_key


def test_history_policies_have_no_sql_key():
    context = EvaluationContext("contact", NOW)

    for occurrence in (Occurrence.EVERY_N_DAYS, Occurrence.EACH_NEW_MATCH):
        assert key_text_expression(occurrence, EVERYONE, context) is None


def test_spell_trigger_fetches_only_new_subjects():
    quiet = make_contact()
    make_event(quiet, NOW - timedelta(days=15))
    trigger = make_trigger(INACTIVE_10_DAYS, occurrence="inactivity_spell")
    run_sweep(NOW, triggers=[trigger])
    context = EvaluationContext("contact", NOW + timedelta(days=1))

    matched, new = new_matching_subjects(trigger, context)

    # Still quiet a day later: the same spell, so nothing new to fire.
    assert matched == 1
    assert new == []
    assert Firing.objects.filter(trigger=trigger, contact=quiet).count() == 1

    make_event(quiet, NOW + timedelta(days=2))
    later = EvaluationContext("contact", NOW + timedelta(days=13))
    matched, new = new_matching_subjects(trigger, later)

    spell = timezone.localdate(NOW + timedelta(days=2)).isoformat()
    assert new == [(quiet.pk, quiet.account_id, spell)]
