"""Running mappings on small CSV folders: counts, dry runs, errors, idempotency."""

import csv
import json
from datetime import UTC, datetime
from decimal import Decimal
from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.db import DataError

from customers.models import (
    Account,
    Contact,
    SupportTicket,
    SurveyResponse,
    UsageEvent,
)
from integrations.csv_import import (
    MAPPINGS_DIR,
    CsvImportError,
    importer,
    load_mapping,
    run_import,
)
from tests.factories import make_account, make_contact
from tests.integrations.csv_import.helpers import write_csv

pytestmark = pytest.mark.django_db

MAPPING = """
format = 1
name = "Small"

[[targets]]
target = "account"
file = "accounts.csv"

[targets.fields]
external_id = "id"
name = { column = "company" }
plan = { column = "tier", type = "choice", map = { "basic" = "Basic", "pro" = "Pro" } }
seats = { column = "seats", type = "int" }
mrr = { column = "mrr", type = "decimal", required = false }
signup_date = { column = "signup", type = "date", format = "%d/%m/%Y" }
"properties.segment" = { column = "segment", required = false }

[[targets]]
target = "contact"
file = "contacts.csv"

[targets.fields]
external_id = "id"
account = { column = "account_id", type = "ref" }
email = { column = "email", case = "lower" }
first_name = "first"
last_name = { column = "last", required = false }
added_at = { column = "added", type = "datetime", format = "%Y-%m-%d %H:%M", \
timezone = "Europe/Berlin" }

[[targets]]
target = "usage_event"
file = "usage*.csv"

[targets.fields]
external_id = "id"
account = { column = "contact_id", type = "ref", through = "contact" }
contact = { column = "contact_id", type = "ref" }
name = "event"
occurred_at = { column = "at", type = "datetime" }
quantity = { column = "count", type = "int", default = "1" }

[[targets]]
target = "ticket"
file = "tickets.csv"

[targets.fields]
external_id = "id"
account = { column = "account_id", type = "ref" }
opened_at = { column = "opened", type = "datetime" }
closed_at = { column = "closed", type = "datetime", required = false }
priority = { column = "priority", type = "choice", case = "lower" }

[[targets]]
target = "survey_response"
file = "tickets.csv"
only_if_present = ["csat"]

[targets.fields]
external_id = { template = "{id}-csat" }
account = { column = "account_id", type = "ref" }
kind = { value = "csat", type = "choice" }
score = { column = "csat", type = "int" }
submitted_at = { columns = ["closed", "opened"], type = "datetime" }
"""

ACCOUNTS = [
    "id,company,tier,seats,mrr,signup,segment",
    "A-1,Acme,pro,3,147.50,10/01/2024,smb",
    "A-2,Beta,basic,2,,29/02/2024,",
]
CONTACTS = [
    "id,account_id,email,first,last,added",
    "C-1,A-1,Ada@Acme.example,Ada,Lovelace,2024-01-10 09:00",
    "C-2,A-2,ben@beta.example,Ben,,2024-03-01 12:30",
]
USAGE = [
    "id,contact_id,event,at,count",
    "U-1,C-1,Report Run,2024-02-01T10:00:00+00:00,3",
    "U-2,C-2,Signed In,2024-03-02T08:00:00+00:00,",
]
TICKETS = [
    "id,account_id,opened,closed,priority,csat",
    "T-1,A-1,2024-03-01T00:00:00+00:00,2024-03-02T03:00:00+00:00,High,4",
    "T-2,A-2,2024-03-05T00:00:00+00:00,,Low,",
]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    write_csv(data, "accounts.csv", ACCOUNTS)
    write_csv(data, "contacts.csv", CONTACTS)
    write_csv(data, "usage_2024.csv", USAGE)
    write_csv(data, "tickets.csv", TICKETS)
    (tmp_path / "small.toml").write_text(MAPPING)
    return data


def mapping_path(folder: Path) -> Path:
    return folder.parent / "small.toml"


