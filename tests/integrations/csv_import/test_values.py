"""Converting CSV text to typed values: every type, transformation and error."""

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from integrations.csv_import.errors import CellError
from integrations.csv_import.values import convert, stable_pick
from tests.integrations.csv_import.helpers import field_spec, mapping_of


def account_value(name: str, text: str, **options: object) -> object:
    options.setdefault("column", "source")
    spec = field_spec("account", name, **options)
    return convert(spec, {"source": text, "id": "A-1"}, {})


def ticket_value(name: str, row: dict[str, str], **options: object) -> object:
    spec = field_spec("ticket", name, **options)
    return convert(spec, row, {})


def test_str_strips_by_default():
    assert account_value("industry", "  EdTech ") == "EdTech"


def test_str_keeps_spaces_without_strip():
    assert account_value("industry", " EdTech ", strip=False) == " EdTech "


def test_str_longer_than_column_rejected():
    with pytest.raises(CellError) as caught:
        account_value("country", "USA")
    assert caught.value.column == "source"
    assert caught.value.value == "USA"
    assert "more than the 2 it can store" in caught.value.reason


def test_case_lower_and_upper():
    assert account_value("industry", "EdTech", case="lower") == "edtech"
    assert account_value("country", "us", case="upper") == "US"


def test_replace_substrings():
    assert account_value("industry", "a_b c", replace={"_": "-", " ": "+"}) == "a-b+c"


def test_slug():
    assert account_value("industry", "Company_0 Ltd", slug=True) == "company-0-ltd"


def test_choice_with_value_map():
    assert account_value("plan", "pro", map={"pro": "Pro"}) == "Pro"


def test_choice_outside_choices_rejected():
    with pytest.raises(CellError) as caught:
        account_value("plan", "Gold")
    assert "must be one of Basic, Pro, Enterprise" in caught.value.reason


def test_map_other_replaces_unmapped_values():
    assert account_value("is_trial", "7", map={"1": "yes"}, map_other="no") is False
    assert account_value("is_trial", "1", map={"1": "yes"}, map_other="no") is True


def test_map_without_other_keeps_unmapped_values():
    assert account_value("industry", "Retail", map={"Ed": "EdTech"}) == "Retail"


def test_pick_is_stable_sha256_choice():
    names = ["Ada", "Ben", "Carla"]
    # The index is SHA-256 of the text modulo the list length, computed here.
    index = int(hashlib.sha256(b"A-1:1:first").hexdigest(), 16) % 3
    assert account_value("industry", "A-1:1:first", pick=names) == names[index]
    assert stable_pick("A-1:1:first", tuple(names)) == names[index]


def test_default_fills_blank():
    assert account_value("seats", "", type="int", default="4") == 4


def test_required_blank_rejected():
    with pytest.raises(CellError) as caught:
        account_value("industry", "  ")
    assert "required but the value is blank" in caught.value.reason


def test_optional_blank_text_is_empty():
    assert account_value("industry", "", required=False) == ""


def test_optional_blank_nullable_is_none():
    assert account_value("renewal_date", "", type="date", required=False) is None


def test_optional_blank_uses_model_default():
    assert account_value("seats", "", type="int", required=False) == 1


@pytest.mark.parametrize(
    ("text", "expected"),
    [("TRUE", True), ("yes", True), ("1", True), ("False", False), ("n", False)],
)
def test_bool_default_words(text, expected):
    assert account_value("is_trial", text, type="bool") is expected


def test_bool_custom_words():
    assert account_value("is_trial", "Trial", type="bool", true=["trial"]) is True


def test_bool_unknown_word_rejected():
    with pytest.raises(CellError) as caught:
        account_value("is_trial", "maybe", type="bool")
    assert "true or false option" in caught.value.reason


def test_int_parses_whole_numbers():
    assert account_value("seats", "12", type="int") == 12


