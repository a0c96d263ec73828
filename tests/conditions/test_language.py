"""The text language of conditions: parsing, errors with positions, round trips."""

from typing import Any

import pytest

from conditions import (
    ConditionError,
    ConditionSyntaxError,
    NestedCondition,
    Scalar,
    format_condition,
    kinds,
    parse_condition,
    vocabulary,
)
from conditions.fields import DATE_TYPES, fields


def parse(text: str, subject: str = "account") -> dict[str, Any]:
    return parse_condition(text, subject, check_references=False)  # type: ignore[arg-type]


# -- constructs ----------------------------------------------------------------

CONSTRUCTS = [
    (
        "days_until(account.renewal_date) <= 90 and account.health_score > 70",
        {
            "all": [
                {
                    "kind": "days_until",
                    "field": "account.renewal_date",
                    "op": "<=",
                    "value": 90,
                },
                {"kind": "health_score", "op": ">", "value": 70},
            ]
        },
    ),
    (
        'count(event "Signed In", last 10 days) == 0',
        {
            "kind": "event_count",
            "event": "Signed In",
            "days": 10,
            "op": "==",
            "value": 0,
        },
    ),
    (
        'distinct(event "Feature Used".feature, last 7 days) >= 3',
        {
            "kind": "distinct_features",
            "event": "Feature Used",
            "days": 7,
            "op": ">=",
            "value": 3,
        },
    ),
    (
        'account.properties.industry == "fintech"',
        {
            "kind": "attribute",
            "field": "account.properties.industry",
            "op": "==",
            "value": "fintech",
        },
    ),
    (
        'account.properties."Annual revenue" >= 1000000',
        {
            "kind": "attribute",
            "field": "account.properties.Annual revenue",
            "op": ">=",
            "value": 1000000,
        },
    ),
    (
        'account.plan in ["Pro", "Enterprise"]',
        {
            "kind": "attribute",
            "field": "account.plan",
            "op": "in",
            "value": ["Pro", "Enterprise"],
        },
    ),
    (
        "days_since(account.kickoff_date) > 30",
        {"kind": "days_since", "field": "account.kickoff_date", "op": ">", "value": 30},
    ),
    (
        "date_within(account.renewal_date, next 60 days)",
        {
            "kind": "date_within",
            "field": "account.renewal_date",
            "days": 60,
            "direction": "next",
        },
    ),
    ("inactive(last 10 days)", {"kind": "inactivity", "days": 10}),
    (
        'first_seen(event "Report Created", last 7 days)',
        {"kind": "first_event", "event": "Report Created", "days": 7},
    ),
    (
        "first_usage(within 7 days of kickoff)",
        {"kind": "first_usage_within", "days": 7, "after": "kickoff"},
    ),
    (
        'any_contact(contact.role == "admin")',
        {
            "kind": "any_contact",
            "where": {
                "kind": "attribute",
                "field": "contact.role",
                "op": "==",
                "value": "admin",
            },
        },
    ),
    (
        "contacts(contact.is_champion) >= 3",
        {
            "kind": "contacts_matching",
            "where": {
                "kind": "attribute",
                "field": "contact.is_champion",
                "op": "==",
                "value": True,
            },
            "op": ">=",
            "value": 3,
        },
    ),
    (
        "health_change(last 30 days) <= -10",
        {"kind": "health_change", "days": 30, "op": "<=", "value": -10},
    ),
    (
        "contacts_added(last 7 days) >= 2",
        {"kind": "contacts_added", "days": 7, "op": ">=", "value": 2},
    ),
    (
        'tickets(last 30 days, priority ["high", "urgent"], topic "billing", '
        'status "open") >= 1',
        {
            "kind": "tickets",
            "days": 30,
            "priority": ["high", "urgent"],
            "topic": ["billing"],
            "status": "open",
            "op": ">=",
            "value": 1,
        },
    ),
    (
        "latest_score(nps) >= 9",
        {"kind": "survey_latest", "survey": "nps", "op": ">=", "value": 9},
    ),
    (
        "average_score(csat, last 90 days) < 3.5",
        {
            "kind": "survey_average",
            "survey": "csat",
            "days": 90,
            "op": "<",
            "value": 3.5,
        },
    ),
    (
        'any_contact(enrolled("getting-started"))',
        {
            "kind": "any_contact",
            "where": {"kind": "course_enrolled", "course": "getting-started"},
        },
    ),
    (
        'contacts(completed("getting-started")) >= 3',
        {
            "kind": "contacts_matching",
            "where": {"kind": "course_completed", "course": "getting-started"},
            "op": ">=",
            "value": 3,
        },
    ),
    (
        'any_contact(not_started("getting-started", 7 days))',
        {
            "kind": "any_contact",
            "where": {
                "kind": "course_not_started",
                "course": "getting-started",
                "days": 7,
            },
        },
    ),
    (
        'any_contact(quiz_score("getting-started", lesson "Final quiz") >= 80)',
        {
            "kind": "any_contact",
            "where": {
                "kind": "quiz_score",
                "course": "getting-started",
                "lesson": "Final quiz",
                "op": ">=",
                "value": 80,
            },
        },
    ),
    (
        'account.stage == "adoption" and days_in_stage >= 30',
        {
            "all": [
                {"kind": "lifecycle_stage", "op": "==", "value": "adoption"},
                {"kind": "days_in_stage", "op": ">=", "value": 30},
            ]
        },
    ),
    (
        "not (inactive(last 10 days) or contact_count < 3) and renewal_within(next "
        "90 days)",
        {
            "all": [
                {
                    "not": {
                        "any": [
                            {"kind": "inactivity", "days": 10},
                            {"kind": "contact_count", "op": "<", "value": 3},
                        ]
                    }
                },
                {"kind": "renewal_within", "days": 90},
            ]
        },
    ),
]


