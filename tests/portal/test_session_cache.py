"""Sessions and signed-in users read from Redis, and what still ends a session."""

import logging
import threading
from urllib.parse import urlsplit

import pytest
import redis
from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.cache import caches
from django.db import connection, connections, transaction
from django.test import Client, override_settings
from django.test.utils import CaptureQueriesContext

from config.sessions import CACHED_SESSION_SECONDS, SessionStore, remembered_user_ids
from courses.auth_backends import (
    CACHED_USER_SECONDS,
    SIGN_IN_BACKEND,
    USER_CACHE_ALIAS,
    CachedModelBackend,
)
from courses.portal_session import CONTACT_ID_SESSION_KEY
from courses.services import create_sign_in_url, portal_user_for
from tests.factories import make_contact
from tests.portal.helpers import enroll_contact, lesson_url, make_course

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def session_cache():
    """The suite runs with a Redis session cache, as production does."""
    assert settings.SESSION_ENGINE == "config.sessions"
    caches[USER_CACHE_ALIAS].clear()


@pytest.fixture
def learner():
    contact = make_contact()
    course, lessons = make_course(2)
    enroll_contact(contact, course)
    user = portal_user_for(contact)
    client = Client()
    client.force_login(user, backend=SIGN_IN_BACKEND)
    # As the sign-in link does.
    session = client.session
    session[CONTACT_ID_SESSION_KEY] = contact.pk
    session.save()
    return client, user, lesson_url(course, lessons[0])


