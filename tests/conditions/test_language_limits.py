"""Limits and edge cases of the condition language: depth, odd values, messages."""

import math
from typing import Any

import pytest

from conditions import (
    ConditionError,
    ConditionSyntaxError,
    format_condition,
    kinds,
    parse_condition,
    validate,
)
from conditions.language import load_json_tree
from conditions.registry import MAX_DEPTH
from tests.conditions.test_language import sample_trees


def parse(text: str, subject: str = "account") -> dict[str, Any]:
    return parse_condition(text, subject, check_references=False)  # type: ignore[arg-type]


def error_of(text: str, subject: str = "account") -> ConditionSyntaxError:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse(text, subject)
    return caught.value


# -- nesting depth -----------------------------------------------------------------

DEPTH_MESSAGE = f"conditions nest at most {MAX_DEPTH} groups deep"


def test_deep_not_chain_rejected():
    text = "not " * 500 + "contact_count >= 3"

    error = error_of(text)

    assert DEPTH_MESSAGE in error.message
    # The root is at depth 0, so the first node too deep is the
    # (MAX_DEPTH + 2)th "not", each of which takes 4 characters.
    assert (error.line, error.column) == (1, 4 * (MAX_DEPTH + 1) + 1)


def test_deep_all_groups_rejected():
    text = "all(" * 1000 + "contact_count >= 3" + ")" * 1000

    error = error_of(text)

    assert DEPTH_MESSAGE in error.message
    assert (error.line, error.column) == (1, 4 * (MAX_DEPTH + 1) + 1)


def test_depth_limit_is_inclusive():
    leaf = "contact_count >= 3"

    assert parse("not " * MAX_DEPTH + leaf)
    error = error_of("not " * (MAX_DEPTH + 1) + leaf)
    assert DEPTH_MESSAGE in error.message
    assert error.column == 4 * (MAX_DEPTH + 1) + 1


def test_deep_parentheses_still_parse():
    tree = parse("(" * 2000 + "contact_count >= 3" + ")" * 2000)

    assert tree == {"kind": "contact_count", "op": ">=", "value": 3}


def test_deep_json_text_rejected_before_decoding():
    text = '{"not":' * 3000 + "1" + "}" * 3000

    with pytest.raises(ConditionSyntaxError) as caught:
        load_json_tree(text)

    assert "nests too deeply" in caught.value.message
    assert caught.value.line == 1
    assert caught.value.column > 1


def test_json_brackets_inside_text_values_do_not_count():
    text = '{"kind": "attribute", "field": "account.properties.x", "op": "==", '
    text += '"value": "' + "{[" * 500 + '"}'

    tree = load_json_tree(text)

    assert tree["value"] == "{[" * 500


