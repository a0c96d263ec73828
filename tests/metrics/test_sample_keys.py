"""The database orders a sample by the same hash key as Python, for any id."""

from datetime import UTC, date, datetime

import pytest

from customers.models import Contact
from metrics.cohorts import Cohort, SubjectLevel, _untrained_sample, sample_key
from metrics.scope import Scope
from tests.factories import make_account, make_contact
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
