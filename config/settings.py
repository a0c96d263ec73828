"""Settings for Nudgepath, read from the environment.

The defaults are the embedded demo: SQLite and Celery tasks run in-process.
Production and the test suite set DATABASE_URL to PostgreSQL and
CELERY_BROKER_URL to Redis. See README.md for every variable.
"""

import os
import secrets
from pathlib import Path
from typing import Any

from django.core.exceptions import ImproperlyConfigured

from config.email import anymail_settings, email_backend
from config.env import (
    database_from_url,
    env_bool,
    env_int,
    env_list,
    env_redis_url,
    env_str,
    env_url,
)

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(env_str("NUDGEPATH_VAR_DIR", str(BASE_DIR / "var")))

DEBUG = env_bool("DJANGO_DEBUG", default=True)


# Django's deployment check (security.W009) warns below 50 characters.
MIN_SECRET_KEY_LENGTH = 50


def _secret_key() -> str:
    """Return the configured key, or a per-checkout key kept in var/ for DEBUG runs."""
    configured = env_str("DJANGO_SECRET_KEY", "")
    if configured and not DEBUG and len(configured) < MIN_SECRET_KEY_LENGTH:
        raise ImproperlyConfigured(
            f"DJANGO_SECRET_KEY has {len(configured)} characters; production needs "
            f"at least {MIN_SECRET_KEY_LENGTH}, for example from "
            "python -c 'import secrets; print(secrets.token_urlsafe(50))'."
        )
    if configured:
        return configured
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY (or DJANGO_SECRET_KEY_FILE) is missing; "
            "production needs a long random secret."
        )
    # Magic links are signed with this key, so it must survive a restart.
    key_file = VAR_DIR / "dev-secret-key"
    if not key_file.exists():
        VAR_DIR.mkdir(parents=True, exist_ok=True)
        key_file.write_text(secrets.token_urlsafe(50))
    return key_file.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env_list("DJANGO_CSRF_TRUSTED_ORIGINS", [])
# Django's HTML page, except JSON for the portal's heartbeat endpoint.
CSRF_FAILURE_VIEW = "courses.content_views.csrf_failure"

# The address that links in emails point to.
SITE_URL = env_url("NUDGEPATH_SITE_URL", "http://127.0.0.1:8000")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    # Stores the periodic schedule in the database, editable in the admin.
    "django_celery_beat",
    "customers",
    "lifecycle",
    "courses",
    "triggers",
    "metrics",
    "integrations",
]