@pytest.mark.parametrize(("text", "tree"), CONSTRUCTS)
def test_construct_parses_to_tree(text, tree):
    assert parse(text) == tree


@pytest.mark.parametrize(("text", "tree"), CONSTRUCTS)
def test_construct_formats_back(text, tree):
    assert parse(format_condition(tree)) == tree


def test_and_binds_tighter_than_or():
    tree = parse("contact_count > 1 or contact_count > 2 and contact_count > 3")

    assert tree == {
        "any": [
            {"kind": "contact_count", "op": ">", "value": 1},
            {
                "all": [
                    {"kind": "contact_count", "op": ">", "value": 2},
                    {"kind": "contact_count", "op": ">", "value": 3},
                ]
            },
        ]
    }


def test_parentheses_keep_nested_group():
    flat = parse("contact_count > 1 and contact_count > 2 and contact_count > 3")
    nested = parse("(contact_count > 1 and contact_count > 2) and contact_count > 3")

    assert len(flat["all"]) == 3
    assert len(nested["all"]) == 2
    assert nested["all"][0] == {"all": flat["all"][:2]}


def test_newlines_and_spaces_ignored():
    text = "inactive(\n  last 10 days\n)\n  and\ncontact_count>=3"

    assert parse(text) == {
        "all": [
            {"kind": "inactivity", "days": 10},
            {"kind": "contact_count", "op": ">=", "value": 3},
        ]
    }


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        ('tickets(priority = "high") >= 1', 'tickets(priority "high") >= 1'),
        ("contact_count()   >=3", "contact_count >= 3"),
        ("(inactive(last 1 days))", "inactive(last 1 day)"),
        ("count(last 7 days) > 2", "count(event, last 7 days) > 2"),
        (
            "contact_count > 1 or contact_count > 2 and contact_count > 3",
            "contact_count > 1 or (contact_count > 2 and contact_count > 3)",
        ),
        ("all(contact_count > 1)", "all(contact_count > 1)"),
        ("not not contact_count > 1", "not not contact_count > 1"),
        ('survey_answered("nps", last 1 days, min 9, max 10)', None),
    ],
)
def test_format_gives_canonical_text(text, canonical):
    formatted = format_condition(parse(text))

    if canonical is not None:
        assert formatted == canonical
    assert format_condition(parse(formatted)) == formatted


# -- errors --------------------------------------------------------------------


def error_of(text: str, subject: str = "account") -> ConditionSyntaxError:
    with pytest.raises(ConditionSyntaxError) as caught:
        parse(text, subject)
    return caught.value


def test_error_names_expected_number():
    text = 'count(event "Signed In", last ten days) == 0'

    error = error_of(text)

    assert (error.line, error.column) == (1, text.index("ten") + 1)
    assert error.expected == ("a number",)
    assert "expected a number, found 'ten'" in str(error)


def test_error_on_second_line_counts_columns_from_line_start():
    text = "inactive(last 10 days)\nand count(event, last 7 days) >= @"

    error = error_of(text)

    second_line = text.split("\n")[1]
    assert error.line == 2
    assert error.column == second_line.index("@") + 1
    assert "a number" in error.expected


def test_error_at_end_of_text():
    text = "inactive(last 10 days"

    error = error_of(text)

    assert (error.line, error.column) == (1, len(text) + 1)
    assert error.expected == ("')'", "','")
    assert "ends too early" in str(error)


def test_single_equals_suggests_double():
    text = 'account.plan = "Pro"'

    error = error_of(text)

    assert error.column == text.index("=") + 1
    assert "a comparison such as >= or ==" in error.expected
    assert "write == to compare" in str(error)


def test_missing_comparison_on_number():
    error = error_of("count(event, last 7 days)")

    assert error.column == 1
    assert "count is a number; compare it" in str(error)


def test_unknown_function_lists_known():
    text = "inactive(last 10 days) and inactiv(last 3 days)"

    error = error_of(text)

    assert error.column == text.index("inactiv(") + 1
    assert "unknown function 'inactiv'; did you mean inactive?" in str(error)
    assert "Known functions: " in str(error)
    assert "first_seen" in str(error)


