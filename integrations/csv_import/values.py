"""Turning the text of a CSV row into the typed values of one model row.

Each field's text passes through the same steps in a fixed order. The text
comes from the source (column, first non-blank column, template or fixed
value). It is stripped, its case changed, substrings replaced, slugified,
mapped and picked, and the default replaces a blank. Last, it is converted
to the type and its range checked. A value that fails raises CellError
with the column, the value and what to change.
"""

import hashlib
import re
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.text import slugify

from integrations.csv_import.errors import CellError
from integrations.csv_import.fields import FieldSpec

DATE_FORMAT = "%Y-%m-%d"

# Plain notation only: an optional sign and the ASCII digits 0-9, with one
# optional point for decimals. [0-9] matches no other Unicode digits.
INT_PATTERN = re.compile(r"[+-]?[0-9]+")
DECIMAL_PATTERN = re.compile(r"[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)")

# Characters a number's text may have. The largest integer column, a
# BigIntegerField, needs 20 with its sign, and a property gets the same room.
MAX_NUMBER_CHARS = 40


def stable_pick(key: str, choices: tuple[str, ...]) -> str:
    """Pick one choice from a key by SHA-256, the same on every machine and run."""
    index = int(hashlib.sha256(key.encode()).hexdigest(), 16) % len(choices)
    return choices[index]


def convert(
    spec: FieldSpec, row: Mapping[str, str], variables: Mapping[str, Any]
) -> Any:
    """Return the typed value of one field for a row, or raise CellError."""
    column, text = _source_text(spec, row, variables)
    text = _transform(spec, text)
    if text == "" and spec.default is not None:
        text = spec.default
    if text == "":
        if spec.required:
            raise CellError(
                column,
                text,
                f"{spec.name} is required but the value is blank; fill it in, or "
                "give the field a default or required = false in the mapping",
            )
        return spec.blank_value
    return _typed(spec, column, text)


def _source_text(
    spec: FieldSpec, row: Mapping[str, str], variables: Mapping[str, Any]
) -> tuple[str, str]:
    if spec.value is not None:
        return "(value)", spec.value
    if spec.template is not None:
        try:
            return spec.template, spec.template.format_map({**row, **variables})
        except (ValueError, TypeError) as error:
            raise CellError(
                spec.template,
                "",
                f"template {spec.template!r} for {spec.name} failed: {error}; "
                "check its format specifications against the column values",
            ) from None
    for column in spec.columns:
        value = row[column].strip() if spec.strip else row[column]
        if value:
            return column, row[column]
    return spec.columns[-1], row[spec.columns[-1]]


def _transform(spec: FieldSpec, text: str) -> str:
    if spec.strip:
        text = text.strip()
    if spec.case == "lower":
        text = text.lower()
    elif spec.case == "upper":
        text = text.upper()
    for old, new in (spec.replace or {}).items():
        text = text.replace(old, new)
    if spec.slug and text:
        text = slugify(text).replace("_", "-").strip("-")
    if spec.value_map is not None:
        if text in spec.value_map:
            text = spec.value_map[text]
        elif spec.map_other is not None:
            text = spec.map_other
    if spec.pick and text:
        text = stable_pick(text, spec.pick)
    return text


def _typed(spec: FieldSpec, column: str, text: str) -> Any:
    if spec.type in ("str", "choice", "ref"):
        return _text(spec, column, text)
    if spec.type == "bool":
        return _boolean(spec, column, text)
    if spec.type in ("int", "decimal"):
        return _number(spec, column, text)
    if spec.type == "date":
        value = _parse_datetime(spec, column, text).date()
        return value.isoformat() if spec.is_property else value
    instant = _instant(spec, column, text)
    return instant.isoformat() if spec.is_property else instant


def _text(spec: FieldSpec, column: str, text: str) -> str:
    if spec.choices and text not in spec.choices:
        raise CellError(
            column,
            text,
            f"{spec.name} must be one of {', '.join(spec.choices)}; add the value "
            "to the field's map in the mapping or fix it in the file",
        )
    if spec.max_length is not None and len(text) > spec.max_length:
        raise CellError(
            column,
            text,
            f"{spec.name} is {len(text)} characters long, more than the "
            f"{spec.max_length} it can store; shorten it",
        )
    if "\x00" in text:
        raise CellError(
            column, text, f"{spec.name} contains a NUL character; remove it"
        )
    if spec.is_email:
        try:
            validate_email(text)
        except ValidationError:
            raise CellError(
                column, text, f"{spec.name} is not a valid email address"
            ) from None
    return text


