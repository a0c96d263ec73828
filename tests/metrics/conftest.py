"""Fixtures shared by the dashboard tests."""

import pytest


@pytest.fixture(autouse=True)
def no_report_cache(settings):
    """Compute every report afresh; a test that checks the cache turns it on."""
    settings.NUDGEPATH_DASHBOARD_CACHE_SECONDS = 0
