"""The email backend: Django's own by default, or an email provider's API.

NUDGEPATH_EMAIL_PROVIDER names a provider that django-anymail supports
(mailgun, postmark, sendgrid ...). Its settings come from variables named
ANYMAIL_<SETTING>, for example ANYMAIL_MAILGUN_API_KEY, which go into
Django's ANYMAIL setting without the prefix. ANYMAIL_<SETTING>_FILE reads
a secret from a file instead. A provider's required settings (REQUIRED_SETTINGS)
must be present and non-blank, so a missing API key stops start-up instead of
failing each send.
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
# The settings each provider's backend reads without a default in
# django-anymail 15.2 (anymail/backends/*.py), so a send raises
# AnymailConfigurationError without them. amazon_ses reads its credentials
# through boto3, which has its own lookup chain, so none are listed for it.
REQUIRED_SETTINGS: dict[str, tuple[str, ...]] = {
    "amazon_ses": (),
    "brevo": ("BREVO_API_KEY",),
    "mailersend": ("MAILERSEND_API_TOKEN",),
    "mailgun": ("MAILGUN_API_KEY",),
    "mailjet": ("MAILJET_API_KEY", "MAILJET_SECRET_KEY"),
    "mailtrap": ("MAILTRAP_API_TOKEN",),
    "mandrill": ("MANDRILL_API_KEY",),
    "postal": ("POSTAL_API_KEY", "POSTAL_API_URL"),
    "postmark": ("POSTMARK_SERVER_TOKEN",),
    "resend": ("RESEND_API_KEY",),
    "scaleway": ("SCALEWAY_SECRET_KEY", "SCALEWAY_PROJECT_ID"),
    "sendgrid": ("SENDGRID_API_KEY",),
    "sparkpost": ("SPARKPOST_API_KEY",),
    "unisender_go": ("UNISENDER_GO_API_KEY", "UNISENDER_GO_API_URL"),
}
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
    """Return Django's ANYMAIL setting from the ANYMAIL_* variables.

    Raises ImproperlyConfigured naming the variable when the provider chosen
    by NUDGEPATH_EMAIL_PROVIDER lacks a required setting or it is blank.
    """
    settings = _read_anymail_variables(environ)
    provider = environ.get("NUDGEPATH_EMAIL_PROVIDER", "").strip().lower()
    for key in REQUIRED_SETTINGS.get(provider, ()):
        _require(provider, key, settings.get(key))
    return settings


def _read_anymail_variables(environ: Mapping[str, str]) -> dict[str, object]:
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


def _require(provider: str, key: str, value: object) -> None:
    if isinstance(value, str) and value.strip():
        return
    state = "is missing" if value is None else "is blank"
    raise ImproperlyConfigured(
        f"NUDGEPATH_EMAIL_PROVIDER={provider} needs ANYMAIL_{key}, which {state}; "
        f"set ANYMAIL_{key} or ANYMAIL_{key}_FILE to the value from the "
        "provider's dashboard."
    )


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