def import_folder(folder: Path, **options):
    return run_import(load_mapping(mapping_path(folder)), folder, **options)


def counts(report) -> dict[str, tuple[int, int, int, int]]:
    return {
        target.target: (
            target.created,
            target.updated,
            target.unchanged,
            target.rejected,
        )
        for target in report.targets
    }


def stored_counts() -> tuple[int, int, int, int, int]:
    return (
        Account.objects.count(),
        Contact.objects.count(),
        UsageEvent.objects.count(),
        SupportTicket.objects.count(),
        SurveyResponse.objects.count(),
    )


def test_import_writes_every_target(folder):
    report = import_folder(folder)

    assert report.committed
    assert counts(report) == {
        "account": (2, 0, 0, 0),
        "contact": (2, 0, 0, 0),
        "usage_event": (2, 0, 0, 0),
        "ticket": (2, 0, 0, 0),
        "survey_response": (1, 0, 0, 0),
    }
    assert report.targets[4].filtered == 1
    acme = Account.objects.get(external_id="A-1")
    assert acme.plan == "Pro"
    assert acme.mrr == Decimal("147.50")
    assert acme.properties == {"segment": "smb"}
    beta = Account.objects.get(external_id="A-2")
    assert beta.mrr == 0
    assert beta.properties == {}
    assert str(beta.signup_date) == "2024-02-29"
    ada = Contact.objects.get(external_id="C-1")
    assert ada.email == "ada@acme.example"
    assert ada.account == acme
    # 09:00 in Berlin in January is 08:00 UTC.
    assert ada.added_at == datetime(2024, 1, 10, 8, 0, tzinfo=UTC)
    event = UsageEvent.objects.get(external_id="U-2")
    assert event.account == beta
    assert event.contact == Contact.objects.get(external_id="C-2")
    assert event.quantity == 1
    ticket = SupportTicket.objects.get(external_id="T-1")
    assert ticket.priority == "high"
    survey = SurveyResponse.objects.get(external_id="T-1-csat")
    assert survey.score == 4
    assert survey.submitted_at == datetime(2024, 3, 2, 3, 0, tzinfo=UTC)


def test_second_import_changes_nothing(folder):
    import_folder(folder)
    before = {
        account.external_id: account.updated_at for account in Account.objects.all()
    }

    report = import_folder(folder)

    assert {counts[2] for counts in counts(report).values()} == {2, 1}
    assert all(
        created == updated == 0 for created, updated, *_ in counts(report).values()
    )
    after = {
        account.external_id: account.updated_at for account in Account.objects.all()
    }
    assert after == before
    assert stored_counts() == (2, 2, 2, 2, 1)


def test_changed_row_is_updated_with_diff(folder):
    import_folder(folder)
    changed = [ACCOUNTS[0], ACCOUNTS[1].replace(",3,", ",5,"), ACCOUNTS[2]]
    write_csv(folder, "accounts.csv", changed)

    report = import_folder(folder)

    assert counts(report)["account"] == (0, 1, 1, 0)
    change = report.targets[0].changes[0]
    assert change.key == "A-1"
    assert change.fields == {"seats": ("3", "5")}
    assert Account.objects.get(external_id="A-1").seats == 5


def test_properties_merge_with_stored_keys(folder):
    make_account(external_id="A-1", name="Acme", properties={"crm_stage": "lead"})

    import_folder(folder)

    stored = Account.objects.get(external_id="A-1").properties
    assert stored == {"crm_stage": "lead", "segment": "smb"}


def test_dry_run_writes_nothing_and_reports(folder):
    make_account(external_id="A-1", name="Old name", signup_date="2024-01-10")

    report = import_folder(folder, dry_run=True)

    assert not report.committed
    assert counts(report)["account"] == (1, 1, 0, 0)
    assert counts(report)["contact"] == (2, 0, 0, 0)
    assert report.targets[0].changes[0].fields["name"] == ("Old name", "Acme")
    assert stored_counts() == (1, 0, 0, 0, 0)
    assert Account.objects.get(external_id="A-1").name == "Old name"
    document = json.loads(report.to_json())
    assert document["dry_run"] is True
    assert document["targets"][0]["updated"] == 1
    assert document["outcome"] == "Dry run: nothing was written."


