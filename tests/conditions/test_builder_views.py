"""The rule builder's parse and format endpoints in the admin."""

import json

import pytest
from django.contrib.auth.models import Permission, User
from django.urls import reverse

from conditions.formatting import format_condition
from conditions.language import parse_condition
from conditions.widgets import ConditionBuilderWidget
from lifecycle.admin import SuccessCriterionForm
from triggers.forms import TriggerForm

pytestmark = pytest.mark.django_db

RENEWAL_TEXT = "days_until(account.renewal_date) <= 90 and account.health_score > 70"
RENEWAL_TREE = {
    "all": [
        {
            "kind": "days_until",
            "field": "account.renewal_date",
            "op": "<=",
            "value": 90,
        },
        {"kind": "health_score", "op": ">", "value": 70},
    ]
}


def post(client, name, body):
    return client.post(reverse(name), json.dumps(body), content_type="application/json")


def make_staff(*permissions: str) -> User:
    user = User.objects.create_user("csm", password="secret", is_staff=True)
    for codename in permissions:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    return user


def test_parse_returns_tree(admin_client):
    response = post(
        admin_client,
        "condition_builder_parse",
        {"text": RENEWAL_TEXT, "subject": "account"},
    )

    assert response.status_code == 200
    assert response.json() == {"tree": RENEWAL_TREE}


