"""Files that stop an import: bad headers, bad encoding, unclosed quotes, paths."""

from io import StringIO
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from courses.models import Course
from customers.models import Account, ChurnEvent
from integrations import oulad
from integrations.oulad_progress import CLICK_COLUMNS, RESULT_COLUMNS
from integrations.services import (
    ImportDataError,
    import_all,
    import_oulad,
    import_ravenstack,
)
from tests.factories import make_account, make_contact
from tests.integrations.conftest import OULAD, RAVENSTACK, write_file

pytestmark = pytest.mark.django_db

ACCOUNTS = "ravenstack_accounts.csv"
USAGE = "ravenstack_feature_usage.csv"
CHURN_EVENTS = "ravenstack_churn_events.csv"


def oulad_columns(name: str) -> tuple[str, ...]:
    if name.startswith("studentVle"):
        return CLICK_COLUMNS
    if name.startswith("studentAssessment"):
        return RESULT_COLUMNS
    return oulad.COLUMNS[name]


def rename_column(path: Path, column: str) -> None:
    header, rest = path.read_text().split("\n", 1)
    names = header.split(",")
    assert column in names, column
    renamed = [f"{name}_renamed" if name == column else name for name in names]
    path.write_text(",".join(renamed) + "\n" + rest)


def insert_bytes(path: Path, line: int, data: bytes) -> None:
    """Insert raw bytes at the start of a line; the header is line 1."""
    lines = path.read_bytes().split(b"\n")
    lines[line - 1] = data + lines[line - 1]
    path.write_bytes(b"\n".join(lines))


def replace_line(path: Path, line: int, text: str) -> None:
    lines = path.read_text().split("\n")
    lines[line - 1] = text
    path.write_text("\n".join(lines))


@pytest.mark.parametrize("name", list(OULAD))
def test_import_all_checks_every_oulad_header(ravenstack_folder, oulad_folder, name):
    column = oulad_columns(name)[-1]
    rename_column(oulad_folder / name, column)

    with pytest.raises(ImportDataError, match=f"{name} lacks the columns {column}"):
        import_all(ravenstack_folder.parent)

    assert not Account.objects.exists()


def test_import_data_missing_later_column(ravenstack_folder, oulad_folder):
    rename_column(oulad_folder / "studentInfo_2013.csv", "final_result")

    with pytest.raises(CommandError, match="lacks the columns final_result"):
        call_command("import_data", str(ravenstack_folder.parent), "--no-progress")

    assert not Account.objects.exists()
    assert not Course.objects.exists()


def test_non_utf8_byte_names_file_and_line(ravenstack_folder):
    insert_bytes(ravenstack_folder / USAGE, 4, b"\xff\xfe")

    with pytest.raises(ImportDataError) as raised:
        import_ravenstack(ravenstack_folder)

    message = str(raised.value)
    assert USAGE in message
    assert "line 4" in message
    assert "0xff" in message
    assert "save the file as UTF-8" in message
    assert not Account.objects.exists()


def test_non_utf8_byte_found_past_first_chunk(ravenstack_folder):
    # Far enough into the file that the decoder fails on a later chunk,
    # after the rows before it were parsed.
    usage = [
        f"U-{number:06d},S-000002,2024-08-01,feature_2,1,60,1,True"
        for number in range(10, 3010)
    ]
    write_file(ravenstack_folder, USAGE, usage)
    insert_bytes(ravenstack_folder / USAGE, 2500, b"caf\xe9,")

    with pytest.raises(ImportDataError, match=rf"{USAGE}.* line 2500\b"):
        import_ravenstack(ravenstack_folder)

    assert not Account.objects.exists()


def test_command_reports_non_utf8_file(ravenstack_folder):
    insert_bytes(ravenstack_folder / ACCOUNTS, 3, b"\xff\xfe")

    with pytest.raises(CommandError, match=rf"{ACCOUNTS} is not valid UTF-8"):
        call_command("import_ravenstack", str(ravenstack_folder), "--no-progress")

    assert not Account.objects.exists()


def test_non_utf8_oulad_file_stops_import_all(ravenstack_folder, oulad_folder):
    insert_bytes(oulad_folder / "studentRegistration_2013.csv", 5, b"\xff")

    with pytest.raises(ImportDataError, match=r"studentRegistration_2013\.csv"):
        import_all(ravenstack_folder.parent)

    assert not Account.objects.exists()


