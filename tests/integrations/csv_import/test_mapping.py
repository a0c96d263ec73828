"""Checking mapping files: each mistake raises MappingError naming it."""

from pathlib import Path
from typing import Any

import pytest

from integrations.csv_import import MAPPINGS_DIR, MappingError, load_mapping
from integrations.csv_import.mapping import parse_mapping
from tests.integrations.csv_import.helpers import REQUIRED_FIELDS, mapping_of


def account(**fields: Any) -> dict[str, Any]:
    return {
        "target": "account",
        "file": "a.csv",
        "fields": {**REQUIRED_FIELDS["account"], **fields},
    }


def rejected(*targets: dict[str, Any], **document: Any) -> str:
    with pytest.raises(MappingError) as caught:
        parse_mapping({"targets": list(targets), **document}, Path("m.toml"))
    return str(caught.value)


def test_shipped_ravenstack_mapping_loads():
    mapping = load_mapping(MAPPINGS_DIR / "ravenstack.toml")
    assert [spec.target.name for spec in mapping.targets] == [
        "account", "contact", "subscription", "usage_event", "ticket",
        "survey_response", "churn_event",
    ]  # fmt: skip
    assert mapping.on_error == "skip"


def test_missing_file(tmp_path):
    with pytest.raises(MappingError, match="not found"):
        load_mapping(tmp_path / "absent.toml")


def test_invalid_toml(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[[targets]\n")
    with pytest.raises(MappingError, match="is not valid TOML"):
        load_mapping(path)


def test_no_targets():
    assert "has no targets" in rejected()


def test_unknown_top_level_key():
    assert "unknown key 'target'" in rejected(account(), target="account")


def test_unsupported_format():
    assert "format = 2 is not supported" in rejected(account(), format=2)


def test_unknown_on_error():
    assert "on_error = 'ignore' is invalid" in rejected(account(), on_error="ignore")


def test_unknown_target():
    message = rejected({"target": "company", "file": "a.csv", "fields": {}})
    assert "target = 'company'" in message
    assert "account, contact" in message


def test_unknown_target_key():
    message = rejected({**account(), "files": "a.csv"})
    assert "targets[0] (account): unknown key 'files'" in message


def test_file_outside_the_folder():
    message = rejected({**account(), "file": "../secret.csv"})
    assert "must be relative to the data folder" in message


def test_unknown_field():
    message = rejected(account(nmae={"column": "x"}))
    assert "field nmae: unknown field of the account" in message
    assert "industry" in message


def test_unknown_field_option():
    message = rejected(account(industry={"column": "x", "lenght": 3}))
    assert "field industry: unknown key 'lenght'" in message


def test_unknown_type():
    message = rejected(account(seats={"column": "x", "type": "integer"}))
    assert "field seats: unknown type 'integer'" in message


def test_type_that_cannot_fill_the_field():
    message = rejected(account(seats={"column": "x", "type": "date"}))
    assert "field seats: type 'date' cannot fill this field; use 'int'" in message


def test_two_sources():
    message = rejected(account(industry={"column": "x", "value": "y"}))
    assert "give exactly one of column, columns, template or value" in message


def test_template_with_expression():
    message = rejected(account(industry={"template": "{row[0]}"}))
    assert "templates take plain column names only" in message


def test_bad_timezone():
    message = rejected(
        account(**{"properties.at": {"column": "x", "type": "datetime",
                                     "timezone": "Mars/Olympus"}})
    )  # fmt: skip
    assert "timezone 'Mars/Olympus' is not an IANA time zone" in message


def test_format_on_a_number():
    message = rejected(account(seats={"column": "x", "type": "int", "format": "%d"}))
    assert "format applies to date and datetime only" in message


def test_required_model_field_missing():
    fields = dict(REQUIRED_FIELDS["account"])
    del fields["signup_date"]
    message = rejected({"target": "account", "file": "a.csv", "fields": fields})
    assert "field signup_date is missing" in message


def test_key_not_unique():
    message = rejected({**account(), "key": "name"})
    assert "key = 'name' is not unique in the account" in message


def test_key_must_be_required():
    fields = {
        **REQUIRED_FIELDS["account"],
        "external_id": {"column": "id", "required": False},
    }
    message = rejected({"target": "account", "file": "a.csv", "fields": fields})
    assert "the key field external_id must be mapped and required" in message


def test_optional_field_without_blank_or_default():
    message = rejected(account(signup_date={"column": "s", "type": "date",
                                            "required": False}))  # fmt: skip
    assert "cannot be blank in the account; set required = true" in message


def test_ref_through_a_target_without_the_field():
    fields = {
        **REQUIRED_FIELDS["ticket"],
        "contact": {"column": "c", "type": "ref", "through": "churn_event"},
    }
    message = rejected({"target": "ticket", "file": "t.csv", "fields": fields})
    assert "a churn event has no contact" in message


def test_ref_match_must_be_unique():
    fields = {**REQUIRED_FIELDS["ticket"],
              "account": {"column": "a", "type": "ref", "match": "name"}}  # fmt: skip
    message = rejected({"target": "ticket", "file": "t.csv", "fields": fields})
    assert "match = 'name' is not a unique field of account" in message


def test_repeat_needs_column_and_name():
    message = rejected({**account(), "repeat": {"column": "seats"}})
    assert "repeat must be" in message


def test_columns_of_a_target():
    mapping = mapping_of(
        {
            **account(industry={"template": "{kind}-{number}"}),
            "repeat": {"column": "count", "as": "number"},
            "only_if_present": ["flag"],
        }
    )
    assert mapping.targets[0].columns() == {
        "id", "name", "signup", "kind", "count", "flag",
    }  # fmt: skip


@pytest.mark.parametrize("targets", [5, "account", {"target": "account"}])
def test_targets_of_the_wrong_type(targets):
    with pytest.raises(MappingError) as caught:
        parse_mapping({"targets": targets}, Path("m.toml"))
    assert "targets must be an array of tables" in str(caught.value)
    assert "has no targets" not in str(caught.value)


@pytest.mark.parametrize(
    "template",
    ["{name:>999999999}", "{name:.999999999}", "{name:0>101}", "{name:,>1000000}"],
)
def test_template_format_width_bounded(template):
    message = rejected(account(industry={"template": template}))
    assert "at most 100" in message
    assert repr(template) in message


def test_template_nested_format_field_rejected():
    message = rejected(account(industry={"template": "{name:>{id}}"}))
    assert "{name:>{id}}" in message


def test_template_unknown_format_spec_rejected():
    message = rejected(account(industry={"template": "{name:>5q!}"}))
    assert "format specification" in message


def test_template_small_widths_accepted():
    mapping = mapping_of(account(industry={"template": "{id:>10}-{name:_<5.3}"}))
    spec = mapping.targets[0].fields[-1]
    assert spec.template == "{id:>10}-{name:_<5.3}"


@pytest.mark.parametrize("bound", [float("nan"), float("inf"), "x"])
def test_number_bound_must_be_finite(bound):
    message = rejected(account(seats={"column": "seats", "min": bound}))
    assert "min must be a finite number" in message