def test_bad_row_aborts_the_whole_import(folder):
    write_csv(
        folder, "tickets.csv", [*TICKETS, "T-3,A-1,2024-03-05T00:00:00+00:00,,soon,"]
    )

    report = import_folder(folder)

    assert not report.committed
    assert stored_counts() == (0, 0, 0, 0, 0)
    rejection = report.rejections[0]
    assert (rejection.file, rejection.line) == ("tickets.csv", 4)
    assert (rejection.column, rejection.value) == ("priority", "soon")
    assert "must be one of low, medium, high, urgent" in rejection.reason
    assert "Nothing was written because 1 rows were rejected" in report.format()
    assert "tickets.csv:4: column priority = 'soon'" in report.format()


def test_skip_invalid_imports_the_valid_rows(folder):
    write_csv(
        folder, "tickets.csv", [*TICKETS, "T-3,A-1,2024-03-05T00:00:00+00:00,,soon,"]
    )

    report = import_folder(folder, on_error="skip")

    assert report.committed
    assert stored_counts() == (2, 2, 2, 2, 1)
    assert counts(report)["ticket"] == (2, 0, 0, 1)


def test_rows_of_a_rejected_parent_say_why(folder):
    write_csv(
        folder,
        "accounts.csv",
        [ACCOUNTS[0], ACCOUNTS[1], "A-2,Beta,gold,2,,29/02/2024,"],
    )

    report = import_folder(folder, on_error="skip")

    reasons = {(item.file, item.line): item.reason for item in report.rejections}
    assert "must be one of Basic, Pro, Enterprise" in reasons[("accounts.csv", 3)]
    assert reasons[("contacts.csv", 3)].startswith(
        "account A-2 was rejected earlier in this import"
    )
    assert reasons[("usage_2024.csv", 3)].startswith(
        "contact C-2 was rejected earlier in this import"
    )
    assert Account.objects.filter(external_id="A-2").count() == 0


def test_unknown_reference_rejected(folder):
    write_csv(
        folder, "contacts.csv", [*CONTACTS, "C-3,A-9,c3@x.example,Cy,,2024-03-01 12:30"]
    )

    report = import_folder(folder, on_error="skip")

    rejection = report.rejections[0]
    assert (rejection.line, rejection.column, rejection.value) == (
        4,
        "account_id",
        "A-9",
    )
    assert (
        "no account has external_id A-9; import the account first" in rejection.reason
    )


def test_duplicate_key_keeps_the_first_row(folder):
    write_csv(folder, "accounts.csv", [*ACCOUNTS, "A-1,Acme again,pro,3,,10/01/2024,"])

    report = import_folder(folder, on_error="skip")

    assert "accounts.csv:2 has the same key" in report.rejections[0].reason
    assert Account.objects.get(external_id="A-1").name == "Acme"


def test_email_of_another_contact_rejected(folder):
    make_contact(external_id="C-other", email="ben@beta.example")

    report = import_folder(folder, on_error="skip")

    rejection = report.rejections[0]
    assert (rejection.file, rejection.line) == ("contacts.csv", 3)
    assert "belongs to the contact with external_id C-other already" in rejection.reason


def test_ticket_closed_before_opened_rejected(folder):
    write_csv(
        folder,
        "tickets.csv",
        [*TICKETS, "T-3,A-1,2024-03-05T00:00:00+00:00,2024-03-04T00:00:00+00:00,low,"],
    )

    report = import_folder(folder, on_error="skip")

    assert "closed_at 2024-03-04 00:00:00+00:00 is before opened_at" in (
        report.rejections[0].reason
    )


