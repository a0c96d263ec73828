"""The email backend: Django's own by default, or an email provider's API.

NUDGEPATH_EMAIL_PROVIDER names a provider that django-anymail supports
(mailgun, postmark, sendgrid ...). Its settings come from variables named
ANYMAIL_<SETTING>, for example ANYMAIL_MAILGUN_API_KEY, which go into
Django's ANYMAIL setting without the prefix. ANYMAIL_<SETTING>_FILE reads
a secret from a file instead.
"""

from collections.abc import Mapping
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

from config.env import FALSE_WORDS, TRUE_WORDS

# The providers of django-anymail 15, by the module name of their backend.
PROVIDERS = frozenset(
    {
        "amazon_ses",
        "brevo",
        "mailersend",
        "mailgun",
        "mailjet",
        "mailtrap",
        "mandrill",
        "postal",
        "postmark",
        "resend",
        "scaleway",
        "sendgrid",
        "sparkpost",
        "unisender_go",
    }
)
SMTP_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
# Anymail settings that are flags; every other one is read as text.
FLAG_SETTINGS = frozenset(
    {"IGNORE_RECIPIENT_STATUS", "IGNORE_UNSUPPORTED_FEATURES", "DEBUG_API_REQUESTS"}
)


def email_backend(environ: Mapping[str, str], default: str) -> str:
    """Return EMAIL_BACKEND: the provider's, smtp, EMAIL_BACKEND or default."""
    provider = environ.get("NUDGEPATH_EMAIL_PROVIDER", "").strip().lower()
    explicit = environ.get("EMAIL_BACKEND")
    if not provider:
        return explicit or default
    if explicit:
        raise ImproperlyConfigured(
            f"EMAIL_BACKEND={explicit!r} and NUDGEPATH_EMAIL_PROVIDER="
            f"{provider!r} are both set; unset one of them"
        )
    if provider == "smtp":
        return SMTP_BACKEND
    if provider not in PROVIDERS:
        raise ImproperlyConfigured(
            f"NUDGEPATH_EMAIL_PROVIDER={provider!r} is not a provider of "
            f"django-anymail; use smtp or one of {', '.join(sorted(PROVIDERS))}"
        )
    return f"anymail.backends.{provider}.EmailBackend"


def anymail_settings(environ: Mapping[str, str]) -> dict[str, object]:
    """Return Django's ANYMAIL setting from the ANYMAIL_* variables."""
    settings: dict[str, object] = {}
    for name, raw in sorted(environ.items()):
        if not name.startswith("ANYMAIL_"):
            continue
        key = name.removeprefix("ANYMAIL_")
        value = raw
        if key.endswith("_FILE"):
            key = key.removesuffix("_FILE")
            value = _read_secret(name, raw)
        settings[key] = _flag(name, value) if key in FLAG_SETTINGS else value
    return settings


def _read_secret(name: str, file_name: str) -> str:
    try:
        return Path(file_name).read_text().strip()
    except OSError as exc:
        raise ImproperlyConfigured(
            f"{name}={file_name!r} cannot be read ({exc}); point it at a "
            "readable file or unset it."
        ) from exc


def _flag(name: str, raw: str) -> bool:
    word = raw.strip().lower()
    if word in TRUE_WORDS:
        return True
    if word in FALSE_WORDS:
        return False
    raise ImproperlyConfigured(
        f"{name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off."
    )
