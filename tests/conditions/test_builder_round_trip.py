"""Every kind and field of the vocabulary survives builder -> text -> builder.

For each kind in vocabulary("contact") and vocabulary("account"), and each
field, a sample rule is built from the vocabulary entry alone, in the
stored tree form that the builder's toTree() writes. The format endpoint
writes it as text and the parse endpoint reads the text back; the tree must
come back unchanged. The same trees also go through the builder's own
model (static/conditions/model.js) under Node, when Node is installed.
"""

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from django.conf import settings
from django.urls import reverse

from conditions import Subject, vocabulary
from conditions.widgets import builder_vocabulary
from courses.models import Lesson, Module
from tests.triggers.factories import make_course

pytestmark = pytest.mark.django_db

SUBJECTS: tuple[Subject, ...] = ("contact", "account")
COURSE = "builder-basics"
LESSON = "Check your understanding"
STAGE = "adoption"  # seeded by lifecycle's data migration
MODEL_JS = Path(settings.BASE_DIR) / "static" / "conditions" / "model.js"
MODEL_CHECK = Path(__file__).with_name("builder_model_check.mjs")


@pytest.fixture
def course():
    course = make_course(slug=COURSE)
    module = Module.objects.create(course=course, title="Basics", order=1)
    Lesson.objects.create(module=module, title=LESSON, order=1)
    return course


def sample_param(name: str, param: dict[str, Any], subject: str) -> Any:
    """Return a valid, non-default value for a parameter, from its entry alone."""
    if param["type"] == "NestedCondition":
        return {"kind": "attribute", "field": "contact.role", "op": "==", "value": "a"}
    if param["written_as"] == "FieldSlot":
        return "account.renewal_date"
    references = {"course": COURSE, "lesson": LESSON, "stage": STAGE}
    if name in references:
        return references[name]
    if name == "event":
        return "Signed In"
    choices = param["choices"]
    if param["type"] == "list":
        return choices[:2] if choices else ["reports", "exports"]
    if choices:
        # The last choice, so that a default first choice is written too.
        return choices[-1]
    if param["type"] == "int":
        return _within(7, param)
    if param["type"] == "float":
        return _within(4.5, param)
    if param["type"] == "Scalar":
        return STAGE
    return "sample"


def _within(value: float, param: dict[str, Any]) -> float:
    if param["minimum"] is not None:
        value = max(value, param["minimum"])
    if param["maximum"] is not None:
        value = min(value, param["maximum"])
    return value


def kind_samples(subject: Subject) -> list[dict[str, Any]]:
    trees = []
    for kind in vocabulary(subject)["kinds"]:
        if kind["name"] == "attribute":
            continue
        tree: dict[str, Any] = {"kind": kind["name"]}
        for param in kind["params"]:
            if param["name"] == "op":
                tree["op"] = ">=" if ">=" in param["choices"] else "!="
            else:
                tree[param["name"]] = sample_param(param["name"], param, subject)
        trees.append(tree)
    return trees


FIELD_VALUES = {
    "text": "Sample",
    "number": 12.5,
    "date": "2026-03-31",
    "datetime": "2026-03-31",
    "boolean": False,
    "properties": "fintech",
}


def field_samples(subject: Subject) -> list[dict[str, Any]]:
    trees = []
    for field in vocabulary(subject)["fields"]:
        if field["path"].startswith("contact.") and subject == "account":
            continue
        path = field["path"]
        if field["type"] == "properties":
            path += ".segment"
        value = (
            field["choices"][-1] if field["choices"] else FIELD_VALUES[field["type"]]
        )
        trees.append({"kind": "attribute", "field": path, "op": "!=", "value": value})
        if "in" in field["operators"]:
            listed = field["choices"] or [value, value]
            trees.append(
                {"kind": "attribute", "field": path, "op": "in", "value": listed}
            )
    return trees


def nested_samples(subject: Subject) -> list[dict[str, Any]]:
    rule = {"kind": "attribute", "field": "account.seats", "op": ">", "value": 10}
    other = {"kind": "renewal_within", "days": 90}
    return [
        {"all": [rule, {"not": other}]},
        {"not": {"any": [rule, {"all": [other, {"not": {"all": [rule]}}]}]}},
        {"any": [{"all": [rule]}, {"not": rule}]},
    ]


def all_samples() -> list[tuple[Subject, dict[str, Any]]]:
    return [
        (subject, tree)
        for subject in SUBJECTS
        for tree in kind_samples(subject)
        + field_samples(subject)
        + nested_samples(subject)
    ]


def post(client, name, body):
    return client.post(reverse(name), json.dumps(body), content_type="application/json")


def test_samples_cover_every_kind_and_field():
    for subject in SUBJECTS:
        named = {tree.get("kind") for tree in kind_samples(subject)}
        paths = {
            tree["field"].removesuffix(".segment") for tree in field_samples(subject)
        }
        entry = vocabulary(subject)
        assert named | {"attribute"} == {kind["name"] for kind in entry["kinds"]}
        assert paths == {
            field["path"]
            for field in entry["fields"]
            if subject == "contact" or field["path"].startswith("account.")
        }


@pytest.mark.parametrize("subject", SUBJECTS)
def test_every_sample_round_trips(admin_client, course, subject):
    for _subject, tree in [item for item in all_samples() if item[0] == subject]:
        formatted = post(
            admin_client, "condition_builder_format", {"tree": tree, "subject": subject}
        )
        assert formatted.status_code == 200, (tree, formatted.json())
        text = formatted.json()["text"]

        parsed = post(
            admin_client, "condition_builder_parse", {"text": text, "subject": subject}
        )

        assert parsed.status_code == 200, (text, parsed.json())
        assert parsed.json()["tree"] == tree, text


def test_builder_model_reads_and_writes_every_sample():
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed; the builder's model is not checked")
    cases = [{"subject": subject, "tree": tree} for subject, tree in all_samples()]

    result = subprocess.run(
        [node, str(MODEL_CHECK)],
        input=json.dumps(
            {
                "model": str(MODEL_JS),
                "vocabulary": builder_vocabulary(),
                "cases": cases,
            }
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    outputs = json.loads(result.stdout)
    assert len(outputs) == len(cases)
    for case, output in zip(cases, outputs, strict=True):
        assert output == {"tree": case["tree"]}, case


@pytest.mark.parametrize(
    ("tree", "reason"),
    [
        (
            {"not": {"not": {"kind": "renewal_within", "days": 90}}},
            "negates a negation",
        ),
        (
            {
                "kind": "attribute",
                "field": "account.industry",
                "op": "in",
                "value": ["media, film", "retail"],
            },
            "contains a comma",
        ),
        (
            {
                "kind": "attribute",
                "field": "account.properties.tier",
                "op": "in",
                "value": ["gold", 3],
            },
            "mixes text, numbers",
        ),
    ],
)
def test_builder_model_falls_back_to_text(tree, reason):
    node = shutil.which("node")
    if node is None:
        pytest.skip("Node.js is not installed; the builder's model is not checked")

    result = subprocess.run(
        [node, str(MODEL_CHECK)],
        input=json.dumps(
            {
                "model": str(MODEL_JS),
                "vocabulary": builder_vocabulary(),
                "cases": [{"subject": "account", "tree": tree}],
            }
        ),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )

    [output] = json.loads(result.stdout)
    assert output["error"] == "Unsupported"
    assert reason in output["message"]
