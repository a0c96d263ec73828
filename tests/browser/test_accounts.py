"""The account list and account page in a real browser: phone width, keyboard, assets.

A CSM signs in, finds an account with the keyboard alone and opens its
page. At a phone's width no page scrolls sideways, and no request leaves
the live server. The tests commit their rows so that the live server's
thread can read them.
"""

import importlib
from collections.abc import Callable

import pytest
from django.apps import apps
from django.contrib.auth.models import Group, User
from django.utils import timezone
from playwright.sync_api import Page, expect

from customers.roles import CSM_GROUP
from tests.accounts.builders import add_activity
from tests.factories import make_account

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

OpenPage = Callable[[], Page]
PASSWORD = "accounts-password"
PHONE = {"width": 375, "height": 740}
# Tab presses allowed to reach a control; the header and filters come first.
MAX_TABS = 40


def sign_in_as_csm(page: Page, site_url: str) -> User:
    role_migration = importlib.import_module("customers.migrations.0006_role_groups")
    role_migration.create_role_groups(apps, schema_editor=None)
    csm = User.objects.create_user("csm", password=PASSWORD, is_staff=True)
    csm.groups.add(Group.objects.get(name=CSM_GROUP))
    page.goto(f"{site_url}/admin/login/?next=/accounts/")
    page.get_by_label("Username").fill("csm")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Accounts", exact=True)).to_be_visible()
    return csm


def tab_to(page: Page, is_target: str) -> None:
    """Press Tab until the focused element passes the JavaScript test is_target."""
    for _ in range(MAX_TABS):
        page.keyboard.press("Tab")
        if page.evaluate(f"(element => {is_target})(document.activeElement)"):
            return
    raise AssertionError(f"{MAX_TABS} Tab presses did not reach {is_target}")


def scrolls_sideways(page: Page) -> bool:
    return bool(
        page.evaluate("document.documentElement.scrollWidth > window.innerWidth")
    )


def test_keyboard_search_and_open_account(new_page: OpenPage, site_url: str) -> None:
    page = new_page()
    csm = sign_in_as_csm(page, site_url)
    acme = make_account(name="Acme Robotics", owner=csm)
    make_account(name="Zenith Foods", owner=csm)
    page.reload()

    tab_to(page, "element.name === 'q'")
    page.keyboard.type("acme")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("1 account.")

    tab_to(page, "element.textContent === 'Acme Robotics'")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Acme Robotics")).to_be_visible()

    tab_to(page, "element.textContent === 'Timeline'")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{site_url}/accounts/{acme.pk}/#timeline")


def test_phone_width_and_local_assets(browser, site_url: str) -> None:
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    csm = sign_in_as_csm(page, site_url)
    account = make_account(name="Acme Robotics", owner=csm)
    add_activity(account, 3, timezone.now())

    for path in ("/accounts/", "/accounts/attention/", f"/accounts/{account.pk}/"):
        page.goto(f"{site_url}{path}")
        assert not scrolls_sideways(page), path
    # Every filter control has a label that names it.
    page.goto(f"{site_url}/accounts/")
    for label in (
        "Name contains",
        "Lifecycle stage",
        "Health",
        "Renewal",
        "CSM",
        "Plan",
        "Industry",
        "CRM property",
        "Property value",
        "Sort by",
    ):
        expect(page.get_by_label(label, exact=True)).to_be_visible()
    context.close()

    assert requested
    assert all(url.startswith(site_url) for url in requested), requested
