"""The RavenStack importer: bad rows reported, good rows kept, re-runs, crashes."""

from datetime import UTC, date, datetime
from decimal import Decimal
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from customers.models import (
    Account,
    ChurnEvent,
    Contact,
    Subscription,
    SupportTicket,
    SurveyResponse,
    UsageEvent,
)
from integrations import bulk
from integrations.services import import_ravenstack

pytestmark = pytest.mark.django_db

USAGE = "ravenstack_feature_usage.csv"


def issue_lines(issues, file):
    return {issue.line: issue.reason for issue in issues if issue.file == file}


def test_bad_rows_reported_with_line(ravenstack_folder):
    report = import_ravenstack(ravenstack_folder)

    assert set(issue_lines(report.errors, "ravenstack_subscriptions.csv")) == {6}
    usage_errors = issue_lines(report.errors, USAGE)
    assert set(usage_errors) == {4, 5, 6, 7}
    assert "duplicate usage_id U-000001" in usage_errors[4]
    assert "line 2" in usage_errors[4]
    assert "usage_duration_secs is 0" in usage_errors[5]
    assert "S-000005" in usage_errors[6]
    assert "'2023-13-01' is not a date" in usage_errors[7]
    ticket_errors = issue_lines(report.errors, "ravenstack_support_tickets.csv")
    assert set(ticket_errors) == {4, 6}
    assert "before submitted_at" in ticket_errors[4]
    assert "'critical'" in ticket_errors[6]
    churn_errors = issue_lines(report.errors, "ravenstack_churn_events.csv")
    assert churn_errors == {5: "account_id is blank"}


def test_good_rows_kept_beside_bad(ravenstack_folder):
    report = import_ravenstack(ravenstack_folder)

    assert Account.objects.count() == 3
    assert Subscription.objects.count() == 4
    assert set(UsageEvent.objects.values_list("external_id", flat=True)) == {
        "U-000001",
        "U-000002",
        "U-000006",
    }
    assert SupportTicket.objects.count() == 3
    assert ChurnEvent.objects.count() == 3
    usage_counts = report.files[USAGE]
    assert (usage_counts.read, usage_counts.imported, usage_counts.skipped) == (7, 3, 4)


def test_duplicate_usage_keeps_first_row(ravenstack_folder):
    import_ravenstack(ravenstack_folder)

    event = UsageEvent.objects.get(external_id="U-000001")
    assert event.feature == "feature_1"
    assert event.account.external_id == "A-000001"


def test_usage_event_fields(ravenstack_folder):
    import_ravenstack(ravenstack_folder)

    event = UsageEvent.objects.get(external_id="U-000002")
    assert event.name == "Feature Used"
    assert event.occurred_at == datetime(2024, 8, 1, 12, tzinfo=UTC)
    assert event.quantity == 1
    assert event.duration_seconds == 60
    assert event.error_count == 1
    assert event.properties == {"is_beta_feature": True}
    assert event.contact is not None
    assert event.contact.account_id == event.account_id


def test_account_terms_from_latest_subscription(ravenstack_folder):
    import_ravenstack(ravenstack_folder)

    acme = Account.objects.get(external_id="A-000001")
    # The open subscription started 2024-07-01 renews a year later.
    assert acme.renewal_date == date(2025, 7, 1)
    assert acme.mrr == Decimal(150)
    assert acme.arr == Decimal(1800)
    assert acme.kickoff_date == acme.signup_date == date(2024, 1, 10)
    # A subscription that started on February 29 renews on February 28.
    assert Account.objects.get(external_id="A-000002").renewal_date == date(2025, 2, 28)
    # A subscription with an end date renews then.
    assert Account.objects.get(external_id="A-000003").renewal_date == date(2024, 5, 1)


def test_churned_on_needs_flag_and_event(ravenstack_folder):
    report = import_ravenstack(ravenstack_folder)

    assert Account.objects.get(external_id="A-000001").churned_on == date(2024, 11, 15)
    # Flagged, but no churn event: imported with a warning.
    assert Account.objects.get(external_id="A-000002").churned_on is None
    assert set(issue_lines(report.warnings, "ravenstack_accounts.csv")) == {3}
    # A churn event without the flag leaves the account active.
    assert Account.objects.get(external_id="A-000003").churned_on is None


def test_contacts_generated_from_seats(ravenstack_folder):
    import_ravenstack(ravenstack_folder)

    acme = Contact.objects.filter(account__external_id="A-000001").order_by(
        "external_id"
    )
    assert [contact.external_id for contact in acme] == [
        "A-000001-C001",
        "A-000001-C002",
        "A-000001-C003",
    ]
    assert [contact.email for contact in acme] == [
        "user001@acme-learning.example",
        "user002@acme-learning.example",
        "user003@acme-learning.example",
    ]
    assert [contact.is_champion for contact in acme] == [True, False, False]
    # Three seats join on days 0, 30 and 60 after signup.
    assert [contact.added_at.date() for contact in acme] == [
        date(2024, 1, 10),
        date(2024, 2, 9),
        date(2024, 3, 10),
    ]
    assert Contact.objects.count() == 3 + 2 + 1


def test_contacts_same_on_every_import(ravenstack_folder):
    import_ravenstack(ravenstack_folder)
    first = list(
        Contact.objects.order_by("external_id").values_list(
            "email", "first_name", "last_name", "role"
        )
    )
    usage_contacts = dict(
        UsageEvent.objects.values_list("external_id", "contact__external_id")
    )
    Contact.objects.all().delete()

    import_ravenstack(ravenstack_folder)

    second = list(
        Contact.objects.order_by("external_id").values_list(
            "email", "first_name", "last_name", "role"
        )
    )
    assert first == second
    assert (
        dict(UsageEvent.objects.values_list("external_id", "contact__external_id"))
        == usage_contacts
    )


