"""Signing in with a magic link, requesting a link, staff password sign-in."""

import re
from datetime import timedelta

import pytest
from django.contrib.auth import SESSION_KEY
from django.contrib.auth.models import User
from django.utils import timezone

from courses.models import SignInLink
from courses.services import SIGN_IN_LINKS_PER_HOUR, create_sign_in_url
from tests.factories import make_contact
from tests.portal.helpers import path_of

pytestmark = pytest.mark.django_db


def signed_in_user_id(client):
    return client.session.get(SESSION_KEY)


def user_of(contact):
    return User.objects.get(contact__pk=contact.pk)


def test_magic_link_signs_in_once(client):
    contact = make_contact()
    path = path_of(create_sign_in_url(contact))

    confirm = client.get(path)
    assert confirm.status_code == 200
    assert b"Sign in" in confirm.content
    assert SignInLink.objects.get().used_at is None

    response = client.post(path)
    assert response.status_code == 302
    assert response["Location"] == "/learn/"
    assert signed_in_user_id(client) == str(user_of(contact).pk)

    second_client = client.__class__()
    second = second_client.post(path)
    assert second.status_code == 410
    assert b"Request a new link" in second.content
    assert signed_in_user_id(second_client) is None


def test_confirmation_page_keeps_link_unused(client):
    contact = make_contact()
    path = path_of(create_sign_in_url(contact))

    client.get(path)
    client.get(path)

    assert client.post(path).status_code == 302


def test_expired_link_is_rejected(client):
    contact = make_contact()
    path = path_of(create_sign_in_url(contact))
    SignInLink.objects.update(expires_at=timezone.now() - timedelta(seconds=1))

    shown = client.get(path)
    posted = client.post(path)

    assert shown.status_code == 410
    assert posted.status_code == 410
    assert b"Request a new link" in posted.content
    assert signed_in_user_id(client) is None
    assert SignInLink.objects.get().used_at is None


def test_unknown_token_is_rejected(client):
    response = client.post("/learn/sign-in/" + "x" * 43 + "/")

    assert response.status_code == 410
    assert signed_in_user_id(client) is None


def test_first_sign_in_creates_user(client):
    contact = make_contact(external_id="C-9001")

    client.post(path_of(create_sign_in_url(contact)))

    user = user_of(contact)
    assert user.username == "C-9001"
    assert user.email == contact.email
    assert not user.has_usable_password()
    assert not user.is_staff


def test_second_sign_in_reuses_user(client):
    contact = make_contact()
    client.post(path_of(create_sign_in_url(contact)))
    client.post("/learn/sign-out/")

    client.post(path_of(create_sign_in_url(contact)))

    assert User.objects.count() == 1
    assert signed_in_user_id(client) == str(User.objects.get().pk)


def test_taken_username_is_not_reused(client):
    staff = User.objects.create_user("C-shared", password="a long staff password")
    staff.is_staff = True
    staff.save()
    contact = make_contact(external_id="C-shared")

    client.post(path_of(create_sign_in_url(contact)))

    user = user_of(contact)
    assert user.pk != staff.pk
    assert user.username == contact.email
    assert signed_in_user_id(client) == str(user.pk)


def test_inactive_user_cannot_sign_in(client):
    contact = make_contact()
    client.post(path_of(create_sign_in_url(contact)))
    client.post("/learn/sign-out/")
    User.objects.update(is_active=False)

    response = client.post(path_of(create_sign_in_url(contact)))

    assert response.status_code == 403
    assert signed_in_user_id(client) is None


@pytest.mark.parametrize("role", ["is_staff", "is_superuser"])
def test_link_never_signs_in_staff(client, django_user_model, role):
    contact = make_contact()
    staff = django_user_model.objects.create_user(
        username=f"staff-{role}", password="x", **{role: True}
    )
    contact.user = staff
    contact.save(update_fields=["user"])

    response = client.post(path_of(create_sign_in_url(contact)))

    assert response.status_code == 403
    assert signed_in_user_id(client) is None
    assert "staff sign-in page" in response.content.decode()


def test_local_next_path_is_followed(client):
    contact = make_contact()
    path = path_of(create_sign_in_url(contact, "/learn/courses/intro/?from=email"))

    response = client.post(path)

    assert response["Location"] == "/learn/courses/intro/?from=email"