def test_wrong_field_count_rejected(folder):
    write_csv(folder, "tickets.csv", [*TICKETS, "T-3,A-1"])

    report = import_folder(folder, on_error="skip")

    assert report.rejections[0].reason == "row has 2 fields but the header has 6"


def test_repeat_makes_one_row_per_number(tmp_path):
    make_account(external_id="A-1")
    write_csv(tmp_path, "seats.csv", ["account_id,seats", "A-1,3", "A-1,0"])
    (tmp_path / "m.toml").write_text(
        """
[[targets]]
target = "contact"
file = "seats.csv"
repeat = { column = "seats", as = "n" }

[targets.fields]
external_id = { template = "{account_id}-{seats}-{n}" }
account = { column = "account_id", type = "ref" }
email = { template = "user{n}@a.example" }
first_name = { template = "User {n}" }
added_at = { value = "2024-01-01T00:00:00+00:00", type = "datetime" }
is_champion = { template = "{n}", type = "bool", map = { "1" = "true" }, \
map_other = "false" }
"""
    )

    report = run_import(load_mapping(tmp_path / "m.toml"), tmp_path)

    assert report.targets[0].created == 3
    assert sorted(Contact.objects.values_list("external_id", "is_champion")) == [
        ("A-1-3-1", True), ("A-1-3-2", False), ("A-1-3-3", False),
    ]  # fmt: skip


def test_missing_column_stops_before_writing(folder):
    write_csv(folder, "tickets.csv", ["id,account_id,opened,closed,csat"])

    with pytest.raises(CsvImportError) as caught:
        import_folder(folder)

    assert "tickets.csv: column priority is missing from the header" in str(
        caught.value
    )
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_no_matching_file(folder):
    (folder / "usage_2024.csv").unlink()

    with pytest.raises(CsvImportError, match=r"No file in .* matches 'usage\*.csv'"):
        import_folder(folder)


def test_unclosed_quote_rolls_back_earlier_targets(folder):
    write_csv(folder, "tickets.csv", [*TICKETS, 'T-3,A-1,"2024-03-05,,low,'])

    with pytest.raises(CsvImportError) as caught:
        import_folder(folder)

    assert "tickets.csv: line 4: the row cannot be read" in str(caught.value)
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_not_utf8_rolls_back(folder):
    (folder / "tickets.csv").write_bytes(
        ("\n".join(TICKETS) + "\n").encode() + "T-3,A-1,x,,\xe9,\n".encode("latin-1")
    )

    with pytest.raises(CsvImportError, match=r"is not UTF-8 .*0xe9"):
        import_folder(folder)
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_encoded_surrogate_in_usage_rejected(folder):
    # The UTF-8 form that some encoders write for a lone surrogate U+D800
    # (bytes ED A0 80) is invalid UTF-8, so the strict decoding stops it
    # before any value reaches PostgreSQL.
    (folder / "usage_2024.csv").write_bytes(
        ("\n".join(USAGE) + "\n").encode()
        + b"U-3,C-1,Signed \xed\xa0\x80In,2024-03-03T08:00:00+00:00,1\n"
    )

    with pytest.raises(CsvImportError, match=r"usage_2024.csv is not UTF-8 .*0xed"):
        import_folder(folder)
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_several_files_match_one_pattern(folder):
    write_csv(
        folder, "usage_2025.csv", [USAGE[0], "U-3,C-1,Exported,2025-01-01T00:00:00Z,2"]
    )

    report = import_folder(folder)

    assert report.targets[2].files == ["usage_2024.csv", "usage_2025.csv"]
    assert UsageEvent.objects.count() == 3


def test_command_prints_the_report(folder):
    output = StringIO()

    call_command(
        "import_csv",
        "--mapping", str(mapping_path(folder)),
        "--data-dir", str(folder),
        "--dry-run",
        stdout=output,
    )  # fmt: skip

    assert "account from accounts.csv: 2 rows read, 2 created" in output.getvalue()
    assert "Dry run: nothing was written." in output.getvalue()
    assert Account.objects.count() == 0