MIDDLEWARE = [
    # Outermost, so the first response is complete when it freezes the
    # objects that live as long as the process (config.collector).
    "config.collector.FreezeAfterFirstResponseMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    # Django's AuthenticationMiddleware, reading the session and the user
    # from Redis in one round trip when both are cached there.
    "courses.auth_backends.PrefetchingAuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "config.wsgi.application"

DATABASES = {
    "default": database_from_url(
        env_str("DATABASE_URL", "sqlite:///db.sqlite3"), BASE_DIR
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

PASSWORD_VALIDATION = "django.contrib.auth.password_validation"
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": f"{PASSWORD_VALIDATION}.UserAttributeSimilarityValidator"},
    {"NAME": f"{PASSWORD_VALIDATION}.MinimumLengthValidator"},
    {"NAME": f"{PASSWORD_VALIDATION}.CommonPasswordValidator"},
    {"NAME": f"{PASSWORD_VALIDATION}.NumericPasswordValidator"},
]
# CachedModelBackend reads signed-in users from the session cache when there
# is one (courses/auth_backends.py). ModelBackend stays listed so sessions
# begun before it was added still resolve.
AUTHENTICATION_BACKENDS = [
    "courses.auth_backends.CachedModelBackend",
    "django.contrib.auth.backends.ModelBackend",
]
LOGIN_URL = "portal:sign-in"
LOGIN_REDIRECT_URL = "portal:home"

LANGUAGE_CODE = "en-us"
TIME_ZONE = env_str("NUDGEPATH_TIME_ZONE", "UTC")
# The interface is in English only. With translation off, templates and
# URL reversing skip the active-language lookup they make on every call,
# which took about a fifth of the lesson page's CPU time.
USE_I18N = False
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
STATICFILES_DIRS = [BASE_DIR / "static"]

# Celery. Without a broker URL, tasks run eagerly in the calling process:
# the embedded demo needs no Redis. Set CELERY_BROKER_URL to run workers.
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "")
CELERY_TASK_ALWAYS_EAGER = env_bool("CELERY_TASK_ALWAYS_EAGER", not CELERY_BROKER_URL)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_BROKER_URL = CELERY_BROKER_URL or "memory://localhost/"
# Sessions. With a session cache URL (by default the broker's, when it is
# Redis), a session is read from Redis and kept in the database, so a
# signed-in request needs no session query (config/sessions.py). Without one,
# as in the demo, sessions live in the database alone.
SESSION_CACHE_URL = env_redis_url(
    "NUDGEPATH_SESSION_CACHE_URL",
    CELERY_BROKER_URL
    if CELERY_BROKER_URL.startswith(("redis://", "rediss://"))
    else "",
)
# Seconds a session cache command may wait for Redis to connect or reply.
# With redis-py 8.2's defaults, a Redis that stops responding (unlike one
# that refuses connections) held a request 5 seconds at every session and
# user read or write, so a page took 15 seconds. A healthy Redis answers
# these small commands in well under a millisecond.
SESSION_CACHE_TIMEOUT_SECONDS = 0.25
CACHES: dict[str, dict[str, Any]] = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}
if SESSION_CACHE_URL:
    CACHES["sessions"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": SESSION_CACHE_URL,
        "KEY_PREFIX": "nudgepath",
        "OPTIONS": {
            "socket_connect_timeout": SESSION_CACHE_TIMEOUT_SECONDS,
            "socket_timeout": SESSION_CACHE_TIMEOUT_SECONDS,
        },
    }
    SESSION_ENGINE = "config.sessions"
    SESSION_CACHE_ALIAS = "sessions"

# A task is acknowledged after it finishes, so a worker that dies mid-task
# leaves its message to be delivered again; every task is idempotent.
CELERY_TASK_ACKS_LATE = True
# A pool child killed mid-task (SIGKILL, the OOM killer) requeues its message
# instead of acknowledging it as failed. A task that always kills its child
# would loop; none of ours allocates without bound.
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
# Redis hands a message that was delivered but not acknowledged for this many
# seconds to another worker, which is how the task of a killed worker comes
# back. It must exceed the longest task and the longest countdown (a retry
# waits at most 5 minutes), or a slow task runs twice. Running twice is safe
# but wasteful.
CELERY_BROKER_TRANSPORT_OPTIONS: dict[str, int] = {
    "visibility_timeout": env_int(
        "NUDGEPATH_BROKER_VISIBILITY_SECONDS", 60 * 60, minimum=1
    ),
}
# How often a running worker looks for such messages. Unset, kombu's default
# applies (a scan about every 100 seconds, and one when a worker starts).
if restore_seconds := env_int("NUDGEPATH_BROKER_RESTORE_SECONDS", 0, minimum=0):
    CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_interval"] = restore_seconds
    CELERY_BROKER_TRANSPORT_OPTIONS["unacked_restore_throttle"] = 1
# No result backend is configured, so beat needs no job that deletes results.
CELERY_RESULT_EXPIRES = None