def test_json_tree_at_max_depth_loads():
    tree: dict[str, Any] = {"kind": "contact_count", "op": ">=", "value": 3}
    for _ in range(MAX_DEPTH // 2):
        tree = {"all": [{"not": tree}]}
    import json

    assert load_json_tree(json.dumps(tree)) == tree


# -- numbers that are not finite -------------------------------------------------


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_format_rejects_non_finite_number(number):
    tree = {"kind": "health_score", "op": ">", "value": number}

    with pytest.raises(ConditionError) as caught:
        format_condition(tree)

    assert f"value={number!r} must be a finite number" in caught.value.message


@pytest.mark.parametrize("number", [math.nan, math.inf])
def test_validate_rejects_non_finite_number(number):
    trees = [
        {"kind": "event_count", "days": number, "op": "==", "value": 0},
        {
            "kind": "survey_average",
            "survey": "csat",
            "days": 7,
            "op": ">",
            "value": number,
        },
        {
            "kind": "attribute",
            "field": "account.properties.score",
            "op": "in",
            "value": [1, number],
        },
    ]

    for tree in trees:
        with pytest.raises(ConditionError) as caught:
            validate(tree, "account")
        assert "must be a finite number" in caught.value.message, tree


def test_json_text_rejects_nan_constant():
    with pytest.raises(ConditionSyntaxError) as caught:
        load_json_tree('{"kind": "health_score", "op": ">", "value": NaN}')

    assert "NaN" in caught.value.message
    assert "finite number" in caught.value.message


# -- characters PostgreSQL cannot store ------------------------------------------


@pytest.mark.parametrize(
    "text, fragment",
    [
        ('account.properties.x == "\\u0000"', '"\\u0000"'),
        ('account.properties."\\u0000" == "x"', '"\\u0000"'),
        ('count(event "a\\u0000b", last 10 days) == 0', '"a\\u0000b"'),
        ('account.properties.x == "\\ud800"', '"\\ud800"'),
        ('account.plan in ["Pro", "\\udfff"]', '"\\udfff"'),
    ],
)
def test_unstorable_characters_rejected_at_string(text, fragment):
    error = error_of(text)

    assert error.column == text.index(fragment) + 1
    assert "cannot contain" in error.message


def test_raw_nul_character_rejected():
    text = 'account.properties.x == "a\x00b"'

    error = error_of(text)

    assert error.column == text.index('"') + 1
    assert "NUL" in error.message


def test_validate_rejects_unstorable_characters():
    trees = [
        {
            "kind": "attribute",
            "field": "account.properties.x",
            "op": "==",
            "value": "\x00",
        },
        {
            "kind": "attribute",
            "field": "account.properties.\ud800",
            "op": "==",
            "value": 1,
        },
        {"kind": "event_count", "event": "\ud83d", "days": 7, "op": ">", "value": 0},
        {"kind": "plan", "plans": ["Pro\x00"]},
    ]

    for tree in trees:
        with pytest.raises(ConditionError) as caught:
            validate(tree, "account")
        assert "cannot contain" in caught.value.message, tree


def test_documented_escapes_round_trip():
    value = 'quote " backslash \\ slash / tab \t newline \n return \r \x08 \x0c é ✓ 😀'
    tree = {
        "kind": "attribute",
        "field": "account.properties.x",
        "op": "==",
        "value": value,
    }

    text = format_condition(tree)

    assert parse(text) == tree
    assert parse('account.properties.x == "\\u00e9\\/"')["value"] == "é/"


def test_unknown_escape_lists_accepted_ones():
    text = 'account.properties.x == "a\\qb"'

    error = error_of(text)

    assert error.column == text.index('"') + 1
    assert "\\uXXXX" in error.message


# -- positions of errors about one argument --------------------------------------


def test_keyword_error_points_at_argument():
    # The example of docs/conditions.md.
    text = 'tickets(last 30 days,\n  priority="critical") >= 1'

    error = error_of(text)

    assert (error.line, error.column) == (2, 3)
    assert "priority='critical' is not one of" in error.message


def test_window_error_points_at_window():
    text = "count(event, last 0 days) == 0"

    error = error_of(text)

    assert error.column == text.index("last") + 1


def test_survey_bound_error_points_at_keyword():
    text = "survey_answered(nps, last 1 day, min 11, max 10)"

    error = error_of(text)

    assert error.column == text.index("min") + 1
    assert "min=11 is above the maximum" in error.message


def test_compared_value_error_points_at_value():
    text = "contact_count >= 1 and\n account.health_score > 170"

    error = error_of(text)

    assert (error.line, error.column) == (2, text.split("\n")[1].index("170") + 1)


def test_attribute_value_error_points_at_value():
    text = 'account.seats > "ten"'

    error = error_of(text)

    assert error.column == text.index('"ten"') + 1


# -- conditions that can never match ---------------------------------------------


@pytest.mark.parametrize(
    "text, fragment, message",
    [
        (
            "survey_answered(nps, last 1 day, min 9, max 3)",
            "min 9",
            "min=9 is above max=3",
        ),
        ("account.plan in []", "[]", "'in' needs at least one value"),
        ("account.stage in []", "[]", "'in' needs at least one value"),
        ("plan_in([])", "[]", "plans needs at least one value"),
        ("subscribed_to([])", "[]", "plans needs at least one value"),
        (
            "date_within(account.renewal_date, last 0 days)",
            "last",
            "days=0 is below the minimum 1",
        ),
        ('count(event "", last 10 days) == 0', 'event ""', "event name is empty"),
        ('inactive(event "  ", last 10 days)', 'event "  "', "event name is empty"),
        ('account.properties."" == "x"', "account", "property name is empty"),
    ],
)
def test_never_matching_condition_rejected(text, fragment, message):
    error = error_of(text)

    assert message in error.message
    assert error.column == text.index(fragment) + 1


def test_zero_length_windows_consistent():
    # "last 0 days" is the empty interval (as_of, as_of]; every window over
    # the last N days rejects it, and "next 0 days" is today, so it stays.
    assert parse("date_within(account.renewal_date, next 0 days)")["days"] == 0
    assert parse("renewal_within(next 0 days)")["days"] == 0
    for text in (
        "inactive(last 0 days)",
        "date_within(account.kickoff_date, last 0 days)",
        "health_change(last 0 days) <= -10",
    ):
        assert "below the minimum 1" in error_of(text).message, text


def test_never_matching_trees_rejected():
    trees = [
        {"kind": "survey_score", "survey": "nps", "min": 9, "max": 3, "days": 1},
        {"kind": "attribute", "field": "account.plan", "op": "in", "value": []},
        {"kind": "plan", "plans": []},
        {
            "kind": "date_within",
            "field": "account.renewal_date",
            "days": 0,
            "direction": "last",
        },
        {"kind": "event_count", "event": "", "days": 7, "op": ">", "value": 0},
        {"kind": "attribute", "field": "account.properties.", "op": "==", "value": 1},
    ]

    for tree in trees:
        with pytest.raises(ConditionError):
            validate(tree, "account")


def test_survey_range_of_one_score_accepted():
    tree = parse("survey_answered(nps, last 1 day, min 9, max 9)")

    assert (tree["min"], tree["max"]) == (9, 9)


# -- syntax messages ---------------------------------------------------------------


def test_unclosed_text_says_so():
    text = 'account.name == "unterminated'

    error = error_of(text)

    assert error.message.startswith("a text value is not closed")
    assert 'add the closing "' in error.message
    assert error.column == text.index('"') + 1


@pytest.mark.parametrize(
    "text, written",
    [
        ("account.health_score > 1e10", "10000000000"),
        ("account.health_score > 1E+2", "100"),
        ("average_score(csat, last 9 days) >= 4.5e-1", "0.45"),
    ],
)
def test_exponent_gets_number_hint(text, written):
    error = error_of(text)

    assert "numbers are written without an exponent" in error.message
    assert f"write {written}" in error.message
    assert "separate arguments" not in error.message


def test_trailing_point_gets_number_hint():
    error = error_of("account.health_score > 70.")

    assert "write 70 or 70.5" in error.message


def test_unknown_subject_named():
    with pytest.raises(ConditionError) as caught:
        parse('account.plan == "Pro"', "lead")

    assert "subject 'lead' is invalid" in caught.value.message
    assert '"contact" or "account"' in caught.value.message
    with pytest.raises(ConditionError) as caught:
        validate({"kind": "contact_count", "op": ">", "value": 1}, "lead")  # type: ignore[arg-type]
    assert '"contact" or "account"' in caught.value.message


# -- whole numbers written as floats ---------------------------------------------


def floated(value: Any) -> Any:
    """Turn every whole number in a tree into a float, as JSON tools may."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return float(value)
    if isinstance(value, dict):
        return {key: floated(item) for key, item in value.items()}
    if isinstance(value, list):
        return [floated(item) for item in value]
    return value


@pytest.mark.parametrize("name", sorted(kinds()))
def test_float_whole_numbers_format_to_parseable_text(name):
    kind = kinds()[name]

    for tree in sample_trees(kind):
        loose = floated(tree)
        subject = kind.subjects[0]

        text = format_condition(loose)

        assert parse(text, subject) == loose, text
        assert ".0 day" not in text