def test_scored_ticket_gets_csat_response(ravenstack_folder):
    import_ravenstack(ravenstack_folder)

    ticket = SupportTicket.objects.get(external_id="T-000001")
    assert ticket.opened_at == datetime(2024, 3, 1, tzinfo=UTC)
    assert ticket.closed_at == datetime(2024, 3, 2, 3, tzinfo=UTC)
    assert ticket.satisfaction_score == 4
    response = SurveyResponse.objects.get()
    assert response.external_id == "T-000001-csat"
    assert response.kind == "csat"
    assert response.score == 4
    assert response.submitted_at == ticket.closed_at
    assert response.contact_id == ticket.contact_id
    assert SupportTicket.objects.get(external_id="T-000002").satisfaction_score is None


def test_reimport_adds_no_rows(ravenstack_folder):
    import_ravenstack(ravenstack_folder)
    models = (
        Account,
        Contact,
        Subscription,
        UsageEvent,
        SupportTicket,
        SurveyResponse,
        ChurnEvent,
    )
    before = {
        model: set(model.objects.values_list("pk", flat=True)) for model in models
    }

    report = import_ravenstack(ravenstack_folder)

    for model in models:
        assert set(model.objects.values_list("pk", flat=True)) == before[model], model
    assert len(report.errors) == 8


def test_reimport_updates_changed_values(ravenstack_folder):
    import_ravenstack(ravenstack_folder)
    path = ravenstack_folder / "ravenstack_support_tickets.csv"
    path.write_text(
        path.read_text().replace(
            "T-000001,A-000001,2024-03-01,2024-03-02 3:00,27,high,74,4",
            "T-000001,A-000001,2024-03-01,2024-03-02 3:00,27,low,74,",
        )
    )

    import_ravenstack(ravenstack_folder)

    ticket = SupportTicket.objects.get(external_id="T-000001")
    assert ticket.priority == "low"
    assert ticket.satisfaction_score is None
    assert not SurveyResponse.objects.exists()


def test_crash_mid_file_writes_nothing(ravenstack_folder, monkeypatch):
    monkeypatch.setattr(bulk, "BATCH_SIZE", 1)
    real_bulk_create = UsageEvent._default_manager.bulk_create
    batches = []

    def fail_on_third_batch(objs, **kwargs):
        batches.append(len(objs))
        if len(batches) == 3:
            raise RuntimeError("database went away")
        return real_bulk_create(objs, **kwargs)

    monkeypatch.setattr(UsageEvent._default_manager, "bulk_create", fail_on_third_batch)

    with pytest.raises(RuntimeError):
        import_ravenstack(ravenstack_folder)

    assert len(batches) == 3
    assert UsageEvent.objects.count() == 0
    # The files before it were committed in their own transactions.
    assert Account.objects.count() == 3
    assert Subscription.objects.count() == 4
    assert not SupportTicket.objects.exists()


def test_command_prints_errors_as_file_line(ravenstack_folder):
    out = StringIO()

    call_command(
        "import_ravenstack", str(ravenstack_folder), "--no-progress", stdout=out
    )

    summary = out.getvalue()
    assert "ravenstack_feature_usage.csv:5: usage_duration_secs is 0" in summary
    assert "ravenstack_support_tickets.csv:4: closed_at" in summary
    assert "Errors (8 rows skipped):" in summary


def test_command_missing_folder_names_path(tmp_path):
    missing = tmp_path / "nowhere"

    with pytest.raises(CommandError, match="nowhere not found") as raised:
        call_command("import_ravenstack", str(missing))

    assert "ravenstack_*.csv" in str(raised.value)


def test_command_missing_file_names_file(ravenstack_folder):
    (ravenstack_folder / "ravenstack_churn_events.csv").unlink()

    with pytest.raises(CommandError, match=r"ravenstack_churn_events\.csv not found"):
        call_command("import_ravenstack", str(ravenstack_folder))

    assert not Account.objects.exists()


def test_missing_column_stops_before_writing(ravenstack_folder):
    path = ravenstack_folder / "ravenstack_feature_usage.csv"
    path.write_text(path.read_text().replace("usage_duration_secs", "duration"))

    with pytest.raises(CommandError, match="lacks the columns usage_duration_secs"):
        call_command("import_ravenstack", str(ravenstack_folder))

    assert not Account.objects.exists()


def test_fewer_seats_reassign_usage(ravenstack_folder):
    import_ravenstack(ravenstack_folder)
    path = ravenstack_folder / "ravenstack_accounts.csv"
    path.write_text(path.read_text().replace("Pro,3,FALSE,TRUE", "Pro,1,FALSE,TRUE"))

    import_ravenstack(ravenstack_folder)

    acme_usage = UsageEvent.objects.filter(account__external_id="A-000001")
    assert set(acme_usage.values_list("contact__external_id", flat=True)) == {
        "A-000001-C001"
    }
    # Contacts of removed seats stay, because people are never deleted by an import.
    assert Contact.objects.filter(account__external_id="A-000001").count() == 3


def test_progress_bar_on_stderr(ravenstack_folder, monkeypatch, capsys):
    monkeypatch.setattr(bulk, "LONG_FILE_ROWS", 1)

    import_ravenstack(ravenstack_folder, progress=True)

    captured = capsys.readouterr()
    assert "ravenstack_feature_usage.csv" in captured.err
    assert captured.out == ""
