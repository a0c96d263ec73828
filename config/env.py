"""Typed readers for settings taken from the environment.

Each reader raises ImproperlyConfigured with the variable's name and the
accepted form when a value is malformed, so a typo fails at start-up instead
of running with a silent default.
"""

import os
from pathlib import Path
from urllib.parse import unquote, urlparse

from django.core.exceptions import ImproperlyConfigured

TRUE_WORDS = {"1", "true", "yes", "on"}
FALSE_WORDS = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str) -> str:
    """Read a string, or the contents of the file named by NAME_FILE for secrets."""
    file_name = os.environ.get(f"{name}_FILE")
    if file_name:
        try:
            return Path(file_name).read_text().strip()
        except OSError as exc:
            raise ImproperlyConfigured(
                f"{name}_FILE={file_name!r} cannot be read ({exc}); "
                "point it at a readable file or unset it."
            ) from exc
    return os.environ.get(name, default)


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off."
    )


def env_int(name: str, default: int, minimum: int | None = None) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ImproperlyConfigured(f"{name}={raw!r} is not an integer.") from exc
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r} is below the minimum {minimum}.")
    return value


def env_url(name: str, default: str) -> str:
    """Read an absolute http(s) URL without a trailing slash."""
    raw = env_str(name, default)
    parsed = urlparse(raw)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not an absolute URL; use a form like "
            "https://learn.example.com"
        )
    return raw.rstrip("/")


# The URL schemes redis-py connects with.
REDIS_SCHEMES = ("redis", "rediss", "unix")


def env_redis_url(name: str, default: str) -> str:
    """Read a Redis URL, or "" when the value is empty."""
    raw = env_str(name, default)
    if raw and urlparse(raw).scheme not in REDIS_SCHEMES:
        raise ImproperlyConfigured(
            f"{name}={raw!r} is not a Redis URL; use a form like "
            "redis://127.0.0.1:6379/0, or set it empty to keep sessions in "
            "the database alone."
        )
    return raw


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def database_from_url(url: str, base_dir: Path) -> dict[str, object]:
    """Translate sqlite:///path or postgres://user:password@host:port/name."""
    parsed = urlparse(url)
    if parsed.scheme == "sqlite":
        # sqlite:///db.sqlite3 is relative to the project; sqlite:////srv/np.db is
        # absolute.
        path = unquote(parsed.path.removeprefix("/")) or "db.sqlite3"
        return {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": path if Path(path).is_absolute() else base_dir / path,
        }
    if parsed.scheme in {"postgres", "postgresql"}:
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": _postgres_name(url, parsed.path),
            "USER": unquote(parsed.username or "postgres"),
            "PASSWORD": unquote(parsed.password or ""),
            "HOST": parsed.hostname or "127.0.0.1",
            "PORT": str(parsed.port or 5432),
            "CONN_MAX_AGE": 60,
            "CONN_HEALTH_CHECKS": True,
            # A condition query's correlated subqueries are estimated at once
            # per contact, so the planner's cost passes jit_above_cost and
            # PostgreSQL spends about 0.5 s compiling a query that then runs
            # for less than that. The queries here gain nothing from JIT.
            # psycopg prepares a statement only when asked (the heartbeat's,
            # see courses.heartbeats); Django's own cursors bind on the client
            # and never prepare. Django turns preparing off by default for
            # connection poolers: PgBouncer 1.21 or later handles prepared
            # statements with max_prepared_statements set.
            "OPTIONS": {"options": "-c jit=off", "prepare_threshold": 5},
        }
    raise ImproperlyConfigured(
        f"DATABASE_URL={url!r} has an unsupported scheme {parsed.scheme!r}; "
        "use sqlite:///db.sqlite3 or postgres://user@127.0.0.1:5432/nudgepath."
    )


def _postgres_name(url: str, path: str) -> str:
    name = unquote(path.removeprefix("/"))
    if not name:
        raise ImproperlyConfigured(
            f"DATABASE_URL={url!r} names no database; add it after the port, as in "
            "postgres://postgres@127.0.0.1:5432/nudgepath."
        )
    return name
