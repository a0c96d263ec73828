"""Error pages use the site layout instead of Django's bare defaults."""

import pytest

pytestmark = pytest.mark.django_db


def test_not_found_page_links_home(client, settings):
    settings.DEBUG = False

    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert b"Page not found" in response.content
    assert b'href="/learn/"' in response.content