def test_command_json_and_exit_status(folder):
    write_csv(
        folder, "tickets.csv", [*TICKETS, "T-3,A-1,2024-03-05T00:00:00+00:00,,soon,"]
    )
    output = StringIO()

    with pytest.raises(
        CommandError, match="1 rows were rejected, so nothing was written"
    ):
        call_command(
            "import_csv",
            "--mapping", str(mapping_path(folder)),
            "--data-dir", str(folder),
            "--json",
            stdout=output,
        )  # fmt: skip

    document = json.loads(output.getvalue())
    assert document["committed"] is False
    assert document["rejections"][0]["value"] == "soon"


def test_command_skip_invalid_as_keyword(folder):
    write_csv(
        folder, "tickets.csv", [*TICKETS, "T-3,A-1,2024-03-05T00:00:00+00:00,,soon,"]
    )
    output = StringIO()

    call_command(
        "import_csv",
        mapping=str(mapping_path(folder)),
        data_dir=str(folder),
        skip_invalid=True,
        stdout=output,
    )

    assert Account.objects.count() == 2
    assert "soon" in output.getvalue()


def test_command_reports_mapping_errors(tmp_path):
    (tmp_path / "m.toml").write_text('[[targets]]\ntarget = "company"\n')

    with pytest.raises(CommandError, match="target = 'company'"):
        call_command("import_csv", "--mapping", str(tmp_path / "m.toml"))


def write_seat_mapping(folder: Path, key_template: str) -> None:
    """Write m.toml: one contact per seat of seats.csv, keyed by key_template."""
    (folder / "m.toml").write_text(
        f"""
[[targets]]
target = "contact"
file = "seats.csv"
repeat = {{ column = "seats", as = "n" }}

[targets.fields]
external_id = {{ template = "{key_template}" }}
account = {{ column = "account_id", type = "ref" }}
email = {{ template = "user{{n}}@a.example" }}
first_name = {{ template = "User {{n}}" }}
added_at = {{ value = "2024-01-01T00:00:00+00:00", type = "datetime" }}
"""
    )


def test_repeat_key_without_number_rejected(tmp_path):
    make_account(external_id="A-1")
    write_csv(tmp_path, "seats.csv", ["account_id,seats", "A-1,2"])
    write_seat_mapping(tmp_path, "{account_id}-C")

    report = run_import(load_mapping(tmp_path / "m.toml"), tmp_path, on_error="skip")

    assert report.rejections[0].line == 2
    assert "A-1-C is made twice from this row" in report.rejections[0].reason
    assert Contact.objects.count() == 0


def test_repeat_count_must_be_a_number(tmp_path):
    make_account(external_id="A-1")
    write_csv(tmp_path, "seats.csv", ["account_id,seats", "A-1,many", "A-1,10001"])
    write_seat_mapping(tmp_path, "{account_id}-{n}")

    report = run_import(load_mapping(tmp_path / "m.toml"), tmp_path, on_error="skip")

    assert [(item.line, item.value) for item in report.rejections] == [
        (2, "many"),
        (3, "10001"),
    ]
    assert "a whole number from 0 to 10000 in seats" in report.rejections[0].reason


def test_command_skip_invalid_writes_valid_rows(folder):
    write_csv(
        folder, "tickets.csv", [*TICKETS, "T-3,A-1,2024-03-05T00:00:00+00:00,,soon,"]
    )
    output = StringIO()

    call_command(
        "import_csv",
        "--mapping", str(mapping_path(folder)),
        "--data-dir", str(folder),
        "--skip-invalid",
        stdout=output,
    )  # fmt: skip

    assert stored_counts() == (2, 2, 2, 2, 1)
    assert "tickets.csv:4: column priority = 'soon'" in output.getvalue()
    assert output.getvalue().rstrip().endswith("Imported.")


