"""The admin's rule builder in a real browser, kept in step with the condition text.

A CSM builds a condition with clicks, sees the canonical text appear in the
textarea, saves, and finds the builder rebuilt from the stored condition.
The tests commit their rows so that the live server's thread can read them.
"""

import re
from collections.abc import Callable

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import Page, expect

from conditions import format_condition
from lifecycle.models import Stage
from tests.triggers.factories import make_trigger
from triggers.models import Trigger

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

OpenPage = Callable[[], Page]
PASSWORD = "builder-password"

# "Renewal within 90 days and health score above 70", as the builder stores it.
RENEWAL_AND_HEALTH = {
    "all": [
        {"kind": "renewal_within", "days": 90},
        {"kind": "health_score", "op": ">", "value": 70},
    ]
}


def sign_in_to_admin(page: Page, site_url: str) -> None:
    User.objects.create_superuser("csm", "csm@example.com", PASSWORD)
    page.goto(f"{site_url}/admin/login/")
    page.get_by_label("Username").fill("csm")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("#site-name")).to_be_visible()


def open_trigger(page: Page, site_url: str, trigger: Trigger) -> None:
    page.goto(f"{site_url}/admin/triggers/trigger/{trigger.pk}/change/")
    expect(page.get_by_role("group", name="Rule builder")).to_be_visible()


def test_builder_writes_text_and_is_rebuilt(new_page: OpenPage, site_url: str) -> None:
    trigger = make_trigger(
        {"kind": "health_score", "op": ">", "value": 50},
        subject_type="account",
        is_active=False,
    )
    page = new_page()
    sign_in_to_admin(page, site_url)
    open_trigger(page, site_url, trigger)
    text = page.locator("textarea[name=condition]")

    # The stored condition is shown as one rule.
    first_pick = page.get_by_label("Field or function of rule 1")
    expect(first_pick).to_have_value("kind:health_score")
    expect(page.get_by_label("Value of rule 1")).to_have_value("50")

    # Replace it with two rules built by clicks.
    page.get_by_role("button", name="Remove rule 1").click()
    expect(page.get_by_label("Field or function of rule 1")).to_have_count(0)
    expect(text).to_have_value("")

    add_rule = page.get_by_role("button", name="Add a rule to the top group")
    add_rule.click()
    page.get_by_label("Field or function of rule 1").select_option(
        "kind:renewal_within"
    )
    page.get_by_label("Days of rule 1").fill("90")

    add_rule.click()
    page.get_by_label("Field or function of rule 2").select_option("kind:health_score")
    page.get_by_label("Comparison of rule 2").select_option(">")
    page.get_by_label("Value of rule 2").fill("70")

    canonical = format_condition(RENEWAL_AND_HEALTH)
    expect(text).to_have_value(canonical)
    expect(page.locator(".cb-status")).to_be_empty()

    page.get_by_role("button", name="Save and continue editing").click()
    expect(page.locator(".messagelist")).to_contain_text("was changed successfully")
    trigger.refresh_from_db()
    assert trigger.condition == RENEWAL_AND_HEALTH

    # A fresh page rebuilds the builder from the stored condition.
    open_trigger(page, site_url, trigger)
    expect(text).to_have_value(canonical)
    expect(page.get_by_label("Field or function of rule 1")).to_have_value(
        "kind:renewal_within"
    )
    expect(page.get_by_label("Days of rule 1")).to_have_value("90")
    expect(page.get_by_label("Field or function of rule 2")).to_have_value(
        "kind:health_score"
    )
    expect(page.get_by_label("Comparison of rule 2")).to_have_value(">")
    expect(page.get_by_label("Value of rule 2")).to_have_value("70")
    expect(page.get_by_label("Combine the rules of the top group")).to_have_value("all")

    # Broken text hides the builder and shows where the fault is.
    broken = "renewal_within(next 90 days) and account.health_score >> 70"
    text.fill(broken)
    column = broken.index(">>") + 2
    status = page.get_by_role("status")
    expect(status).to_contain_text(f"Line 1, column {column}:")
    expect(status).to_contain_text("a number")
    expect(page.get_by_label("Field or function of rule 1")).to_be_hidden()
    expect(text).to_have_attribute("aria-invalid", "true")
    # The text the CSM typed is kept as typed.
    expect(text).to_have_value(broken)

    # Fixing the text brings the builder back, rebuilt from it.
    text.fill("renewal_within(next 30 days) or not account.health_score > 70")
    expect(page.get_by_label("Days of rule 1")).to_have_value("30")
    expect(page.get_by_label("Combine the rules of the top group")).to_have_value("any")
    expect(page.get_by_label("Negate rule 2")).to_be_checked()


