"""Reading dataset CSV files with line numbers, and parsing their fields."""

import csv
import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from itertools import chain
from pathlib import Path
from typing import TypeVar

from integrations.report import ImportDataError, ImportReport

TRUE_WORDS = {"true", "1", "yes"}
FALSE_WORDS = {"false", "0", "no"}

Number = TypeVar("Number", int, Decimal)

# A line that no dataset row can equal, fed to the reader after the last line.
# It starts with the ASCII file separator control character.
END_OF_FILE_LINE = "\x1cend of file"

FIX_QUOTES = (
    "Close the quote, or write a quote that is part of a value as two quotes "
    '(""), and import again.'
)


class RowError(ValueError):
    """A row that cannot be imported; the message is the reason in the report."""


@dataclass(frozen=True)
class CsvRow:
    # The line the row starts on; the header is line 1.
    line: int
    values: Mapping[str, str]


@dataclass
class DatasetFiles:
    """The rows of every file of one dataset folder, read before anything is written."""

    report: ImportReport
    tables: dict[str, list[CsvRow]]


def require_folder(folder: Path, file_names: Iterable[str], what_to_do: str) -> Path:
    """Return the folder if it contains every named file, else raise ImportDataError."""
    if not folder.exists():
        raise ImportDataError(f"Folder {folder} not found. {what_to_do}")
    if not folder.is_dir():
        raise ImportDataError(f"{folder} is not a folder. {what_to_do}")
    for name in file_names:
        _require_file(folder / name, what_to_do)
    return folder


def _require_file(path: Path, what_to_do: str = "") -> None:
    if not path.exists():
        raise ImportDataError(f"File {path} not found. {what_to_do}".strip())
    if not path.is_file():
        raise ImportDataError(f"{path} is not a file. {what_to_do}".strip())


