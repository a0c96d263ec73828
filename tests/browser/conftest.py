"""Fixtures for the browser tests: headless Chromium driven by Playwright.

The tests drive Debian's Chromium and skip when it is not installed.
Playwright's own browser download is never used.
"""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from django.db import connections
from django.test import override_settings
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from pytest_django.live_server_helper import LiveServer

CHROMIUM = Path("/usr/bin/chromium")

# Headless in a container: no sandbox and no GPU, and no background requests
# (updates, sync, QUIC probes) to any host other than the live server.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

# Playwright waits 30 s by default. A page of the live server loads in well
# under a second, so a missing element fails sooner with this limit.
TIMEOUT_MS = 10_000


@pytest.fixture
def browser(
    transactional_db: None, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Browser]:
    """Launch Chromium for one test.

    Playwright's sync API runs an asyncio event loop in this thread while it
    is started, and while a loop runs, Django (through asgiref's Local) keeps
    database connections per context instead of per thread. The test body
    therefore uses a second connection. Starting after the database set-up and
    stopping before the flush leaves serialized_rollback's restore and the
    flush on pytest-django's connection. A browser kept for the whole module
    would move them to the second connection, which has no snapshot, and the
    seeded rows would be lost.
    """
    if not CHROMIUM.exists():
        pytest.skip(
            f"Chromium is missing at {CHROMIUM}; install it with "
            "`apt-get install chromium` to run the browser tests"
        )

    # Django raises SynchronousOnlyOperation for any ORM call made while an
    # event loop runs in the thread, and Playwright's loop runs during the
    # whole test. The test's ORM calls are plain synchronous code that never
    # runs inside the loop, so the check is switched off for this test only.
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
        )
        yield chromium
        chromium.close()
        # Close the second connection, the one the test body used.
        connections.close_all()


@pytest.fixture
def new_page(browser: Browser) -> Iterator[Callable[[], Page]]:
    """Return a function that opens a page in a fresh browser context.

    Each context has its own cookies, so each page is a separate visitor.
    """
    contexts: list[BrowserContext] = []

    def open_page() -> Page:
        context = browser.new_context()
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        return context.new_page()

    yield open_page
    for context in contexts:
        context.close()


@pytest.fixture
def site_url(live_server: LiveServer) -> Iterator[str]:
    """Point links in emails at the live server and return its base URL."""
    with override_settings(SITE_URL=live_server.url):
        yield live_server.url