@pytest.mark.parametrize("text", ["1.5", "twelve", "NaN", "Infinity"])
def test_int_rejects_other_text(text):
    with pytest.raises(CellError) as caught:
        account_value("seats", text, type="int")
    assert "must be a whole number" in caught.value.reason


def test_positive_integer_field_has_minimum_zero():
    with pytest.raises(CellError) as caught:
        account_value("seats", "-1", type="int")
    assert "below its minimum 0" in caught.value.reason


def test_int_min_and_max():
    with pytest.raises(CellError, match="below its minimum 2"):
        account_value("seats", "1", type="int", min=2)
    with pytest.raises(CellError, match="above its maximum 9"):
        account_value("seats", "10", type="int", max=9)


def test_decimal_parses():
    assert account_value("mrr", "147.50", type="decimal") == Decimal("147.50")


def test_decimal_with_too_many_places_rejected():
    with pytest.raises(CellError) as caught:
        account_value("mrr", "1.005", type="decimal")
    assert "has 3 decimal places but stores 2" in caught.value.reason


def test_date_default_format():
    assert account_value("renewal_date", "2024-02-29", type="date") == date(2024, 2, 29)


def test_date_custom_format():
    value = account_value("renewal_date", "29/02/2024", type="date", format="%d/%m/%Y")
    assert value == date(2024, 2, 29)


def test_date_impossible_rejected():
    with pytest.raises(CellError) as caught:
        account_value("renewal_date", "2023-02-29", type="date")
    assert "does not match the format %Y-%m-%d" in caught.value.reason


def test_datetime_naive_takes_the_timezone():
    row = {"opened": "2024-03-10 09:30"}
    value = ticket_value(
        "opened_at",
        row,
        column="opened",
        type="datetime",
        format="%Y-%m-%d %H:%M",
        timezone="Europe/Paris",
    )
    assert value == datetime(2024, 3, 10, 9, 30, tzinfo=ZoneInfo("Europe/Paris"))
    assert value == datetime(2024, 3, 10, 8, 30, tzinfo=UTC)


def test_datetime_iso_with_offset_keeps_it():
    row = {"opened": "2024-03-10T09:30:00+02:00"}
    value = ticket_value("opened_at", row, column="opened", type="datetime")
    assert value == datetime(2024, 3, 10, 7, 30, tzinfo=UTC)


def test_datetime_time_of_day_for_dates():
    row = {"opened": "2024-03-10"}
    value = ticket_value(
        "opened_at", row, column="opened", type="datetime", format="%Y-%m-%d",
        time="12:00",
    )  # fmt: skip
    assert value == datetime(2024, 3, 10, 12, 0, tzinfo=UTC)


def test_datetime_tries_formats_in_order():
    spec = field_spec(
        "ticket", "closed_at", column="closed", type="datetime",
        format=["%Y-%m-%d %H:%M", "%Y-%m-%d"],
    )  # fmt: skip
    assert convert(spec, {"closed": "2024-03-10"}, {}) == datetime(
        2024, 3, 10, tzinfo=UTC
    )
    assert convert(spec, {"closed": "2024-03-10 3:00"}, {}) == datetime(
        2024, 3, 10, 3, 0, tzinfo=UTC
    )


def test_columns_take_first_non_blank():
    spec = field_spec(
        "ticket", "closed_at", columns=["closed", "opened"], type="datetime"
    )
    row = {"closed": " ", "opened": "2024-03-10T00:00:00+00:00"}
    assert convert(spec, row, {}) == datetime(2024, 3, 10, tzinfo=UTC)


def test_template_with_variables_and_format_spec():
    spec = field_spec("account", "industry", template="{id}-C{number:03d}")
    assert convert(spec, {"id": "A-1"}, {"number": 7}) == "A-1-C007"


def test_template_with_bad_format_spec_rejected():
    spec = field_spec("account", "industry", template="{id:03d}")
    with pytest.raises(CellError) as caught:
        convert(spec, {"id": "A-1"}, {})
    assert "template '{id:03d}' for industry failed" in caught.value.reason


