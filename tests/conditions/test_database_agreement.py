"""Every condition kind means the same on PostgreSQL, in hand-written SQL and on SQLite.

The benchmark cases pair a condition for each registered kind with a
hand-written PostgreSQL query for the same predicate. Here both run over
a small population, and then the same population and conditions run on
SQLite, the embedded demo's database, in a child process; the sweep of
the benchmark's triggers must record the same firings there too.
"""

import pytest
from django.db import connection

from bench.scale_cases import KIND_CASES, SWEEP_TRIGGERS
from conditions import EvaluationContext, compile_condition, parse_condition
from tests.conditions import sample_population
from tests.sqlite_child import run_on_sqlite
from triggers.evaluation import subjects_as_of
from triggers.models import Firing, Trigger
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

AS_OF = sample_population.AS_OF


def matches_by_case() -> dict[str, list[str]]:
    """Return the external ids of the contacts each case's condition matches."""
    context = EvaluationContext("contact", AS_OF)
    found = {}
    for case in KIND_CASES:
        condition = compile_condition(parse_condition(case.text, "contact"), context)
        contacts = subjects_as_of("contact", AS_OF).filter(condition)
        found[case.text] = sorted(contacts.values_list("external_id", flat=True))
    return found


def sweep_firings() -> list[list[str]]:
    """Sweep the benchmark's triggers once; return (trigger, contact, key) rows."""
    triggers = [
        Trigger.objects.create(
            slug=f"agreement-{number}",
            name=spec.text,
            subject_type="contact",
            condition=parse_condition(spec.text, "contact"),
            occurrence=spec.occurrence,
            is_active=True,
        )
        for number, spec in enumerate(SWEEP_TRIGGERS)
    ]
    report = run_sweep(AS_OF, triggers=triggers, queue_email=False)
    assert not report.failures, report.failures
    rows = Firing.objects.values_list(
        "trigger__slug", "contact__external_id", "occurrence_key"
    )
    return sorted([list(row) for row in rows])


# The child process: migrate an empty SQLite database, build, evaluate, print.
SQLITE_SCRIPT = """
import json
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from tests.conditions import sample_population
from tests.sqlite_child import run_on_sqlite
from tests.conditions.test_database_agreement import matches_by_case, sweep_firings
sample_population.build()
print(json.dumps({"matches": matches_by_case(), "firings": sweep_firings()}))
"""


@pytest.fixture(scope="module")
def sqlite_results(tmp_path_factory):
    return run_on_sqlite(SQLITE_SCRIPT, tmp_path_factory.mktemp("sqlite"))


def test_compiled_conditions_count_as_hand_written_sql():
    sample_population.build()
    parameters = {"as_of": AS_OF, "today": AS_OF.date()}
    matches = matches_by_case()
    nonempty = 0

    for case in KIND_CASES:
        with connection.cursor() as cursor:
            cursor.execute(case.sql, parameters)
            (expected,) = cursor.fetchone()
        assert len(matches[case.text]) == expected, case.text
        nonempty += bool(expected)

    # A population where most conditions match no contact would prove little.
    assert nonempty >= len(KIND_CASES) * 3 // 4


def test_sqlite_matches_what_postgresql_matches(sqlite_results):
    sample_population.build()

    postgresql = matches_by_case()

    for text, contacts in postgresql.items():
        assert sqlite_results["matches"][text] == contacts, text


def test_sqlite_sweep_records_the_same_firings(sqlite_results):
    sample_population.build()

    firings = sweep_firings()

    assert firings
    assert sqlite_results["firings"] == firings