def session_and_user_queries(client: Client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return [
        q["sql"]
        for q in queries.captured_queries
        if "django_session" in q["sql"] or 'FROM "auth_user"' in q["sql"]
    ]


def test_signed_in_request_reads_neither_session_nor_user(learner):
    client, _user, url = learner
    client.get(url)

    assert session_and_user_queries(client, url) == []


def test_first_page_after_sign_in_reads_no_user(learner):
    client, _user, url = learner

    # Signing in saved last_login, which keeps the cached copy.
    assert session_and_user_queries(client, url) == []


def test_copies_live_at_most_their_limits(learner):
    client, user, url = learner
    client.get(url)

    cache = caches[USER_CACHE_ALIAS]
    redis = cache._cache.get_client()  # type: ignore[attr-defined]
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    session_ttl = redis.ttl(
        cache.make_key("django.contrib.sessions.cached_db" + session_key)
    )
    user_ttl = redis.ttl(cache.make_key(f"auth.user.{user.pk}"))

    assert 0 < session_ttl <= CACHED_SESSION_SECONDS
    assert 0 < user_ttl <= CACHED_USER_SECONDS


def test_expired_copy_is_read_again_from_the_database(learner):
    client, _user, url = learner
    client.get(url)
    caches[USER_CACHE_ALIAS].clear()

    reads = session_and_user_queries(client, url)

    assert len(reads) == 2
    assert session_and_user_queries(client, url) == []


def test_sign_out_ends_the_cached_session(learner):
    client, _user, url = learner
    client.get(url)
    stolen = Client()
    stolen.cookies = client.cookies.__class__(client.cookies)

    client.post("/learn/sign-out/")

    response = stolen.get(url)
    assert response.status_code == 302
    assert "/sign-in/" in response["Location"]


def test_deactivation_signs_out_at_once(learner):
    client, user, url = learner
    client.get(url)

    user.is_active = False
    user.save()

    response = client.get(url)
    assert response.status_code == 302


def test_password_change_ends_other_sessions(learner):
    client, user, url = learner
    client.get(url)

    user.set_password("a new password for this test")
    user.save()

    response = client.get(url)
    assert response.status_code == 302


def test_session_from_before_the_cache_still_resolves():
    contact = make_contact()
    course, lessons = make_course(1)
    enroll_contact(contact, course)
    client = Client()
    client.force_login(
        portal_user_for(contact), backend="django.contrib.auth.backends.ModelBackend"
    )

    assert client.get(lesson_url(course, lessons[0])).status_code == 200


UNREACHABLE_REDIS = {
    **settings.CACHES,
    "sessions": {
        **settings.CACHES["sessions"],
        # Nothing listens on port 1, so every command fails at once.
        "LOCATION": "redis://127.0.0.1:1/0",
    },
}


def test_redis_outage_falls_back_to_the_database(learner, caplog):
    client, _user, url = learner

    with override_settings(CACHES=UNREACHABLE_REDIS), caplog.at_level(logging.WARNING):
        response = client.get(url)

    assert response.status_code == 200
    assert "Could not read session from the cache" in caplog.text
    assert "Could not read user" in caplog.text


# A returning learner already has a user; a first sign-in creates it.
@pytest.mark.parametrize("returning", [True, False], ids=["returning", "first"])
def test_sign_in_by_link_during_redis_outage(returning):
    contact = make_contact()
    course, lessons = make_course(1)
    enroll_contact(contact, course)
    if returning:
        portal_user_for(contact)
    sign_in_path = urlsplit(create_sign_in_url(contact)).path
    client = Client()

    with override_settings(CACHES=UNREACHABLE_REDIS):
        response = client.post(sign_in_path)
        page = client.get(lesson_url(course, lessons[0]))

    assert response.status_code == 302
    assert page.status_code == 200


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_deactivation_beats_a_concurrent_read():
    user = portal_user_for(make_contact())
    backend = CachedModelBackend()

    def request_in_another_process() -> None:
        # Its connection reads the committed row, where the user is still active.
        backend.get_user(user.pk)
        connections.close_all()

    with transaction.atomic():
        user.is_active = False
        user.save()
        reader = threading.Thread(target=request_in_another_process)
        reader.start()
        reader.join()

    assert backend.get_user(user.pk) is None


def test_session_cache_commands_time_out_quickly():
    options = settings.CACHES["sessions"]["OPTIONS"]

    # redis-py's defaults held a request 5 seconds per command when Redis
    # stopped responding, and a page makes up to four such commands.
    assert 0 < options["socket_connect_timeout"] <= 1
    assert 0 < options["socket_timeout"] <= 1


def test_failed_session_read_stores_no_copy(learner, monkeypatch):
    client, _user, url = learner
    client.get(url)
    cache = caches[USER_CACHE_ALIAS]
    stored_keys = []

    def fail(*args, **kwargs):
        raise TimeoutError("Redis did not answer")

    monkeypatch.setattr(cache, "get", fail)
    monkeypatch.setattr(
        cache, "set", lambda key, *args, **kwargs: stored_keys.append(key)
    )
    response = client.get(url)

    assert response.status_code == 200
    assert stored_keys == []


def test_async_methods_keep_limit_and_fallback(learner, monkeypatch):
    client, _user, url = learner
    client.get(url)
    session_key = client.cookies[settings.SESSION_COOKIE_NAME].value
    cache = caches[USER_CACHE_ALIAS]
    redis = cache._cache.get_client()  # type: ignore[attr-defined]

    store = SessionStore(session_key)
    store["note"] = "saved asynchronously"
    async_to_sync(store.asave)()
    session_ttl = redis.ttl(store.copies.make_key(store.cache_key))

    def fail(*args, **kwargs):
        raise TimeoutError("Redis did not answer")

    monkeypatch.setattr(store.copies, "get", fail)
    loaded = async_to_sync(store.aload)()

    assert 0 < session_ttl <= CACHED_SESSION_SECONDS
    assert loaded["note"] == "saved asynchronously"
    assert async_to_sync(store.aexists)(session_key)


def test_user_with_password_never_cached(learner):
    _client, learner_user, _url = learner
    staff = Client()
    staff_user = get_user_model().objects.create_user(
        "csm-with-password", password="a password for this test", is_staff=True
    )
    staff.force_login(staff_user, backend=SIGN_IN_BACKEND)
    user_reads = []
    for _ in range(2):
        with CaptureQueriesContext(connection) as queries:
            staff.get("/learn/")
        user_reads.append(
            [q for q in queries.captured_queries if 'FROM "auth_user"' in q["sql"]]
        )

    cache = caches[USER_CACHE_ALIAS]
    assert cache.get(f"auth.user.{staff_user.pk}") is None
    assert [len(reads) for reads in user_reads] == [1, 1]
    assert cache.get(f"auth.user.{learner_user.pk}") is not None


def redis_commands(client: Client, url: str, monkeypatch) -> list[str]:
    """Return the names of the Redis commands one request sends."""
    sent: list[str] = []
    send = redis.Redis.execute_command

    def counting(self, *args, **options):
        sent.append(str(args[0]).upper())
        return send(self, *args, **options)

    with monkeypatch.context() as patched:
        patched.setattr(redis.Redis, "execute_command", counting)
        response = client.get(url)
    assert response.status_code == 200
    return sent


def test_session_and_user_read_in_one_round_trip(learner, monkeypatch):
    client, _user, url = learner
    client.get(url)

    assert redis_commands(client, url, monkeypatch) == ["MGET"]


def test_session_naming_another_user_reads_its_own(learner, monkeypatch):
    client, user, url = learner
    client.get(url)
    other = get_user_model().objects.create_user("other-learner")
    CachedModelBackend().get_user(other.pk)
    store = SessionStore(client.cookies[settings.SESSION_COOKIE_NAME].value)
    # As if this process last saw the session signed in as the other user.
    monkeypatch.setitem(remembered_user_ids, store.cache_key, str(other.pk))

    commands = redis_commands(client, url, monkeypatch)
    response = client.get(url)

    assert commands == ["MGET", "GET"]
    assert response.wsgi_request.user.pk == user.pk
