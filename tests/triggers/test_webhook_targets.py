"""Webhook endpoints: URLs and secrets checked at save, addresses checked at send."""

import socket

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from tests.factories import NOW, make_contact
from tests.triggers.factories import make_step, make_trigger
from triggers import webhook_targets
from triggers.models import WebhookDelivery, WebhookEndpoint
from triggers.services import run_sweep
from triggers.webhooks import send_delivery

pytestmark = pytest.mark.django_db

SECRET = "a-secret-of-enough-length"


def add_endpoint(admin_client, url, secret=SECRET):
    return admin_client.post(
        reverse("admin:triggers_webhookendpoint_add"),
        {"name": "Relay", "url": url, "secret": secret, "is_active": "on"},
    )


def form_errors(response, field):
    return response.context["adminform"].form.errors.get(field, [])


@pytest.mark.parametrize(
    ("url", "words"),
    [
        ("http://u:p@127.0.0.1:9/x", "contains a user name or password"),
        ("https://user@hooks.example.com/x", "contains a user name or password"),
        ("127.0.0.1:9/hook", "write the scheme in front"),
        ("hooks.example.com/x", "write the scheme in front"),
        ("ftp://hooks.example.com/x", "'ftp' is not supported"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.0.0/16"),
        ("http://169.254.10.1:8080/", "169.254.0.0/16"),
        ("http://[fd00:ec2::254]/latest/", "fd00:ec2::254/128"),
        ("http://[fe80::1]/hook", "fe80::/10"),
        ("http://[::ffff:169.254.169.254]/", "169.254.0.0/16"),
    ],
)
def test_admin_rejects_webhook_url(admin_client, url, words):
    response = add_endpoint(admin_client, url)

    assert response.status_code == 200
    errors = form_errors(response, "url")
    assert len(errors) == 1
    assert words in errors[0]
    assert not WebhookEndpoint.objects.exists()


def test_credentials_left_out_of_message(admin_client):
    response = add_endpoint(admin_client, "http://u:hunter2@127.0.0.1:9/x")

    assert "hunter2" not in form_errors(response, "url")[0]


def test_admin_rejects_short_secret(admin_client):
    response = add_endpoint(admin_client, "http://127.0.0.1:9/hook", secret="x")

    errors = form_errors(response, "secret")
    assert len(errors) == 1
    assert "1 characters long" in errors[0]
    assert "at least 16" in errors[0]
    assert not WebhookEndpoint.objects.exists()


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9/hook",
        "http://localhost:8080/hook",
        "https://hooks.example.com/nudgepath",
        "http://10.0.0.5/internal",
    ],
)
def test_admin_accepts_webhook_url(admin_client, url):
    response = add_endpoint(admin_client, url)

    assert response.status_code == 302
    assert WebhookEndpoint.objects.get().url == url


def test_model_clean_checks_url_and_secret():
    endpoint = WebhookEndpoint(
        name="Relay", url="http://169.254.169.254/latest/", secret="short"
    )

    with pytest.raises(ValidationError) as error:
        endpoint.full_clean()

    assert "169.254.0.0/16" in error.value.message_dict["url"][0]
    assert "at least 16" in error.value.message_dict["secret"][0]


def test_generated_secret_is_long_enough():
    endpoint = WebhookEndpoint(name="Relay", url="https://hooks.example.com/x")

    endpoint.full_clean()

    assert len(endpoint.secret) >= webhook_targets.MIN_SECRET_LENGTH


def delivery_to(url):
    make_contact()
    # Saved without clean(), like an endpoint stored before the checks.
    endpoint = WebhookEndpoint.objects.create(name="Relay", url=url, secret=SECRET)
    trigger = make_trigger({"kind": "inactivity", "days": 10})
    make_step(trigger, 1, "call_webhook", webhook=endpoint)
    run_sweep(NOW, triggers=[trigger])
    return WebhookDelivery.objects.get()


def test_send_checks_resolved_address(monkeypatch):
    delivery = delivery_to("http://metadata.example.test/latest/")
    resolved = []

    def fake_getaddrinfo(host, port, *args, **kwargs):
        resolved.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port))]

    def no_connection(*args, **kwargs):
        raise AssertionError("a socket was opened for a blocked address")

    monkeypatch.setattr(webhook_targets.socket, "getaddrinfo", fake_getaddrinfo)
    monkeypatch.setattr(webhook_targets.socket, "socket", no_connection)

    assert send_delivery(delivery.pk) is False

    delivery.refresh_from_db()
    assert resolved == ["metadata.example.test"]
    assert delivery.status == "pending"
    assert "resolves to 169.254.169.254" in delivery.last_error
    assert "BlockedAddressError" in delivery.last_error


def test_send_rejects_stored_credentials():
    delivery = delivery_to("http://u:p@127.0.0.1:9/x")

    assert send_delivery(delivery.pk) is False

    delivery.refresh_from_db()
    assert "contains a user name or password" in delivery.last_error


def test_connect_checked_reaches_loopback():
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]

    connection = webhook_targets.connect_checked(("127.0.0.1", port), timeout=5)

    assert connection.getpeername() == ("127.0.0.1", port)
    connection.close()
    listener.close()
