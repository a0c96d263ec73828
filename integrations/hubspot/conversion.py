"""Conversion of HubSpot's string property values to account and contact values.

HubSpot's CRM v3 API sends every property value as a string. Numbers
come as "17" and booleans as "true". Dates come as "2024-06-15", or in
webhooks as milliseconds since 1970 at midnight UTC. Enumerations come as
the option's internal value, and multiple checkboxes joined by ";".
"""

from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from django.utils.dateparse import parse_date, parse_datetime

from integrations.hubspot.models import PropertyMapping, ValueType


class ConversionError(ValueError):
    """A HubSpot value that does not convert to the mapped type."""


EXPECTED = {
    ValueType.NUMBER: "a number such as 17 or 17.5",
    ValueType.INTEGER: "a whole number such as 17",
    ValueType.BOOLEAN: "true or false",
    ValueType.DATE: "a date YYYY-MM-DD or milliseconds since 1970 (UTC)",
    ValueType.DATETIME: "an ISO 8601 instant or milliseconds since 1970 (UTC)",
}


def convert(mapping: PropertyMapping, raw: Any, record: str) -> Any:
    """Return raw converted for mapping; None for an empty value.

    record names the HubSpot record in the error, for example
    "HubSpot company 512".
    """
    if raw is None or raw == "":
        return None
    text = str(raw).strip()
    try:
        return _convert(mapping, text)
    except (ValueError, InvalidOperation, OverflowError):
        pass
    raise ConversionError(_message(mapping, text, record))


def _convert(mapping: PropertyMapping, text: str) -> Any:
    value_type = mapping.value_type
    if value_type == ValueType.STRING:
        return text
    if value_type == ValueType.NUMBER:
        number = Decimal(text)
        if not number.is_finite():
            raise ValueError(text)
        return number
    if value_type == ValueType.INTEGER:
        number = Decimal(text)
        if number != number.to_integral_value():
            raise ValueError(text)
        return int(number)
    if value_type == ValueType.BOOLEAN:
        return _boolean(text)
    if value_type == ValueType.DATE:
        return _date(text)
    if value_type == ValueType.DATETIME:
        return _datetime(text)
    return _option(mapping, text)


def _boolean(text: str) -> bool:
    lowered = text.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    raise ValueError(text)


def _date(text: str) -> date:
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC).date()
    parsed = parse_date(text[:10]) if len(text) >= 10 else None
    if parsed is None:
        raise ValueError(text)
    return parsed


def _datetime(text: str) -> datetime:
    if text.isdigit():
        return datetime.fromtimestamp(int(text) / 1000, UTC)
    parsed = parse_datetime(text)
    if parsed is None or parsed.tzinfo is None:
        raise ValueError(text)
    return parsed


def _option(mapping: PropertyMapping, text: str) -> Any:
    # Without options the internal value is stored as it is.
    if not mapping.options:
        return text
    if text not in mapping.options:
        raise ValueError(text)
    return mapping.options[text]


def _message(mapping: PropertyMapping, text: str, record: str) -> str:
    if mapping.value_type == ValueType.ENUMERATION:
        expected = f"one of the mapped options {', '.join(sorted(mapping.options))}"
        fix = "add the option to the mapping's options"
    else:
        expected = EXPECTED[ValueType(mapping.value_type)]
        fix = "correct the value in HubSpot or the mapping's value type"
    return (
        f"{record}: property {mapping.hubspot_property} value {text[:40]!r} is "
        f"invalid for {mapping.field_name}; expected {expected}; {fix}"
    )
