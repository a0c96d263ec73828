"""The trigger form edits the condition as text in the condition language."""

import pytest
from django.contrib.auth.models import Permission
from django.urls import reverse

from tests.triggers.factories import make_course, make_trigger
from triggers.models import Trigger

pytestmark = pytest.mark.django_db


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user(
        username="csm", password="not-used", is_staff=True
    )
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="triggers",
            codename__in=["add_trigger", "change_trigger", "view_trigger"],
        )
    )
    client.force_login(user)
    return client


def management_fields(client, url):
    """Return the management fields of the page's inlines, with no rows."""
    page = client.get(url)
    data = {}
    for inline in page.context["inline_admin_formsets"]:
        prefix = inline.formset.prefix
        data[f"{prefix}-TOTAL_FORMS"] = "0"
        data[f"{prefix}-INITIAL_FORMS"] = str(inline.formset.initial_form_count())
    return data


def trigger_form(client, url, condition, subject_type="account", **fields):
    data = {
        **management_fields(client, url),
        "name": "Renewal push",
        "slug": "renewal-push",
        "subject_type": subject_type,
        "condition": condition,
        "occurrence": "once",
        "recipients": "champions",
        "holdout_percent": "0",
    }
    data.update(fields)
    return data


def test_text_condition_saved_as_tree(staff_client):
    url = reverse("admin:triggers_trigger_add")
    text = "days_until(account.renewal_date) <= 90 and account.health_score > 70"

    response = staff_client.post(url, trigger_form(staff_client, url, text))

    assert response.status_code == 302
    assert Trigger.objects.get().condition == {
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


def test_syntax_error_shows_line_and_column(staff_client):
    url = reverse("admin:triggers_trigger_add")
    text = 'inactive(last 10 days)\nand count(event "Signed In", last ten days) == 0'

    response = staff_client.post(url, trigger_form(staff_client, url, text, "contact"))

    second_line = text.split("\n")[1]
    column = second_line.index("ten") + 1
    page = response.content.decode()
    assert response.status_code == 200
    assert f"Line 2, column {column}: expected a number, found" in page
    assert not Trigger.objects.exists()
    # The text is shown again as typed, for the CSM to fix.
    assert "last ten days" in page


def test_unknown_field_error_lists_fields(staff_client):
    url = reverse("admin:triggers_trigger_add")

    response = staff_client.post(
        url, trigger_form(staff_client, url, 'account.plann == "Pro"')
    )

    page = response.content.decode()
    assert "Line 1, column 1: unknown field" in page
    assert "did you mean account.plan" in page
    assert page.count("unknown field") == 1
    assert not Trigger.objects.exists()


def test_missing_course_rejected(staff_client):
    url = reverse("admin:triggers_trigger_add")
    data = trigger_form(
        staff_client, url, 'completed("no-such-course")', subject_type="contact"
    )

    response = staff_client.post(url, data)

    assert response.status_code == 200
    assert "course &#x27;no-such-course&#x27; does not exist" in (
        response.content.decode()
    )
    assert not Trigger.objects.exists()


def test_existing_course_accepted(staff_client):
    make_course(slug="getting-started")
    url = reverse("admin:triggers_trigger_add")
    data = trigger_form(
        staff_client, url, 'not completed("getting-started")', subject_type="contact"
    )

    response = staff_client.post(url, data)

    assert response.status_code == 302
    assert Trigger.objects.get().condition == {
        "not": {"kind": "course_completed", "course": "getting-started"}
    }


def test_change_form_shows_condition_as_text(staff_client):
    trigger = make_trigger(
        {
            "kind": "event_count",
            "event": "Signed In",
            "days": 10,
            "op": "==",
            "value": 0,
        }
    )

    response = staff_client.get(
        reverse("admin:triggers_trigger_change", args=[trigger.pk])
    )

    assert "count(event &quot;Signed In&quot;, last 10 days) == 0" in (
        response.content.decode()
    )


def test_change_form_edits_text(staff_client):
    trigger = make_trigger({"kind": "inactivity", "days": 10}, is_active=False)
    url = reverse("admin:triggers_trigger_change", args=[trigger.pk])
    data = trigger_form(
        staff_client,
        url,
        'inactive(event "Signed In", last 14 days)',
        subject_type="contact",
        name=trigger.name,
        slug=trigger.slug,
    )

    response = staff_client.post(url, data)

    assert response.status_code == 302
    trigger.refresh_from_db()
    assert trigger.condition == {"kind": "inactivity", "event": "Signed In", "days": 14}


def test_subject_type_decides_fields(staff_client):
    url = reverse("admin:triggers_trigger_add")
    data = trigger_form(staff_client, url, 'contact.role == "admin"')

    response = staff_client.post(url, data)

    assert "write it inside any_contact(...)" in response.content.decode()
    assert not Trigger.objects.exists()


def test_reference_lists_text_forms_and_fields(staff_client):
    response = staff_client.get(reverse("admin:triggers_trigger_add"))

    page = response.content.decode()
    assert "count(event &quot;…&quot;, last N days) &gt;= N" in page
    assert "account.renewal_date" in page
    assert "Condition fields" in page


def test_disabled_reason_shown_on_change_form(staff_client):
    trigger = make_trigger({"kind": "inactivity", "days": 10}, is_active=False)
    Trigger.objects.filter(pk=trigger.pk).update(
        disabled_reason="Its condition names something that no longer exists"
    )

    response = staff_client.get(
        reverse("admin:triggers_trigger_change", args=[trigger.pk])
    )

    assert "Its condition names something that no longer exists" in (
        response.content.decode()
    )


@pytest.mark.parametrize(
    "condition, message",
    [
        ('count(event "Signed In", last ten days) == 0', "expected a number, found"),
        ("", "This field is required."),
        ("inactive(last 10 days) and " * 400 + "contact_count > 1", "characters long"),
    ],
)
def test_condition_error_shown_alone(staff_client, condition, message):
    url = reverse("admin:triggers_trigger_add")

    response = staff_client.post(
        url, trigger_form(staff_client, url, condition, "contact")
    )

    page = response.content.decode()
    assert message in page
    assert "expected an object" not in page
    assert not Trigger.objects.exists()


@pytest.mark.parametrize(
    "condition, message",
    [
        ('{"not":' * 3000 + "1" + "}" * 3000, "nests too deeply"),
        ('{"kind": "contact_count", "op": ">", "value": NaN}', "finite number"),
        (
            '{"kind": "attribute", "field": "account.plan", "op": "==", '
            '"value": "\\u0000"}',
            "cannot contain",
        ),
    ],
)
def test_json_condition_with_bad_value_rejected(staff_client, condition, message):
    url = reverse("admin:triggers_trigger_add")

    response = staff_client.post(url, trigger_form(staff_client, url, condition))

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Trigger.objects.exists()


def test_text_condition_with_nul_rejected(staff_client):
    url = reverse("admin:triggers_trigger_add")
    text = 'account.properties.x == "\\u0000"'

    response = staff_client.post(url, trigger_form(staff_client, url, text))

    assert response.status_code == 200
    assert "Line 1, column 25: text cannot contain" in response.content.decode()
    assert not Trigger.objects.exists()