def test_unknown_field_lists_known():
    text = 'contact_count > 1 or account.plann == "Pro"'

    error = error_of(text)

    assert error.column == text.index("account.plann") + 1
    assert "did you mean account.plan" in str(error)
    assert "account.renewal_date" in str(error)


def test_invalid_parameter_points_at_argument():
    text = 'contact_count > 1 and\n  tickets(priority "critical") >= 1'

    error = error_of(text)

    assert (error.line, error.column) == (2, text.split("\n")[1].index("priority") + 1)
    assert "priority='critical' is not one of" in str(error)


def test_contact_field_rejected_for_account():
    error = error_of('contact.role == "admin"')

    assert "write it inside any_contact(...)" in str(error)


def test_contact_field_accepted_inside_roll_up():
    tree = parse('any_contact(contact.role == "admin")')

    assert tree["where"]["field"] == "contact.role"


def test_wrong_window_direction():
    text = "renewal_within(last 60 days)"

    error = error_of(text)

    assert error.column == text.index("last") + 1
    assert "write next 60 days" in str(error)


def test_value_type_checked_against_field():
    error = error_of('account.seats > "ten"')

    assert "account.seats is a number" in str(error)


def test_empty_text_rejected():
    error = error_of("   ")

    assert "the condition is empty" in str(error)


def test_syntax_error_is_condition_error():
    with pytest.raises(ConditionError):
        parse("inactive(")


# -- round trip over every registered kind ---------------------------------------


def sample_value(kind_name: str, name: str, param: Any) -> Any:
    """Build a valid value for one parameter of a kind."""
    if param.type is NestedCondition:
        return {"kind": "contact_added_within", "days": 1}
    if name == "field":
        if kind_name == "attribute":
            return "account.properties.industry"
        return next(path for path, f in fields().items() if f.type in DATE_TYPES)
    if param.type is Scalar:
        return "adoption" if kind_name == "lifecycle_stage" else "fintech"
    if param.choices is not None:
        first = param.choices[0]
        if name == "op" and "==" in param.choices:
            first = "=="
        return [first] if param.type is list else first
    if param.type is list:
        return ["reports", "exports"]
    if param.type is bool:
        return True
    if param.type in (int, float):
        low = param.minimum if param.minimum is not None else 0
        value = max(low, 2)
        if param.maximum is not None:
            value = min(value, param.maximum)
        return param.type(value) if param.type is int else value + 0.5
    return "sample text"


def sample_trees(kind) -> list[dict[str, Any]]:
    """Return the kind with required parameters only, and with all of them."""
    full = {"kind": kind.name}
    required = {"kind": kind.name}
    for name, param in kind.params.items():
        value = sample_value(kind.name, name, param)
        full[name] = value
        if param.required:
            required[name] = value
    return [required, full]


@pytest.mark.parametrize("name", sorted(kinds()))
def test_every_kind_round_trips(name):
    kind = kinds()[name]
    assert kind.text is not None or name == "attribute", f"{name} has no text form"

    for tree in sample_trees(kind):
        text = format_condition(tree)
        assert parse(text, kind.subjects[0]) == tree, text
        assert format_condition(parse(text, kind.subjects[0])) == text


def test_groups_round_trip():
    leaf = {"kind": "contact_count", "op": ">=", "value": 3}
    other = {"kind": "inactivity", "days": 10}
    trees = [
        {"all": [leaf]},
        {"any": [leaf]},
        {"not": {"all": [leaf, other]}},
        {"all": [{"any": [leaf, other]}, {"not": {"not": other}}]},
        {"any": [{"all": [leaf, other]}, {"all": [{"any": [other]}, leaf]}]},
        {"all": [{"all": [leaf, other]}, other]},
    ]

    for tree in trees:
        assert parse(format_condition(tree)) == tree


def test_property_key_needing_quotes_round_trips():
    for key in ("Annual revenue", "and", "a.b", 'say "hi"'):
        tree = {
            "kind": "attribute",
            "field": f"account.properties.{key}",
            "op": "==",
            "value": 'x "y" \\ z',
        }

        assert parse(format_condition(tree)) == tree


# -- vocabulary ----------------------------------------------------------------


def test_vocabulary_lists_kinds_for_subject():
    import json

    contact_words = vocabulary("contact")
    account_words = vocabulary("account")

    names = {entry["name"] for entry in contact_words["kinds"]}
    assert "contact_added_within" in names
    assert "contact_added_within" not in {k["name"] for k in account_words["kinds"]}
    assert json.loads(json.dumps(contact_words)) == contact_words
    count = next(k for k in contact_words["kinds"] if k["name"] == "event_count")
    assert count["text"] == "count"
    assert count["compared"] is True
    written = {param["name"]: param["written_as"] for param in count["params"]}
    assert written["days"] == "WindowSlot"
    assert written["op"] == "comparison"
    assert written["scope"] == "keyword"
    paths = {entry["path"] for entry in account_words["fields"]}
    assert "account.renewal_date" in paths
    assert "contact.role" not in paths