# Beat reads the schedule from the database (django-celery-beat), so a CSM or
# operator edits it in the admin under Periodic tasks. Migration
# triggers/0004_periodic_schedule creates the entries below with these
# intervals when they do not exist yet; later changes to the variables do not
# change a stored entry.
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
NUDGEPATH_PERIODIC_TASKS = {
    "lifecycle-refresh": {
        "task": "lifecycle.tasks.refresh_lifecycle",
        "seconds": env_int("NUDGEPATH_LIFECYCLE_SECONDS", 6 * 60 * 60, minimum=60),
    },
    "trigger-sweep": {
        "task": "triggers.tasks.run_sweep",
        "seconds": env_int("NUDGEPATH_SWEEP_SECONDS", 15 * 60, minimum=10),
    },
    "send-pending-email": {
        "task": "triggers.tasks.send_pending_email",
        "seconds": 60,
    },
}

# The HubSpot entries of beat's schedule, created by the integrations
# migration 0007 (docs/hubspot.md).
NUDGEPATH_HUBSPOT_PERIODIC_TASKS = {
    "hubspot-sync": {
        "task": "integrations.hubspot.tasks.sync_all_connections",
        "seconds": env_int("NUDGEPATH_HUBSPOT_SYNC_SECONDS", 15 * 60, minimum=60),
    },
    "hubspot-write-back": {
        "task": "integrations.hubspot.tasks.push_crm_write_backs",
        "seconds": 60,
    },
    "hubspot-release-stuck-runs": {
        "task": "integrations.hubspot.tasks.release_stuck_runs",
        "seconds": 5 * 60,
    },
    "hubspot-retry-webhook-events": {
        "task": "integrations.hubspot.tasks.retry_webhook_events",
        "seconds": 60,
    },
    "hubspot-learning-push": {
        "task": "integrations.hubspot.tasks.push_learning_properties",
        "seconds": env_int(
            "NUDGEPATH_HUBSPOT_LEARNING_PUSH_SECONDS", 15 * 60, minimum=60
        ),
    },
}

# A change to the customer record (a usage event, ticket, survey response or
# CRM update) evaluates the triggers that read that data for its account at
# once; further changes to the same account within this many seconds are
# evaluated together in one later run. 0 evaluates after every change.
NUDGEPATH_EVENT_COALESCE_SECONDS = env_int(
    "NUDGEPATH_EVENT_COALESCE_SECONDS", 5, minimum=0
)

# Each scheduled trigger task and each event evaluation writes a Sweep row.
# The scheduled sweep deletes the rows older than this many days that fired
# nothing and failed nothing; rows with firings stay, as the firings' source.
NUDGEPATH_SWEEP_RETENTION_DAYS = env_int(
    "NUDGEPATH_SWEEP_RETENTION_DAYS", 30, minimum=1
)

