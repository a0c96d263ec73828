"""Fixtures for the portal tests."""

import pytest


@pytest.fixture(autouse=True)
def fast_password_hasher(settings):
    """Hash passwords with MD5 here, because the default hasher is slow on purpose."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
