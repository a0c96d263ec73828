"""Environment readers fail loudly on malformed values."""

from pathlib import Path

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.env import (
    database_from_url,
    env_bool,
    env_int,
    env_redis_url,
    env_str,
    env_url,
)


def test_env_bool_rejects_unknown_word(monkeypatch):
    monkeypatch.setenv("NUDGEPATH_FLAG", "maybe")

    with pytest.raises(
        ImproperlyConfigured, match="NUDGEPATH_FLAG='maybe' is not a boolean"
    ):
        env_bool("NUDGEPATH_FLAG", default=False)


def test_env_int_rejects_text(monkeypatch):
    monkeypatch.setenv("NUDGEPATH_NUMBER", "ten")

    with pytest.raises(ImproperlyConfigured, match="NUDGEPATH_NUMBER='ten'"):
        env_int("NUDGEPATH_NUMBER", default=1)


def test_env_str_reads_secret_file(monkeypatch, tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("s3cret\n")
    monkeypatch.setenv("NUDGEPATH_TOKEN_FILE", str(secret))

    assert env_str("NUDGEPATH_TOKEN", "") == "s3cret"


def test_database_url_forms():
    postgres = database_from_url("postgres://app:pw@db.internal:6432/np", Path("/srv"))
    sqlite = database_from_url("sqlite:///db.sqlite3", Path("/srv"))

    assert postgres["HOST"] == "db.internal"
    assert postgres["PORT"] == "6432"
    assert postgres["NAME"] == "np"
    absolute = database_from_url("sqlite:////var/lib/np/db.sqlite3", Path("/srv"))

    assert sqlite["NAME"] == Path("/srv/db.sqlite3")
    assert absolute["NAME"] == "/var/lib/np/db.sqlite3"
    with pytest.raises(ImproperlyConfigured, match="unsupported scheme 'mysql'"):
        database_from_url("mysql://root@127.0.0.1/np", Path("/srv"))


def test_env_int_rejects_below_minimum(monkeypatch):
    monkeypatch.setenv("NUDGEPATH_MAGIC_LINK_HOURS", "0")

    with pytest.raises(ImproperlyConfigured, match="below the minimum 1"):
        env_int("NUDGEPATH_MAGIC_LINK_HOURS", default=72, minimum=1)


def test_env_url_requires_absolute_url(monkeypatch):
    monkeypatch.setenv("NUDGEPATH_SITE_URL", "notaurl")

    with pytest.raises(ImproperlyConfigured, match="NUDGEPATH_SITE_URL='notaurl'"):
        env_url("NUDGEPATH_SITE_URL", "http://127.0.0.1:8000")


def test_env_url_strips_trailing_slash(monkeypatch):
    monkeypatch.setenv("NUDGEPATH_SITE_URL", "https://learn.example.com/")

    assert env_url("NUDGEPATH_SITE_URL", "") == "https://learn.example.com"


def test_postgres_url_without_database_rejected():
    with pytest.raises(ImproperlyConfigured, match="names no database"):
        database_from_url("postgres://postgres@127.0.0.1:5432", Path("/srv"))


@pytest.mark.django_db
def test_postgres_sessions_run_without_jit():
    from django.db import connection

    if connection.vendor != "postgresql":
        pytest.skip("JIT is a PostgreSQL setting")
    with connection.cursor() as cursor:
        cursor.execute("SHOW jit")
        (setting,) = cursor.fetchone()

    assert setting == "off"


def test_session_cache_url_must_be_redis(monkeypatch):
    # A mistyped URL would leave every page logging a cache error and every
    # user save failing, with no error at start-up.
    monkeypatch.setenv("NUDGEPATH_SESSION_CACHE_URL", "htp://127.0.0.1:6379/0")

    with pytest.raises(ImproperlyConfigured, match="is not a Redis URL"):
        env_redis_url("NUDGEPATH_SESSION_CACHE_URL", "")


@pytest.mark.parametrize(
    "url", ["", "redis://127.0.0.1:6379/3", "rediss://cache:6380/0", "unix:///r.sock"]
)
def test_session_cache_url_accepts_redis_forms(monkeypatch, url):
    monkeypatch.setenv("NUDGEPATH_SESSION_CACHE_URL", url)

    assert env_redis_url("NUDGEPATH_SESSION_CACHE_URL", "redis://default/0") == url