# HubSpot. Its developer changelog ("Increasing our API limits") gives
# private apps 190 requests per 10 seconds on Professional and Enterprise
# accounts, with 650,000 and 1,000,000 a day, and the CRM search API 4
# requests per second. The defaults are lower, 100 and 250,000, the
# figures given elsewhere for Free and Starter accounts. NOTE: those two
# are not checked against HubSpot's own page. Set them to the account's
# tier; every worker shares one budget in Redis.
NUDGEPATH_HUBSPOT_REQUESTS_PER_10_SECONDS = env_int(
    "NUDGEPATH_HUBSPOT_REQUESTS_PER_10_SECONDS", 100, minimum=1
)
NUDGEPATH_HUBSPOT_REQUESTS_PER_DAY = env_int(
    "NUDGEPATH_HUBSPOT_REQUESTS_PER_DAY", 250_000, minimum=1
)
NUDGEPATH_HUBSPOT_SEARCH_REQUESTS_PER_SECOND = env_int(
    "NUDGEPATH_HUBSPOT_SEARCH_REQUESTS_PER_SECOND", 4, minimum=1
)
# The Redis that holds the shared budget; the broker's by default. Without
# Redis (the embedded demo) only 429 answers slow the sync down.
NUDGEPATH_HUBSPOT_REDIS_URL = env_str("NUDGEPATH_HUBSPOT_REDIS_URL", CELERY_BROKER_URL)
# Attempts of one request when HubSpot answers 429 or 5xx, and the random
# milliseconds added to each wait so that workers do not retry together.
NUDGEPATH_HUBSPOT_MAX_ATTEMPTS = env_int("NUDGEPATH_HUBSPOT_MAX_ATTEMPTS", 5, minimum=1)
NUDGEPATH_HUBSPOT_RETRY_JITTER_MS = env_int(
    "NUDGEPATH_HUBSPOT_RETRY_JITTER_MS", 1000, minimum=0
)
# Records per search page (HubSpot allows up to 200) and the most results
# one search query returns (10,000 in HubSpot's search API).
NUDGEPATH_HUBSPOT_PAGE_SIZE = env_int("NUDGEPATH_HUBSPOT_PAGE_SIZE", 100, minimum=1)
NUDGEPATH_HUBSPOT_SEARCH_RESULT_LIMIT = env_int(
    "NUDGEPATH_HUBSPOT_SEARCH_RESULT_LIMIT", 10_000, minimum=1
)
# A running sync run saves its cursor after every page. One whose last
# save is older than this many minutes belongs to a worker that died, so
# it is marked failed and resumed from its cursor.
NUDGEPATH_HUBSPOT_STUCK_RUN_MINUTES = env_int(
    "NUDGEPATH_HUBSPOT_STUCK_RUN_MINUTES", 10, minimum=1
)
# A run still queued after this many minutes, while no run of its
# connection is running, has lost its task message (for example to a broker
# restart). It is marked failed and queued again.
NUDGEPATH_HUBSPOT_QUEUED_RUN_MINUTES = env_int(
    "NUDGEPATH_HUBSPOT_QUEUED_RUN_MINUTES", 30, minimum=1
)

# Email. The demo writes each message to a file under var/mail. Production
# sets NUDGEPATH_EMAIL_PROVIDER to smtp and the EMAIL_* variables, or to a
# provider of django-anymail and its ANYMAIL_* variables (config/email.py).
EMAIL_BACKEND = email_backend(
    os.environ, "django.core.mail.backends.filebased.EmailBackend"
)
ANYMAIL = anymail_settings(os.environ)
EMAIL_FILE_PATH = env_str("EMAIL_FILE_PATH", str(VAR_DIR / "mail"))
EMAIL_HOST = env_str("EMAIL_HOST", "127.0.0.1")
EMAIL_PORT = env_int("EMAIL_PORT", 25)
EMAIL_HOST_USER = env_str("EMAIL_HOST_USER", "")
EMAIL_HOST_PASSWORD = env_str("EMAIL_HOST_PASSWORD", "")
EMAIL_USE_TLS = env_bool("EMAIL_USE_TLS", False)
# Seconds an SMTP call may block; well below the 15 minutes after which a
# row stuck in "sending" is released for another attempt.
EMAIL_TIMEOUT = env_int("EMAIL_TIMEOUT", 30, minimum=1)
DEFAULT_FROM_EMAIL = env_str(
    "DEFAULT_FROM_EMAIL", "Nudgepath <learn@nudgepath.localhost>"
)

# Sign-in links sent by email expire after this many hours.
MAGIC_LINK_MAX_AGE_HOURS = env_int("NUDGEPATH_MAGIC_LINK_HOURS", 72, minimum=1)

REST_FRAMEWORK = {
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
    },
    "handlers": {
        "console": {"class": "logging.StreamHandler", "formatter": "plain"},
    },
    "root": {"handlers": ["console"], "level": env_str("NUDGEPATH_LOG_LEVEL", "INFO")},
}

# The manager dashboard keeps each computed report, per set of filters, for
# this many seconds, so repeated loads and CSV downloads skip the queries.
# Rebuilding a roll-up clears them. 0 turns the cache off.
NUDGEPATH_DASHBOARD_CACHE_SECONDS = env_int(
    "NUDGEPATH_DASHBOARD_CACHE_SECONDS", 60, minimum=0
)