def test_unclosed_quote_to_end_of_file(ravenstack_folder):
    replace_line(ravenstack_folder / ACCOUNTS, 3, '"unterminated,quote')

    with pytest.raises(ImportDataError) as raised:
        import_ravenstack(ravenstack_folder)

    message = str(raised.value)
    assert ACCOUNTS in message
    assert "line 3" in message
    assert "never closed" in message
    # Lines 3 and 4 of a file with a header and three accounts.
    assert "lines 3 to 4" in message
    assert not Account.objects.exists()


def test_unclosed_quote_in_last_column(ravenstack_folder):
    # The free-text last column swallows the rows after it but keeps the
    # header's field count, so the field count alone cannot catch it.
    path = ravenstack_folder / CHURN_EVENTS
    row = RAVENSTACK[CHURN_EVENTS][0].replace("too expensive", '"too expensive')
    replace_line(path, 2, row)

    with pytest.raises(ImportDataError, match=rf"{CHURN_EVENTS}.*line 2.*never closed"):
        import_ravenstack(ravenstack_folder)

    assert not Account.objects.exists()


def test_quote_spanning_rows_stops_import(ravenstack_folder):
    path = ravenstack_folder / ACCOUNTS
    replace_line(path, 2, RAVENSTACK[ACCOUNTS][0].replace("Acme", '"Acme'))
    replace_line(path, 4, '"' + RAVENSTACK[ACCOUNTS][2].replace(",", '",', 1))

    with pytest.raises(ImportDataError) as raised:
        import_ravenstack(ravenstack_folder)

    message = str(raised.value)
    assert f"{ACCOUNTS} line 2" in message
    assert "to line 4" in message
    assert not Account.objects.exists()


def test_unclosed_quote_past_field_limit(ravenstack_folder):
    # The csv module stops at a field of 131,072 characters, which a quote
    # left open in a large file reaches before the end of the file.
    usage = [
        f"U-{number:06d},S-000002,2024-08-01,feature_2,1,60,1,True"
        for number in range(10, 3010)
    ]
    write_file(ravenstack_folder, USAGE, usage)
    replace_line(ravenstack_folder / USAGE, 10, '"' + usage[8])

    with pytest.raises(ImportDataError, match=rf"{USAGE} line 10: .*field limit"):
        import_ravenstack(ravenstack_folder)

    assert not Account.objects.exists()


def test_unclosed_quote_in_header(ravenstack_folder):
    path = ravenstack_folder / ACCOUNTS
    path.write_text('"' + path.read_text())

    with pytest.raises(ImportDataError, match=rf"{ACCOUNTS} line 1.*never closed"):
        import_ravenstack(ravenstack_folder)


def test_quoted_newline_in_field_kept(ravenstack_folder):
    path = ravenstack_folder / CHURN_EVENTS
    row = RAVENSTACK[CHURN_EVENTS][0].replace("too expensive", '"too\nexpensive"')
    replace_line(path, 2, row)

    report = import_ravenstack(ravenstack_folder)

    event = ChurnEvent.objects.get(external_id="C-000001")
    assert event.feedback == "too\nexpensive"
    # The blank account id is now on line 6, one further down.
    reasons = {
        issue.line: issue.reason
        for issue in report.errors
        if issue.file == CHURN_EVENTS
    }
    assert reasons == {6: "account_id is blank"}


def test_unclosed_quote_stops_oulad_import(oulad_folder):
    make_contact(make_account(), external_id="C-1")
    replace_line(oulad_folder / "vle_2013.csv", 4, '"1003,AAA,2013J,url,40,40')

    with pytest.raises(
        ImportDataError, match=r"vle_2013\.csv line 4: .* to line 5.*not closed"
    ):
        import_oulad(oulad_folder)

    assert not Course.objects.exists()


def test_file_given_as_folder_is_not_folder(tmp_path):
    path = tmp_path / "passwd"
    path.write_text("root:x:0:0:root:/root:/bin/bash\n")

    with pytest.raises(CommandError, match="passwd is not a folder") as raised:
        call_command("import_data", str(path), stdout=StringIO())

    assert "not found" not in str(raised.value)


def test_folder_given_as_file_is_not_file(ravenstack_folder):
    (ravenstack_folder / CHURN_EVENTS).unlink()
    (ravenstack_folder / CHURN_EVENTS).mkdir()

    with pytest.raises(ImportDataError, match=rf"{CHURN_EVENTS} is not a file"):
        import_ravenstack(ravenstack_folder)