def test_parse_error_has_position(admin_client):
    # The fault is the second '>' of ">>"; columns count from 1.
    text = "days_until(account.renewal_date) <= 90 and account.health_score >> 70"
    response = post(
        admin_client, "condition_builder_parse", {"text": text, "subject": "account"}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["line"] == 1
    assert error["column"] == text.index(">>") + 2
    assert "a number" in error["expected"]
    assert error["message"]


def test_parse_unknown_field_points_at_it(admin_client):
    text = 'account.plan == "Pro" and\n  account.helth_score > 70'
    response = post(
        admin_client, "condition_builder_parse", {"text": text, "subject": "account"}
    )

    error = response.json()["error"]
    assert response.status_code == 400
    assert (error["line"], error["column"]) == (2, 3)
    assert "account.helth_score" in error["message"]


def test_parse_reads_json_tree(admin_client):
    response = post(
        admin_client,
        "condition_builder_parse",
        {"text": json.dumps(RENEWAL_TREE), "subject": "account"},
    )

    assert response.json() == {"tree": RENEWAL_TREE}


def test_parse_rejects_contact_field_for_account(admin_client):
    response = post(
        admin_client,
        "condition_builder_parse",
        {"text": 'contact.role == "admin"', "subject": "account"},
    )

    assert response.status_code == 400
    assert "any_contact" in response.json()["error"]["message"]


def test_format_returns_canonical_text(admin_client):
    response = post(
        admin_client,
        "condition_builder_format",
        {"tree": RENEWAL_TREE, "subject": "account"},
    )

    assert response.status_code == 200
    assert response.json() == {"text": RENEWAL_TEXT}


def test_format_error_has_path(admin_client):
    tree = {
        "any": [
            {"kind": "health_score", "op": ">", "value": 70},
            {"kind": "renewal_within", "days": "ninety"},
        ]
    }
    response = post(
        admin_client, "condition_builder_format", {"tree": tree, "subject": "account"}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert error["path"] == "$.any[1]"
    assert "days='ninety'" in error["message"]


def test_format_checks_subject_type(admin_client):
    tree = {"kind": "attribute", "field": "contact.role", "op": "==", "value": "a"}
    response = post(
        admin_client, "condition_builder_format", {"tree": tree, "subject": "account"}
    )

    assert response.status_code == 400
    assert response.json()["error"]["path"] == "$"


def test_format_rejects_missing_course(admin_client):
    tree = {"kind": "course_completed", "course": "no-such-course"}
    response = post(
        admin_client, "condition_builder_format", {"tree": tree, "subject": "contact"}
    )

    assert response.status_code == 400
    assert "no-such-course" in response.json()["error"]["message"]


@pytest.mark.parametrize(
    ("body", "fragment"),
    [
        ({"text": "inactive(last 7 days)", "subject": "team"}, "subject 'team'"),
        ({"text": 12, "subject": "contact"}, '"text" must be text'),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_parse_rejects_bad_request(admin_client, body, fragment):
    response = post(admin_client, "condition_builder_parse", body)

    assert response.status_code == 400
    assert fragment in response.json()["error"]["message"]


def test_format_without_tree_is_bad_request(admin_client):
    response = post(admin_client, "condition_builder_format", {"subject": "contact"})

    assert response.status_code == 400
    assert '"tree"' in response.json()["error"]["message"]


def test_body_that_is_not_json_is_bad_request(admin_client):
    response = admin_client.post(
        reverse("condition_builder_format"), "{", content_type="application/json"
    )

    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]["message"]


def test_get_is_not_allowed(admin_client):
    response = admin_client.get(reverse("condition_builder_parse"))

    assert response.status_code == 405


@pytest.mark.parametrize(
    "name", ["condition_builder_parse", "condition_builder_format"]
)
def test_anonymous_is_sent_to_login(client, name):
    response = post(client, name, {"text": "inactive(last 7 days)", "tree": {}})

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


@pytest.mark.parametrize(
    "name", ["condition_builder_parse", "condition_builder_format"]
)
def test_staff_without_permission_is_forbidden(client, name):
    client.force_login(make_staff("view_account"))

    response = post(client, name, {"text": "inactive(last 7 days)", "tree": {}})

    assert response.status_code == 403


@pytest.mark.parametrize(
    "codename", ["view_trigger", "change_trigger", "view_successcriterion"]
)
def test_staff_with_permission_may_parse(client, codename):
    client.force_login(make_staff(codename))

    response = post(
        client,
        "condition_builder_parse",
        {"text": "inactive(last 7 days)", "subject": "contact"},
    )

    assert response.status_code == 200
    assert response.json()["tree"] == parse_condition(
        "inactive(last 7 days)", "contact"
    )


def test_non_staff_user_is_redirected(client):
    user = make_staff("change_trigger")
    user.is_staff = False
    user.save(update_fields=["is_staff"])
    client.force_login(user)

    response = post(
        client,
        "condition_builder_parse",
        {"text": "inactive(last 7 days)", "subject": "contact"},
    )

    assert response.status_code == 302


def test_csrf_token_is_required(client):
    client.handler.enforce_csrf_checks = True
    client.force_login(make_staff("change_trigger"))

    response = post(
        client,
        "condition_builder_parse",
        {"text": "inactive(last 7 days)", "subject": "contact"},
    )

    assert response.status_code == 403


def test_trigger_form_renders_builder():
    form = TriggerForm(initial={"condition": RENEWAL_TREE})

    html = str(form["condition"])

    assert 'class="condition-builder"' in html
    assert 'data-subject-field="subject_type"' in html
    assert f'data-parse-url="{reverse("condition_builder_parse")}"' in html
    # The textarea still contains the text, so the form works without JavaScript.
    assert f"{format_condition(RENEWAL_TREE)}</textarea>" in html.replace(
        "&lt;", "<"
    ).replace("&gt;", ">")
    assert 'type="module"' in str(form.media)


def test_criterion_form_builder_is_over_accounts():
    html = str(SuccessCriterionForm()["condition"])

    assert 'data-subject="account"' in html
    assert '"subjects": {"contact"' in html


def test_widget_needs_one_subject_source():
    with pytest.raises(ValueError, match="either subject or subject_field"):
        ConditionBuilderWidget()
    with pytest.raises(ValueError, match="either subject or subject_field"):
        ConditionBuilderWidget(subject="account", subject_field="subject_type")


def test_trigger_page_loads_builder_script(admin_client):
    response = admin_client.get(reverse("admin:triggers_trigger_add"))

    page = response.content.decode()
    assert 'src="/static/conditions/builder.js" type="module"' in page
    assert "/static/conditions/builder.css" in page


def test_stage_page_loads_builder_for_criteria(admin_client):
    response = admin_client.get(reverse("admin:lifecycle_stage_add"))

    page = response.content.decode()
    assert "conditions/builder.js" in page
    assert 'class="condition-builder"' in page


def test_parse_rejects_deep_json_text(admin_client):
    text = '{"not":' * 100000 + "1" + "}" * 100000

    response = post(
        admin_client, "condition_builder_parse", {"text": text, "subject": "account"}
    )

    assert response.status_code == 400
    error = response.json()["error"]
    assert "nests too deeply" in error["message"]
    assert error["line"] == 1


def test_parse_rejects_deep_not_text(admin_client):
    text = "not " * 500 + "contact_count >= 3"

    response = post(
        admin_client, "condition_builder_parse", {"text": text, "subject": "account"}
    )

    assert response.status_code == 400
    assert "nest at most 20 groups deep" in response.json()["error"]["message"]


def test_format_rejects_nan_value(admin_client):
    body = '{"tree": {"kind": "health_score", "op": ">", "value": NaN}, '
    body += '"subject": "account"}'

    response = admin_client.post(
        reverse("condition_builder_format"), body, content_type="application/json"
    )

    assert response.status_code == 400
    assert response.json()["error"] == {
        "message": "value=nan must be a finite number",
        "path": "$",
    }


def test_parse_rejects_infinity_in_json_text(admin_client):
    text = '{"kind": "health_score", "op": ">", "value": Infinity}'

    response = post(
        admin_client, "condition_builder_parse", {"text": text, "subject": "account"}
    )

    assert response.status_code == 400
    assert "finite number" in response.json()["error"]["message"]


def test_format_writes_whole_float_days_as_integer(admin_client):
    tree = {"kind": "event_count", "days": 10.0, "op": "==", "value": 0}

    response = post(
        admin_client, "condition_builder_format", {"tree": tree, "subject": "contact"}
    )

    assert response.json() == {"text": "count(event, last 10 days) == 0"}


@pytest.mark.parametrize(
    "name", ["condition_builder_parse", "condition_builder_format"]
)
def test_oversized_body_gets_json_error(admin_client, settings, name):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    body = {"text": "contact_count > 1 and " * 100, "subject": "account"}

    response = post(admin_client, name, body)

    assert response.status_code == 413
    assert response["Content-Type"] == "application/json"
    assert "1000 bytes" in response.json()["error"]["message"]
