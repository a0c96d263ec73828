"""The outbox sends through an email provider's API when one is configured."""

from collections.abc import Iterator

import pytest
from django.core.exceptions import ImproperlyConfigured

from config.email import anymail_settings, email_backend
from integrations.models import ProviderMessage
from tests.integrations.fake_mailgun import FakeMailgun
from tests.triggers.test_outbox import make_outbox_email
from triggers.outbox import message_id_for
from triggers.services import send_outbox_email

API_KEY = "key-for-tests-0123456789"
FILE_BACKEND = "django.core.mail.backends.filebased.EmailBackend"


@pytest.fixture
def mailgun(settings) -> Iterator[FakeMailgun]:
    fake = FakeMailgun(API_KEY)
    fake.start()
    settings.EMAIL_BACKEND = email_backend(
        {"NUDGEPATH_EMAIL_PROVIDER": "mailgun"}, FILE_BACKEND
    )
    settings.ANYMAIL = anymail_settings(
        {"ANYMAIL_MAILGUN_API_KEY": API_KEY, "ANYMAIL_MAILGUN_API_URL": fake.api_url}
    )
    yield fake
    fake.stop()


@pytest.mark.django_db
def test_outbox_sends_through_mailgun(mailgun):
    email = make_outbox_email()

    assert send_outbox_email(email.pk) is True

    email.refresh_from_db()
    assert email.status == "sent"
    assert len(mailgun.messages) == 1
    sent = mailgun.messages[0]
    assert sent["domain"] == "nudgepath.localhost"
    assert sent["to"] == [email.to_email]
    assert sent["subject"] == ["Hello Ada"]
    assert sent["text"] == [email.body_text]
    # Anymail writes header names in the usual capitalisation.
    assert sent["h:Message-Id"] == [message_id_for(email)]
    recorded = ProviderMessage.objects.get()
    assert recorded.outbox_email == email
    assert recorded.provider == "Mailgun"
    assert recorded.provider_message_id == sent["id"]
    assert recorded.status == "queued"
    assert recorded.recipients == {
        email.to_email: {"status": "queued", "message_id": sent["id"]}
    }


@pytest.mark.django_db
def test_provider_error_returns_the_email_to_pending(mailgun):
    mailgun.errors.append(500)
    email = make_outbox_email()

    assert send_outbox_email(email.pk) is False

    email.refresh_from_db()
    assert email.status == "pending"
    assert email.attempts == 1
    assert "500" in email.last_error
    assert email.next_attempt_at is not None
    assert mailgun.messages == []
    assert not ProviderMessage.objects.exists()


@pytest.mark.django_db
def test_wrong_api_key_keeps_email_pending(mailgun, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "MAILGUN_API_KEY": "wrong"}
    email = make_outbox_email()

    assert send_outbox_email(email.pk) is False

    email.refresh_from_db()
    assert email.status == "pending"
    assert "401" in email.last_error


@pytest.mark.parametrize(
    ("environ", "expected"),
    [
        ({}, FILE_BACKEND),
        ({"EMAIL_BACKEND": "x.Backend"}, "x.Backend"),
        (
            {"NUDGEPATH_EMAIL_PROVIDER": "smtp"},
            "django.core.mail.backends.smtp.EmailBackend",
        ),
        (
            {"NUDGEPATH_EMAIL_PROVIDER": " Postmark "},
            "anymail.backends.postmark.EmailBackend",
        ),
    ],
)
def test_email_backend_from_environment(environ, expected):
    assert email_backend(environ, FILE_BACKEND) == expected


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"NUDGEPATH_EMAIL_PROVIDER": "mailgunn"}, "'mailgunn' is not a provider"),
        (
            {"NUDGEPATH_EMAIL_PROVIDER": "mailgun", "EMAIL_BACKEND": "x.Backend"},
            "unset one of them",
        ),
    ],
)
def test_bad_email_provider_is_rejected(environ, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        email_backend(environ, FILE_BACKEND)


def test_anymail_settings_from_environment(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("key-from-file\n")

    result = anymail_settings(
        {
            "ANYMAIL_POSTMARK_SERVER_TOKEN_FILE": str(secret),
            "ANYMAIL_IGNORE_RECIPIENT_STATUS": "yes",
            "ANYMAIL_MAILGUN_API_URL": "https://api.eu.mailgun.net/v3",
            "OTHER": "ignored",
        }
    )

    assert result == {
        "POSTMARK_SERVER_TOKEN": "key-from-file",
        "IGNORE_RECIPIENT_STATUS": True,
        "MAILGUN_API_URL": "https://api.eu.mailgun.net/v3",
    }


def test_anymail_flag_must_be_a_boolean():
    with pytest.raises(ImproperlyConfigured, match="is not a boolean"):
        anymail_settings({"ANYMAIL_DEBUG_API_REQUESTS": "maybe"})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"NUDGEPATH_EMAIL_PROVIDER": "mailgun"},
            "needs ANYMAIL_MAILGUN_API_KEY, which is missing",
        ),
        (
            {"NUDGEPATH_EMAIL_PROVIDER": "mailgun", "ANYMAIL_MAILGUN_API_KEY": " "},
            "needs ANYMAIL_MAILGUN_API_KEY, which is blank",
        ),
        (
            {"NUDGEPATH_EMAIL_PROVIDER": "Mailjet", "ANYMAIL_MAILJET_API_KEY": "k"},
            "needs ANYMAIL_MAILJET_SECRET_KEY, which is missing",
        ),
        (
            {"NUDGEPATH_EMAIL_PROVIDER": "postal", "ANYMAIL_POSTAL_API_KEY": "k"},
            "needs ANYMAIL_POSTAL_API_URL, which is missing",
        ),
    ],
)
def test_provider_without_required_setting_is_rejected(environ, message):
    with pytest.raises(ImproperlyConfigured, match=message):
        anymail_settings(environ)


def test_provider_required_setting_from_file_is_accepted(tmp_path):
    secret = tmp_path / "key"
    secret.write_text("key-from-file\n")

    result = anymail_settings(
        {
            "NUDGEPATH_EMAIL_PROVIDER": "mailgun",
            "ANYMAIL_MAILGUN_API_KEY_FILE": str(secret),
        }
    )

    assert result == {"MAILGUN_API_KEY": "key-from-file"}


def test_smtp_and_no_provider_need_no_anymail_settings():
    assert anymail_settings({"NUDGEPATH_EMAIL_PROVIDER": "smtp"}) == {}
    assert anymail_settings({}) == {}


@pytest.mark.django_db
def test_backend_configuration_error_marks_email_failed(mailgun, settings):
    # The settings check at start-up is bypassed here, as when ANYMAIL is
    # changed by hand; the backend then raises AnymailConfigurationError.
    settings.ANYMAIL = {"MAILGUN_API_URL": mailgun.api_url}
    email = make_outbox_email()

    assert send_outbox_email(email.pk) is False

    email.refresh_from_db()
    assert email.status == "failed"
    assert email.next_attempt_at is None
    assert "misconfigured" in email.last_error
    assert "MAILGUN_API_KEY" in email.last_error
    assert mailgun.messages == []
    assert not ProviderMessage.objects.exists()