def test_key_other_than_external_id(tmp_path):
    account = make_account(external_id="A-1")
    make_contact(account, external_id="crm-7", email="ada@acme.example")
    write_csv(
        tmp_path,
        "people.csv",
        ["email,first,account_id", "ada@acme.example,Ada,A-1"],
    )
    (tmp_path / "m.toml").write_text(
        """
[[targets]]
target = "contact"
file = "people.csv"
key = "email"

[targets.fields]
email = "email"
external_id = { template = "mail-{email}" }
account = { column = "account_id", type = "ref" }
first_name = "first"
added_at = { value = "2024-01-01T00:00:00+00:00", type = "datetime" }
"""
    )

    report = run_import(load_mapping(tmp_path / "m.toml"), tmp_path)

    assert (report.targets[0].created, report.targets[0].updated) == (0, 1)
    contact = Contact.objects.get(email="ada@acme.example")
    assert contact.external_id == "mail-ada@acme.example"
    assert contact.first_name == "Ada"


def test_duplicate_of_a_rejected_row_says_so(folder):
    write_csv(
        folder,
        "contacts.csv",
        [
            *CONTACTS,
            "C-3,A-9,c3@x.example,Cy,,2024-03-01 12:30",
            "C-3,A-1,c3@x.example,Cy,,2024-03-01 12:30",
        ],
    )

    report = import_folder(folder, on_error="skip")

    reasons = {item.line: item.reason for item in report.rejections}
    assert "no account has external_id A-9" in reasons[4]
    # Both rows were in one batch, so the second was checked before the first
    # was rejected.
    assert "contacts.csv:4 has the same key and comes first" in reasons[5]
    assert not Contact.objects.filter(external_id="C-3").exists()


def test_duplicate_in_a_later_batch_names_the_rejection(folder, monkeypatch):
    monkeypatch.setattr(importer, "BATCH_SIZE", 1)
    write_csv(
        folder,
        "contacts.csv",
        [
            *CONTACTS,
            "C-3,A-9,c3@x.example,Cy,,2024-03-01 12:30",
            "C-3,A-1,c3@x.example,Cy,,2024-03-01 12:30",
        ],
    )

    report = import_folder(folder, on_error="skip")

    reasons = {item.line: item.reason for item in report.rejections}
    assert "contacts.csv:4 has the same key and was rejected" in reasons[5]


def test_unknown_on_error_rejected(folder):
    with pytest.raises(CsvImportError, match="on_error 'ignore' is invalid"):
        import_folder(folder, on_error="ignore")
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_number_too_large_for_column_rejected_not_aborted(folder):
    write_csv(
        folder,
        "accounts.csv",
        [
            ACCOUNTS[0],
            "A-1,Acme,pro,99999999999,147.50,10/01/2024,smb",
            "A-2,Beta,basic,2,12345678901234,29/02/2024,",
            "A-3,Gamma,basic,2,1.00,29/02/2024,",
        ],
    )
    out = StringIO()

    call_command(
        "import_csv",
        "--mapping", str(mapping_path(folder)),
        "--data-dir", str(folder),
        "--skip-invalid",
        stdout=out,
    )  # fmt: skip

    text = out.getvalue()
    assert "accounts.csv:2: column seats = '99999999999'" in text
    assert "accounts.csv:3: column mrr = '12345678901234'" in text
    assert "INSERT" not in text
    assert list(Account.objects.values_list("external_id", flat=True)) == ["A-3"]


def test_repeat_count_takes_only_ascii_digits(tmp_path):
    make_account(external_id="A-1")
    # "\u0663" is ARABIC-INDIC DIGIT THREE and "\u00b2" SUPERSCRIPT TWO; both
    # pass str.isdigit().
    write_csv(tmp_path, "seats.csv", ["account_id,seats", "A-1,\u0663", "A-1,\u00b2"])
    write_seat_mapping(tmp_path, "{account_id}-{n}")

    report = run_import(load_mapping(tmp_path / "m.toml"), tmp_path, on_error="skip")

    assert [(item.line, item.value) for item in report.rejections] == [
        (2, "\u0663"),
        (3, "\u00b2"),
    ]
    assert Contact.objects.count() == 0


