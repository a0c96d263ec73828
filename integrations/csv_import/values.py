"""Turning the text of a CSV row into the typed values of one model row.

Each field's text passes through the same steps in a fixed order. The text
comes from the source (column, first non-blank column, template or fixed
value). It is stripped, its case changed, substrings replaced, slugified,
mapped and picked, and the default replaces a blank. Last, it is converted
to the type and its range checked. A value that fails raises CellError
with the column, the value and what to change.
"""

import hashlib
from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.utils.text import slugify

from integrations.csv_import.errors import CellError
from integrations.csv_import.fields import FieldSpec

DATE_FORMAT = "%Y-%m-%d"


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
    try:
        number = Decimal(text)
    except InvalidOperation:
        number = Decimal("NaN")
    if not number.is_finite() or (
        spec.type == "int" and number != number.to_integral()
    ):
        kind = "a whole number" if spec.type == "int" else "a decimal number"
        raise CellError(column, text, f"{spec.name} must be {kind}, such as 12")
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
    if spec.type == "int":
        return int(number)
    exponent = number.as_tuple().exponent
    assert isinstance(exponent, int)
    if spec.decimal_places is not None and -exponent > spec.decimal_places:
        raise CellError(
            column,
            text,
            f"{spec.name} has {-exponent} decimal places but stores "
            f"{spec.decimal_places}; round the value",
        )
    # JSON has no decimal type, so a decimal property keeps its exact text.
    return str(number) if spec.is_property else number


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