def test_builder_groups_and_negation(new_page: OpenPage, site_url: str) -> None:
    trigger = make_trigger(
        {"kind": "renewal_within", "days": 90}, subject_type="account", is_active=False
    )
    page = new_page()
    sign_in_to_admin(page, site_url)
    open_trigger(page, site_url, trigger)
    text = page.locator("textarea[name=condition]")

    page.get_by_role("button", name="Add a group to the top group").click()
    page.get_by_role("button", name="Add a rule to this group").click()
    page.get_by_label("Field or function of rule 2").select_option("field:account.plan")
    page.get_by_label("Comparison of rule 2").select_option("in")
    page.get_by_role("checkbox", name="Pro").check()
    page.get_by_role("checkbox", name="Enterprise").check()
    page.get_by_label("Negate this group").check()

    expected = {
        "all": [
            {"kind": "renewal_within", "days": 90},
            {
                "not": {
                    "any": [
                        {
                            "kind": "attribute",
                            "field": "account.plan",
                            "op": "in",
                            "value": ["Pro", "Enterprise"],
                        }
                    ]
                }
            },
        ]
    }
    expect(text).to_have_value(format_condition(expected))


def test_builder_reports_unfinished_rule(new_page: OpenPage, site_url: str) -> None:
    trigger = make_trigger(
        {"kind": "renewal_within", "days": 90}, subject_type="account", is_active=False
    )
    page = new_page()
    sign_in_to_admin(page, site_url)
    open_trigger(page, site_url, trigger)
    text = page.locator("textarea[name=condition]")

    page.get_by_role("button", name="Add a rule to the top group").click()

    status = page.get_by_role("status")
    expect(status).to_contain_text("Rule 2: choose a field or function")
    expect(text).to_have_value(format_condition({"kind": "renewal_within", "days": 90}))

    page.get_by_label("Field or function of rule 2").select_option(
        "kind:course_completed"
    )
    page.get_by_label("Course slug of rule 2").fill("no-such-course")
    expect(status).to_contain_text("Rule 2: ")
    expect(status).to_contain_text("no-such-course")
    expect(page.get_by_role("group", name="Rule 2")).to_have_attribute(
        "aria-invalid", "true"
    )


def test_stage_page_builds_each_criterion(new_page: OpenPage, site_url: str) -> None:
    stage = Stage.objects.get(slug="adoption")
    criteria = list(stage.criteria.order_by("order"))
    page = new_page()
    sign_in_to_admin(page, site_url)
    page.goto(f"{site_url}/admin/lifecycle/stage/{stage.pk}/change/")

    builders = page.get_by_role("group", name="Rule builder")
    expect(builders).to_have_count(len(criteria))
    for index in range(len(criteria)):
        # Each stored criterion is rebuilt as rules, with no error shown.
        builder = builders.nth(index)
        expect(builder.get_by_role("group", name="Rule 1")).to_be_visible()
        expect(builder.locator(".cb-status")).to_be_empty()

    # A criterion added on the page gets its own builder.
    page.get_by_role(
        "button", name=re.compile("Add another success criteri", re.I)
    ).click()
    expect(builders).to_have_count(len(criteria) + 1)
    added = builders.nth(len(criteria))
    added.get_by_role("button", name="Add a rule to the top group").click()
    added.get_by_label("Field or function of rule 1").select_option(
        "kind:contact_count"
    )
    added.get_by_label("Comparison of rule 1").select_option(">=")
    added.get_by_label("Value of rule 1").fill("3")
    expect(page.locator(f"#id_criteria-{len(criteria)}-condition")).to_have_value(
        format_condition({"kind": "contact_count", "op": ">=", "value": 3})
    )