def _boolean(spec: FieldSpec, column: str, text: str) -> bool:
    word = text.lower()
    if word in spec.true_words:
        return True
    if word in spec.false_words:
        return False
    raise CellError(
        column,
        text,
        f"{spec.name} must be one of {', '.join(sorted(spec.true_words))} (true) or "
        f"{', '.join(sorted(spec.false_words))} (false); list other words in the "
        "field's true or false option",
    )


def _number(spec: FieldSpec, column: str, text: str) -> int | Decimal | str:
    number = _parse_number(spec, column, text)
    _check_bounds(spec, column, text, number)
    if spec.type == "int":
        return int(number)
    _check_digits(spec, column, text, number)
    # JSON has no decimal type, so a decimal property keeps its exact text.
    return str(number) if spec.is_property else number


def _parse_number(spec: FieldSpec, column: str, text: str) -> Decimal:
    # Decimal() and int() accept exponents, underscores and non-ASCII digits,
    # and int(Decimal("1E99999999")) runs for hours, so only plain notation
    # of bounded length reaches them.
    if len(text) > MAX_NUMBER_CHARS:
        raise CellError(
            column,
            text,
            f"{spec.name} is {len(text)} characters long, but a number here has at "
            f"most {MAX_NUMBER_CHARS}; fix the value",
        )
    if spec.type == "int" and INT_PATTERN.fullmatch(text) is None:
        raise CellError(
            column,
            text,
            f"{spec.name} must be a whole number written with the digits 0-9 and "
            "an optional sign, such as 12 or -3, with no point, exponent or "
            "separators",
        )
    if spec.type == "decimal" and DECIMAL_PATTERN.fullmatch(text) is None:
        raise CellError(
            column,
            text,
            f"{spec.name} must be a decimal number written with the digits 0-9, "
            "an optional sign and at most one decimal point, such as 147.50, with "
            "no exponent or separators",
        )
    return Decimal(text)


def _check_bounds(spec: FieldSpec, column: str, text: str, number: Decimal) -> None:
    if spec.minimum is not None and number < spec.minimum:
        raise CellError(
            column,
            text,
            f"{spec.name} is below its minimum {spec.minimum}; fix the value or the "
            "field's min in the mapping",
        )
    if spec.maximum is not None and number > spec.maximum:
        raise CellError(
            column,
            text,
            f"{spec.name} is above its maximum {spec.maximum}; fix the value or the "
            "field's max in the mapping",
        )
    if spec.stored_range is None:
        return
    lowest, highest = spec.stored_range
    if not lowest <= number <= highest:
        raise CellError(
            column,
            text,
            f"{spec.name} is outside the range its database column stores, at least "
            f"{lowest} and at most {highest}; fix the value",
        )


def _check_digits(spec: FieldSpec, column: str, text: str, number: Decimal) -> None:
    _, digits, exponent = number.as_tuple()
    assert isinstance(exponent, int)
    places = max(-exponent, 0)
    if spec.decimal_places is not None and places > spec.decimal_places:
        raise CellError(
            column,
            text,
            f"{spec.name} has {places} decimal places but stores "
            f"{spec.decimal_places}; round the value",
        )
    if spec.max_digits is None or spec.decimal_places is None:
        return
    # Decimal drops leading zeros, so 0.05 has the digits (5,) and no digit
    # before the point.
    whole_digits = max(len(digits) + exponent, 0) if number else 0
    allowed = spec.max_digits - spec.decimal_places
    if whole_digits > allowed:
        raise CellError(
            column,
            text,
            f"{spec.name} has {whole_digits} digits before the decimal point, but "
            f"its database column stores at most {allowed}; fix the value",
        )


def _parse_datetime(spec: FieldSpec, column: str, text: str) -> datetime:
    formats = spec.formats or ((DATE_FORMAT,) if spec.type == "date" else ("ISO 8601",))
    for text_format in formats:
        try:
            if text_format == "ISO 8601":
                return datetime.fromisoformat(text)
            return datetime.strptime(text, text_format)  # noqa: DTZ007 - zone set below
        except ValueError:
            continue
    raise CellError(
        column,
        text,
        f"{spec.name} does not match the format {' or '.join(formats)}; fix the "
        "value or the field's format in the mapping",
    )


def _instant(spec: FieldSpec, column: str, text: str) -> datetime:
    parsed = _parse_datetime(spec, column, text)
    if spec.time_of_day is not None:
        parsed = datetime.combine(parsed.date(), spec.time_of_day, parsed.tzinfo)
    if parsed.tzinfo is None:
        # With fold=0, a local time that a clock change repeats is read as
        # its first occurrence, and a skipped one with the offset before it.
        parsed = parsed.replace(tzinfo=spec.timezone)
    return parsed