def test_field_over_the_csv_size_limit_named(folder):
    limit = csv.field_size_limit()
    write_csv(
        folder, "tickets.csv", [*TICKETS, "T-3,A-1," + "x" * (limit + 1) + ",,low,"]
    )

    with pytest.raises(CsvImportError) as caught:
        import_folder(folder)

    message = str(caught.value)
    assert "tickets.csv: line 4" in message
    assert f"{limit:,} characters" in message
    assert "close the quote" not in message
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_duplicate_header_name_rejected(folder):
    write_csv(folder, "tickets.csv", [TICKETS[0] + ",csat", TICKETS[1] + ",5"])

    with pytest.raises(CsvImportError) as caught:
        import_folder(folder)

    assert "tickets.csv: column csat appears twice in the header" in str(caught.value)
    assert stored_counts() == (0, 0, 0, 0, 0)


def test_rejections_sorted_by_file_and_line(folder):
    # Line 2 names a missing account, which is found when the batch is
    # written; line 3 has an invalid priority, found when the row is read.
    write_csv(
        folder,
        "tickets.csv",
        [
            TICKETS[0],
            "T-1,A-9,2024-03-01T00:00:00+00:00,,low,",
            "T-2,A-1,2024-03-05T00:00:00+00:00,,soon,",
        ],
    )
    write_csv(folder, "accounts.csv", [*ACCOUNTS, "A-3,Gamma,gold,2,,29/02/2024,"])

    report = import_folder(folder, on_error="skip")

    assert [(item.file, item.line) for item in report.rejections] == [
        ("accounts.csv", 4),
        ("tickets.csv", 2),
        ("tickets.csv", 3),
    ]


def test_ravenstack_names_with_one_domain_reject_contacts(tmp_path):
    mapping = load_mapping(MAPPINGS_DIR / "ravenstack.toml")
    files: dict[str, set[str]] = {}
    for spec in mapping.targets:
        files.setdefault(spec.file_pattern, set()).update(spec.columns())
    for name, columns in files.items():
        (tmp_path / name).write_text(",".join(sorted(columns)) + "\n")
    header = sorted(files["ravenstack_accounts.csv"])
    rows = [
        {"account_id": "A-1", "account_name": "Acme Co", "seats": "2"},
        {"account_id": "A-2", "account_name": "acme_co", "seats": "3"},
    ]
    lines = [",".join(header)]
    for row in rows:
        values = {
            "plan_tier": "Basic", "is_trial": "false", "signup_date": "2024-01-10",
            **row,
        }  # fmt: skip
        lines.append(",".join(values.get(column, "") for column in header))
    (tmp_path / "ravenstack_accounts.csv").write_text("\n".join(lines) + "\n")

    report = run_import(mapping, tmp_path, dry_run=True)

    contacts = next(item for item in report.targets if item.target == "contact")
    # Both names make acme-co.example; A-2's contacts 1 and 2 repeat A-1's
    # emails and are rejected, and its contact 3 is not.
    assert (contacts.created, contacts.rejected) == (3, 2)
    assert [item.value for item in report.rejections] == [
        "user001@acme-co.example",
        "user002@acme-co.example",
    ]


def test_database_error_shown_without_its_sql(folder, monkeypatch):
    def failing_upsert(*args, **kwargs):
        raise DataError('value out of range\nLINE 1: INSERT INTO "customers_account"')

    monkeypatch.setattr(importer, "upsert", failing_upsert)

    with pytest.raises(CsvImportError) as caught:
        import_folder(folder)

    message = str(caught.value)
    assert "accounts.csv lines 2-3 failed: value out of range." in message
    assert "INSERT" not in message
