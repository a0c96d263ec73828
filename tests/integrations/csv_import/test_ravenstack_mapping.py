"""The shipped RavenStack mapping on the public dataset, checked against pandas.

Every expected number is computed here from the CSV files with the rules the
mapping states, independently of the importer's code.
"""

from pathlib import Path

import pandas as pd
import pytest

from customers.models import (
    Account,
    ChurnEvent,
    Contact,
    Subscription,
    SupportTicket,
    SurveyResponse,
    UsageEvent,
)
from integrations.csv_import import MAPPINGS_DIR, load_mapping, run_import
from integrations.services import import_ravenstack

pytestmark = [pytest.mark.django_db, pytest.mark.real_data]


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(
        folder / f"ravenstack_{name}.csv", dtype=str, keep_default_na=False
    )


def expected_counts(folder: Path) -> dict[str, int]:
    accounts = read(folder, "accounts")
    subscriptions = read(folder, "subscriptions")
    usage = read(folder, "feature_usage")
    tickets = read(folder, "support_tickets")
    churn = read(folder, "churn_events")
    # A usage row needs a duration of at least 1 s; of the rows left, the
    # first with each usage_id counts, if its subscription exists.
    usage = usage[usage.usage_duration_secs.astype(int) >= 1]
    usage = usage.drop_duplicates("usage_id", keep="first")
    usage = usage[usage.subscription_id.isin(subscriptions.subscription_id)]
    return {
        "account": accounts.account_id.nunique(),
        "contact": int(accounts.seats.astype(int).sum()),
        "subscription": subscriptions.subscription_id.nunique(),
        "usage_event": len(usage),
        "ticket": tickets.ticket_id.nunique(),
        "survey_response": int((tickets.satisfaction_score != "").sum()),
        "churn_event": churn.churn_event_id.nunique(),
    }


def stored_counts() -> dict[str, int]:
    return {
        "account": Account.objects.count(),
        "contact": Contact.objects.count(),
        "subscription": Subscription.objects.count(),
        "usage_event": UsageEvent.objects.count(),
        "ticket": SupportTicket.objects.count(),
        "survey_response": SurveyResponse.objects.count(),
        "churn_event": ChurnEvent.objects.count(),
    }


def run(folder: Path, **options):
    mapping = load_mapping(MAPPINGS_DIR / "ravenstack.toml")
    return run_import(mapping, folder, **options)


def test_mapping_counts_match_pandas(data_dir):
    folder = data_dir / "ravenstack"
    expected = expected_counts(folder)

    report = run(folder)

    assert stored_counts() == expected
    assert {target.target: target.created for target in report.targets} == expected
    # The published files have 21 repeated usage ids and 2 zero durations.
    assert report.rejected_total == 23


def test_dry_run_counts_and_writes_nothing(data_dir):
    folder = data_dir / "ravenstack"

    report = run(folder, dry_run=True)

    assert {target.target: target.created for target in report.targets} == (
        expected_counts(folder)
    )
    assert set(stored_counts().values()) == {0}


def test_second_run_changes_nothing(data_dir):
    folder = data_dir / "ravenstack"
    run(folder)

    report = run(folder)

    assert sum(target.created + target.updated for target in report.targets) == 0
    assert {target.target: target.unchanged for target in report.targets} == (
        expected_counts(folder)
    )


def test_mapping_matches_the_ravenstack_importer(data_dir):
    """Over import_ravenstack's rows, the mapping changes only contacts' join dates.

    import_ravenstack adds contact n of an account with N seats
    (n - 1) * 90 // N days after signup. The mapping has no arithmetic and
    adds every contact at signup, so exactly the contacts with a positive
    offset differ.
    """
    folder = data_dir / "ravenstack"
    import_ravenstack(folder)
    seats = read(folder, "accounts").seats.astype(int)
    spread = sum(
        1 for count in seats for number in range(1, count + 1)
        if (number - 1) * 90 // count > 0
    )  # fmt: skip

    report = run(folder, dry_run=True)

    updated = {target.target: target.updated for target in report.targets}
    assert updated == {
        "account": 0, "contact": spread, "subscription": 0, "usage_event": 0,
        "ticket": 0, "survey_response": 0, "churn_event": 0,
    }  # fmt: skip
    assert sum(target.created for target in report.targets) == 0
    for change in report.targets[1].changes:
        assert set(change.fields) == {"added_at"}


def test_published_account_names_make_distinct_domains(data_dir):
    """No two published account names make one email domain, so no contact
    is rejected for a taken email."""
    folder = data_dir / "ravenstack"
    # The mapping's email domain: the name in lower case, "_" and " " as "-".
    names = read(folder, "accounts").account_name.str.lower()
    domains = names.str.replace("_", "-").str.replace(" ", "-")

    report = run(folder, dry_run=True)

    assert domains.nunique() == len(domains)
    contacts = next(item for item in report.targets if item.target == "contact")
    assert contacts.rejected == 0
