"""Reading CSV files one row at a time, with the line each row starts on."""

import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from integrations.csv_import.errors import CsvImportError


@dataclass(frozen=True)
class SourceRow:
    # The line the row starts on; the header is line 1.
    line: int
    values: dict[str, str] | None
    # Why the row could not be split into the header's columns.
    problem: str = ""


def find_files(folder: Path, pattern: str, label: str | None = None) -> list[Path]:
    """Return the files in folder that match a glob pattern, sorted by name.

    label names the folder in errors in place of its path, such as "the
    uploaded files" where the path is the server's business.
    """
    if not folder.is_dir():
        raise CsvImportError(
            f"Data folder {label or folder} not found; pass the folder that "
            "contains the CSV files with --data-dir"
        )
    files = sorted(path for path in folder.glob(pattern) if path.is_file())
    if files:
        return files
    if label is not None:
        raise CsvImportError(
            f"No file in {label} matches {pattern!r}; check the file name in the "
            f"mapping or add the file to {label}"
        )
    raise CsvImportError(
        f"No file in {folder} matches {pattern!r}; check the file name in the "
        "mapping or pass another --data-dir"
    )


def read_header(path: Path) -> list[str]:
    """Return the column names of a CSV file; raise CsvImportError if unreadable."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            header = next(csv.reader(handle, strict=True), [])
    except UnicodeDecodeError as error:
        raise _not_utf8(path, error) from None
    except csv.Error as error:
        if _over_field_limit(error):
            raise _field_too_long(path, 1) from None
        raise CsvImportError(
            f"{path.name}: line 1: the header is invalid: {error}"
        ) from None
    if not header:
        raise CsvImportError(f"{path.name} is empty; it needs a header line")
    names = [name.strip() for name in header]
    _reject_repeated_names(path, names)
    return names


def _reject_repeated_names(path: Path, names: list[str]) -> None:
    # A row becomes a dict by column name, so a repeated name would silently
    # keep only its last column.
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise CsvImportError(
                f"{path.name}: column {name} appears twice in the header; give "
                "each column its own name"
            )
        seen.add(name)


def require_columns(path: Path, header: list[str], columns: set[str]) -> None:
    missing = sorted(columns - set(header))
    if missing:
        raise CsvImportError(
            f"{path.name}: column {missing[0]} is missing from the header "
            f"({', '.join(header)}); rename the column in the file or in the mapping"
        )


def read_rows(path: Path) -> Iterator[SourceRow]:
    """Yield the rows of a CSV file after its header, one at a time.

    strict parsing turns a quote that is never closed, or text after a
    closing quote, into CsvImportError, because the csv module would
    otherwise read the rest of the file as one field.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.reader(handle, strict=True)
            header = [name.strip() for name in next(reader, [])]
            previous_end = reader.line_num
            while True:
                start = previous_end + 1
                try:
                    fields = next(reader)
                except StopIteration:
                    return
                except csv.Error as error:
                    if _over_field_limit(error):
                        raise _field_too_long(path, start) from None
                    raise CsvImportError(
                        f"{path.name}: line {start}: the row cannot be read ({error}); "
                        'close the quote, or write a quote inside a value as two ("")'
                    ) from None
                previous_end = reader.line_num
                if not fields:
                    continue
                if len(fields) != len(header):
                    yield SourceRow(
                        start,
                        None,
                        f"row has {len(fields)} fields but the header has "
                        f"{len(header)}",
                    )
                    continue
                yield SourceRow(start, dict(zip(header, fields, strict=True)))
    except UnicodeDecodeError as error:
        raise _not_utf8(path, error) from None


def _over_field_limit(error: csv.Error) -> bool:
    # The csv module has no error class of its own for this case, only the
    # message "field larger than field limit (N)".
    return "field larger than field limit" in str(error)


def _field_too_long(path: Path, line: int) -> CsvImportError:
    limit = csv.field_size_limit()
    return CsvImportError(
        f"{path.name}: line {line}: a field is longer than {limit:,} characters, "
        "the csv module's field size limit; shorten the field, or look for a "
        "quote that is never closed there, which makes the rest of the file "
        "one field"
    )


def _not_utf8(path: Path, error: UnicodeDecodeError) -> CsvImportError:
    return CsvImportError(
        f"{path.name} is not UTF-8 (it contains the invalid byte "
        f"{error.object[error.start]:#04x}); save the file as UTF-8 and import again"
    )