def test_fixed_value():
    spec = field_spec("account", "industry", value="Retail")
    assert convert(spec, {}, {}) == "Retail"


def test_email_field_checked():
    mapping = mapping_of(
        {
            "target": "contact",
            "file": "c.csv",
            "fields": {
                "external_id": {"column": "id"},
                "account": {"column": "account", "type": "ref"},
                "email": {"column": "mail"},
                "first_name": {"column": "first"},
                "added_at": {"column": "added", "type": "datetime"},
            },
        }
    )
    email = next(spec for spec in mapping.targets[0].fields if spec.name == "email")
    with pytest.raises(CellError, match="not a valid email address"):
        convert(email, {"mail": "not an email"}, {})


def test_properties_are_json_values():
    assert account_value("properties.tier", "3", type="int") == 3
    assert account_value("properties.ratio", "0.25", type="decimal") == "0.25"
    assert account_value("properties.since", "2024-01-02", type="date") == "2024-01-02"


@pytest.mark.parametrize(
    "text",
    ["1E99999999", "1e3", "1E400", "1_000", "\u0663", "2.0", "0x10", "1 000", "--1"],
)
def test_int_accepts_only_ascii_digits(text):
    with pytest.raises(CellError) as caught:
        account_value("seats", text, type="int")
    assert caught.value.value == text
    assert "digits 0-9" in caught.value.reason


def test_int_with_sign_parses():
    assert account_value("properties.tier", "-7", type="int") == -7
    assert account_value("properties.tier", "+7", type="int") == 7


def test_int_longer_than_bound_rejected():
    text = "1" * 41
    with pytest.raises(CellError) as caught:
        account_value("properties.tier", text, type="int")
    assert "41 characters" in caught.value.reason
    assert "at most 40" in caught.value.reason


@pytest.mark.parametrize(
    "text", ["1E99999999", "1e3", "1_0.5", "\u0661.5", "1.2.3", "NaN", ".", "-"]
)
def test_decimal_accepts_only_plain_notation(text):
    with pytest.raises(CellError) as caught:
        account_value("mrr", text, type="decimal")
    assert caught.value.value == text
    assert "digits 0-9" in caught.value.reason


@pytest.mark.parametrize(
    ("text", "expected"), [("-1.5", "-1.5"), ("+2", "2"), (".5", "0.5"), ("3.", "3")]
)
def test_decimal_with_sign_and_point_parses(text, expected):
    assert account_value("mrr", text, type="decimal") == Decimal(expected)


def test_decimal_longer_than_bound_rejected():
    text = "0." + "0" * 39
    with pytest.raises(CellError) as caught:
        account_value("properties.ratio", text, type="decimal")
    assert "at most 40" in caught.value.reason


def test_int_above_the_column_range_rejected():
    # A PositiveIntegerField is a 32-bit integer column: at most 2**31 - 1.
    with pytest.raises(CellError) as caught:
        account_value("seats", "99999999999", type="int")
    assert caught.value.value == "99999999999"
    assert f"at most {2**31 - 1}" in caught.value.reason


def test_small_int_above_the_column_range_rejected():
    # A PositiveSmallIntegerField is a 16-bit integer column: at most 2**15 - 1.
    with pytest.raises(CellError) as caught:
        ticket_value("satisfaction_score", {"csat": "40000"}, column="csat")
    assert f"at most {2**15 - 1}" in caught.value.reason
    largest = {"csat": str(2**15 - 1)}
    assert ticket_value("satisfaction_score", largest, column="csat") == 2**15 - 1


def test_decimal_above_max_digits_rejected():
    # mrr is max_digits=12, decimal_places=2: at most 10 digits before the point.
    with pytest.raises(CellError) as caught:
        account_value("mrr", "12345678901234", type="decimal")
    assert caught.value.value == "12345678901234"
    assert "14 digits before the decimal point" in caught.value.reason
    assert "at most 10" in caught.value.reason
    assert account_value("mrr", "9999999999.99", type="decimal") == Decimal(
        "9999999999.99"
    )