@pytest.mark.parametrize(
    "next_path",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example/",
        "/\t/evil.example/",
        "\\\\evil.example/",
        "javascript:alert(1)",
        "evil.example/learn/",
        "/learn/\r\nSet-Cookie: a=b",
    ],
)
def test_off_site_next_path_goes_home(client, next_path):
    contact = make_contact()
    path = path_of(create_sign_in_url(contact))
    SignInLink.objects.update(next_path=next_path)

    response = client.post(path)

    assert response.status_code == 302
    assert response["Location"] == "/learn/"


def test_request_link_answers_identically(client, mailoutbox):
    known = make_contact(email="known@example.com")

    known_response = client.post("/learn/sign-in/", {"email": "known@example.com"})
    unknown_response = client.post("/learn/sign-in/", {"email": "nobody@example.com"})

    assert known_response.status_code == unknown_response.status_code == 302
    assert known_response["Location"] == unknown_response["Location"]
    assert (
        client.get(known_response["Location"]).content
        == client.get(unknown_response["Location"]).content
    )
    assert len(mailoutbox) == 1
    assert mailoutbox[0].to == [known.email]
    assert SignInLink.objects.filter(contact=known).count() == 1
    assert SignInLink.objects.count() == 1


def test_emailed_link_signs_in(client, mailoutbox):
    contact = make_contact(email="reader@example.com")
    client.post("/learn/sign-in/", {"email": "Reader@Example.com"})

    match = re.search(r"https?://\S+/learn/sign-in/\S+/", mailoutbox[0].body)
    assert match is not None
    response = client.post(path_of(match.group(0)))

    assert response.status_code == 302
    assert signed_in_user_id(client) == str(user_of(contact).pk)


def test_request_link_is_rate_limited(client, mailoutbox):
    contact = make_contact()

    responses = [
        client.post("/learn/sign-in/", {"email": contact.email})
        for _ in range(SIGN_IN_LINKS_PER_HOUR + 2)
    ]

    assert len(mailoutbox) == SIGN_IN_LINKS_PER_HOUR
    assert SignInLink.objects.count() == SIGN_IN_LINKS_PER_HOUR
    assert {response["Location"] for response in responses} == {"/learn/sign-in/sent/"}


def test_rate_limit_counts_last_hour_only(client, mailoutbox):
    contact = make_contact()
    for _ in range(SIGN_IN_LINKS_PER_HOUR):
        create_sign_in_url(contact)
    SignInLink.objects.update(created_at=timezone.now() - timedelta(minutes=61))

    client.post("/learn/sign-in/", {"email": contact.email})

    assert len(mailoutbox) == 1


def test_request_link_keeps_local_next(client, mailoutbox):
    contact = make_contact()

    client.post(
        "/learn/sign-in/", {"email": contact.email, "next": "/learn/courses/intro/"}
    )
    client.post(
        "/learn/sign-in/", {"email": contact.email, "next": "https://evil.example/"}
    )

    stored = list(SignInLink.objects.order_by("id").values_list("next_path", flat=True))
    assert stored == ["/learn/courses/intro/", "/learn/"]


def test_sign_in_page_passes_next_along(client):
    response = client.get("/learn/sign-in/?next=/learn/courses/intro/")

    assert b'value="/learn/courses/intro/"' in response.content


def test_invalid_email_shows_error(client, mailoutbox):
    response = client.post("/learn/sign-in/", {"email": "not an address"})

    assert response.status_code == 200
    assert b"Enter a valid email address" in response.content
    assert mailoutbox == []


def test_staff_password_sign_in(client):
    staff = User.objects.create_user(
        "csm", password="a long staff password", is_staff=True
    )

    response = client.post(
        "/learn/sign-in/staff/",
        {"username": "csm", "password": "a long staff password"},
    )

    assert response.status_code == 302
    assert response["Location"] == "/learn/"
    assert signed_in_user_id(client) == str(staff.pk)


def test_staff_sign_in_wrong_password(client):
    User.objects.create_user("csm", password="a long staff password", is_staff=True)

    response = client.post(
        "/learn/sign-in/staff/", {"username": "csm", "password": "wrong"}
    )

    assert response.status_code == 200
    assert signed_in_user_id(client) is None


def test_sign_out_requires_post(client):
    contact = make_contact()
    client.post(path_of(create_sign_in_url(contact)))

    refused = client.get("/learn/sign-out/")
    assert refused.status_code == 405
    assert signed_in_user_id(client) is not None

    response = client.post("/learn/sign-out/")
    assert response.status_code == 302
    assert response["Location"] == "/learn/sign-in/"
    assert signed_in_user_id(client) is None
