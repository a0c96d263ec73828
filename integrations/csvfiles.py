"""Reading dataset CSV files with line numbers, and parsing their fields."""

import csv
import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TypeVar

from integrations.report import ImportDataError, ImportReport

TRUE_WORDS = {"true", "1", "yes"}
FALSE_WORDS = {"false", "0", "no"}

Number = TypeVar("Number", int, Decimal)


class RowError(ValueError):
    """A row that cannot be imported; the message is the reason in the report."""


@dataclass(frozen=True)
class CsvRow:
    # The line the row starts on; the header is line 1.
    line: int
    values: Mapping[str, str]


def require_folder(folder: Path, file_names: Iterable[str], what_to_do: str) -> Path:
    """Return the folder if it contains every named file, else raise ImportDataError."""
    if not folder.is_dir():
        raise ImportDataError(f"Folder {folder} not found. {what_to_do}")
    for name in file_names:
        if not (folder / name).is_file():
            raise ImportDataError(f"File {folder / name} not found. {what_to_do}")
    return folder


def read_csv(path: Path, columns: Iterable[str], report: ImportReport) -> list[CsvRow]:
    """Read every row of a CSV file, reporting rows whose field count is wrong.

    Raises ImportDataError when the file or one of the expected columns is
    missing, before anything is written.
    """
    if not path.is_file():
        raise ImportDataError(f"File {path} not found.")
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle)
        header = [name.strip() for name in next(reader, [])]
        _check_header(path, header, columns)
        counts = report.counts(path.name)
        rows = []
        previous_end = reader.line_num
        for fields in reader:
            # A quoted field may span lines, so a row starts one line after
            # the previous row ended rather than at reader.line_num.
            start = previous_end + 1
            previous_end = reader.line_num
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
        return rows


def _check_header(path: Path, header: list[str], columns: Iterable[str]) -> None:
    missing = [name for name in columns if name not in header]
    if missing:
        raise ImportDataError(
            f"File {path} lacks the columns {', '.join(missing)} (its header is "
            f"{','.join(header) or 'empty'}); use the file as published, "
            "see docs/data.md."
        )


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