def read_csv(path: Path, columns: Iterable[str], report: ImportReport) -> list[CsvRow]:
    """Read every row of a CSV file, reporting rows whose field count is wrong.

    Raises ImportDataError when the file or one of the expected columns is
    missing, when the file is not UTF-8, or when a quoted field is not closed.
    Importers read all their files before writing, so nothing is written then.
    """
    _require_file(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            return _read_rows(path, handle, list(columns), report)
    except UnicodeDecodeError:
        raise _not_utf8_error(path) from None


def _read_rows(
    path: Path, lines: Iterable[str], columns: list[str], report: ImportReport
) -> list[CsvRow]:
    # The reader gets one extra line after the file's own. Outside quotes it
    # comes back as a row of its own. Inside a quoted field that is never
    # closed, the csv module appends it to that field, which shows the quote.
    row_lines: list[str] = []
    reader = csv.reader(_record(chain(lines, [END_OF_FILE_LINE]), row_lines))
    previous_end = 0
    try:
        header = [name.strip() for name in next(reader)]
        _check_quotes(path, header, row_lines, 1, reader.line_num, None)
        if header == [END_OF_FILE_LINE]:
            header = []
        _check_header(path, header, columns)

        counts = report.counts(path.name)
        rows = []
        previous_end = reader.line_num
        for fields in reader:
            # A quoted field may span lines, so a row starts one line after
            # the previous row ended rather than at reader.line_num.
            start = previous_end + 1
            previous_end = reader.line_num
            if fields == [END_OF_FILE_LINE]:
                break
            _check_quotes(path, fields, row_lines, start, previous_end, len(header))
            if not fields:
                continue
            counts.read += 1
            if len(fields) != len(header):
                report.skip(
                    path.name,
                    start,
                    f"row has {len(fields)} fields but the header has {len(header)}",
                )
                continue
            values = [value.strip() for value in fields]
            rows.append(CsvRow(start, dict(zip(header, values, strict=True))))
    except csv.Error as error:
        # A quote left open in a file larger than the csv module's field size
        # limit ends here, with "field larger than field limit".
        raise ImportDataError(
            f"File {path} line {previous_end + 1}: the row that starts on this line "
            f"could not be read ({error}), probably because a quote on this line is "
            f"not closed. {FIX_QUOTES}"
        ) from None
    return rows


def _record(lines: Iterable[str], row_lines: list[str]) -> Iterator[str]:
    """Yield each line, keeping the lines of the row being read in row_lines.

    The csv reader takes no line beyond the end of the row it returns, so
    the caller empties row_lines after each row.
    """
    for line in lines:
        row_lines.append(line)
        yield line


def _check_quotes(
    path: Path,
    fields: list[str],
    row_lines: list[str],
    start: int,
    end: int,
    expected_fields: int | None,
) -> None:
    """Raise ImportDataError for a quoted field that took in lines of other rows.

    Only a row that spans lines is checked, and row_lines is emptied for the
    next row. A quoted field that is never closed takes the rest of the file.
    One that a stray quote on a later line closes leaves a row with the
    wrong field count or with text after that closing quote. A header is
    never expected to span lines.
    """
    lines = row_lines.copy()
    row_lines.clear()
    if end == start:
        return
    if fields and fields[-1].endswith(END_OF_FILE_LINE):
        # The last line read is the extra line, not one of the file's.
        raise ImportDataError(
            f"File {path} line {start}: a quoted field in the row that starts on "
            f"this line is never closed, so lines {start} to {end - 1} (the end of "
            f"the file) could not be read. {FIX_QUOTES}"
        )
    if len(fields) == expected_fields and _quotes_well_formed(lines):
        return
    # NOTE: a stray quote that a later quote closes right before a comma, in
    # the same column, passes these checks and is read as one row.
    what = "the header" if expected_fields is None else "one row"
    raise ImportDataError(
        f"File {path} line {start}: a quoted field runs from this line to line "
        f"{end}, so lines {start} to {end} were read as {what}. A quote on line "
        f"{start} is probably not closed. {FIX_QUOTES}"
    )


def _quotes_well_formed(lines: list[str]) -> bool:
    """Return whether every closing quote is followed by a comma or a line end."""
    try:
        for _ in csv.reader(lines, strict=True):
            pass
    except csv.Error:
        return False
    return True


def _check_header(path: Path, header: list[str], columns: Iterable[str]) -> None:
    missing = [name for name in columns if name not in header]
    if missing:
        raise ImportDataError(
            f"File {path} lacks the columns {', '.join(missing)} (its header is "
            f"{','.join(header) or 'empty'}); use the file as published, "
            "see docs/data.md."
        )


def _not_utf8_error(path: Path) -> ImportDataError:
    line, position, byte = _find_invalid_utf8(path)
    return ImportDataError(
        f"File {path} is not valid UTF-8: byte {position} of line {line} is "
        f"0x{byte:02x}. Open the file in a text editor or spreadsheet, save the "
        'file as UTF-8 (in a spreadsheet, "CSV UTF-8"), and import again.'
    )


def _find_invalid_utf8(path: Path) -> tuple[int, int, int]:
    """Return the line, the 1-based byte position in it and the first invalid byte.

    Lines are counted as the csv reader counts them, ending at CR, LF or CRLF.
    """
    line = 0
    with path.open("rb") as handle:
        for chunk in handle:
            for text in chunk.splitlines():
                line += 1
                try:
                    text.decode("utf-8")
                except UnicodeDecodeError as error:
                    return line, error.start + 1, text[error.start]
    # Reached only if the file changed after it failed to decode.
    raise ImportDataError(f"File {path} is not valid UTF-8.")


class Fields:
    """Typed access to one row's values; each method raises RowError on a bad value."""

    def __init__(self, values: Mapping[str, str]) -> None:
        self.values = values

    def text(self, column: str, max_length: int | None = None) -> str:
        value = self.values[column]
        if not value:
            raise RowError(f"{column} is blank")
        return self._check_length(column, value, max_length)

    def optional_text(self, column: str, max_length: int | None = None) -> str:
        return self._check_length(column, self.values[column], max_length)

    def integer(self, column: str, minimum: int | None = None) -> int:
        return self._check_minimum(column, _to_int(column, self.text(column)), minimum)

    def optional_integer(self, column: str, minimum: int | None = None) -> int | None:
        if not self.values[column]:
            return None
        return self.integer(column, minimum)

    def decimal(self, column: str, minimum: int | None = None) -> Decimal:
        raw = self.text(column)
        try:
            value = Decimal(raw)
        except InvalidOperation:
            raise RowError(f"{column} {raw!r} is not a number") from None
        if not value.is_finite():
            raise RowError(f"{column} {raw!r} is not a finite number")
        return self._check_minimum(
            column, value, None if minimum is None else Decimal(minimum)
        )

    def boolean(self, column: str) -> bool:
        raw = self.text(column)
        if raw.lower() in TRUE_WORDS:
            return True
        if raw.lower() in FALSE_WORDS:
            return False
        raise RowError(f"{column} {raw!r} is not TRUE or FALSE")

    def choice(self, column: str, allowed: Iterable[str]) -> str:
        raw = self.text(column)
        options = list(allowed)
        if raw not in options:
            raise RowError(f"{column} {raw!r} is not one of {', '.join(options)}")
        return raw

    def date(self, column: str) -> dt.date:
        raw = self.text(column)
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise RowError(f"{column} {raw!r} is not a date (YYYY-MM-DD)") from None

    def optional_date(self, column: str) -> dt.date | None:
        if not self.values[column]:
            return None
        return self.date(column)

    def optional_minute(self, column: str) -> datetime | None:
        """Parse "2023-07-28 3:00" (hour without a leading zero) as UTC."""
        raw = self.values[column]
        if not raw:
            return None
        try:
            return datetime.strptime(raw, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)
        except ValueError:
            raise RowError(
                f"{column} {raw!r} is not a date and time (YYYY-MM-DD H:MM)"
            ) from None

    def _check_length(self, column: str, value: str, max_length: int | None) -> str:
        if max_length is not None and len(value) > max_length:
            raise RowError(
                f"{column} {value[:40]!r} is longer than {max_length} characters"
            )
        return value

    def _check_minimum(
        self, column: str, value: Number, minimum: Number | None
    ) -> Number:
        if minimum is not None and value < minimum:
            raise RowError(f"{column} {value} is below the minimum {minimum}")
        return value


def _to_int(column: str, raw: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise RowError(f"{column} {raw!r} is not a whole number") from None


def at_utc(day: date, hour: int = 0) -> datetime:
    """Return the instant at the given hour of a date, in UTC."""
    return datetime.combine(day, time(hour), tzinfo=UTC)


def days_after(day: date, days: int) -> datetime:
    """Return midnight UTC of the date that is `days` days after `day`."""
    return at_utc(day + timedelta(days=days))
