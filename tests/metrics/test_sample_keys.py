"""The database orders a sample by the same hash key as Python, for any id."""

from datetime import UTC, date, datetime, timedelta

import pytest

from courses.models import EnrollmentStatus
from customers.models import Contact
from metrics import cohorts
from metrics.changes import outcome_changes
from metrics.cohorts import Cohort, SubjectLevel, _untrained_sample, sample_key
from metrics.facts import refresh_facts
from metrics.models import TrainingFact
from metrics.scope import Scope
from tests.factories import make_account, make_contact
from tests.metrics.builders import at_noon, make_course, make_enrollment
from tests.sqlite_child import run_on_sqlite

pytestmark = pytest.mark.django_db

AS_OF = date(2024, 6, 30)
# Ids whose product with the hash multiplier passes 2**63, besides small ones.
IDS = [7, 2**31 - 1, 3_400_000_000, 2**32 + 7, 2**40 + 1, 2**40 + 5, 2**40 + 9]


def test_untrained_sample_of_large_ids():
    account = make_account(signup_date=date(2023, 1, 1))
    for pk in IDS:
        make_contact(account, id=pk, added_at=datetime(2023, 1, 1, tzinfo=UTC))
    assert Contact.objects.count() == len(IDS)

    for size in (1, 3, len(IDS) - 1):
        sample, eligible = _untrained_sample(
            Cohort(), Scope(), SubjectLevel.CONTACT, AS_OF, size
        )
        assert eligible == len(IDS)
        assert sample == sorted(IDS, key=sample_key)[:size]


def test_untrained_sample_of_large_ids_on_sqlite(tmp_path):
    script = f"""
import json
from datetime import UTC, date, datetime
import django
django.setup()
from django.core.management import call_command
call_command("migrate", verbosity=0)
from metrics.cohorts import Cohort, SubjectLevel, _untrained_sample
from metrics.scope import Scope
from tests.factories import make_account, make_contact
account = make_account(signup_date=date(2023, 1, 1))
for pk in {IDS!r}:
    make_contact(account, id=pk, added_at=datetime(2023, 1, 1, tzinfo=UTC))
sample, _ = _untrained_sample(
    Cohort(), Scope(), SubjectLevel.CONTACT, date(2024, 6, 30), 3
)
print(json.dumps(sample))
"""
    assert run_on_sqlite(script, tmp_path) == sorted(IDS, key=sample_key)[:3]


def test_stored_sample_keys_of_large_ids(monkeypatch):
    course = make_course((1,))
    account = make_account(signup_date=date(2023, 1, 1))
    trained_on = {}
    for index, pk in enumerate(IDS):
        contact = make_contact(
            account, id=pk, added_at=datetime(2023, 1, 1, tzinfo=UTC)
        )
        trained_on[pk] = date(2024, 3, 1) + timedelta(days=index)
        make_enrollment(
            contact,
            course,
            status=EnrollmentStatus.COMPLETED,
            completed_at=at_noon(trained_on[pk]),
        )
    refresh_facts()

    stored = TrainingFact.objects.filter(level="contact").values_list(
        "subject_id", "sample_key"
    )
    assert sorted(stored) == sorted((pk, sample_key(pk)[0]) for pk in IDS * 2)

    # The trained sample is the first rows by the stored key.
    monkeypatch.setattr(cohorts, "SAMPLE_LIMIT", 3)
    first = sorted(IDS, key=sample_key)[:3]
    report = outcome_changes(Cohort(course=course), as_of=AS_OF, precomputed=True)
    assert report.contacts.trained_days == sorted(trained_on[pk] for pk in first)
