"""Sign-in backend that keeps signed-in users in the session cache.

Django reads the signed-in user from the database on every request, to
check that the account is still active and that its password has not
changed since the session began. On the lesson heartbeat, the portal's
busiest endpoint, that read cost more than the heartbeat's own write.

CachedModelBackend is Django's ModelBackend with the user read from the
session cache (USER_CACHE_ALIAS, Redis) for up to CACHED_USER_SECONDS.
Only users without a usable password are cached: learners, who sign in by
link. Staff users with a password are read from the database.
Saving or deleting a user drops the cached copy, so a password change or
a deactivation through the admin or a form takes effect at once. A change
made by QuerySet.update(), which sends no signal, takes effect within
CACHED_USER_SECONDS. Without a session cache (the demo), it reads the
database as ModelBackend does: a cache in each process's memory could not
be cleared by the others.

CoursesConfig.ready imports this module, so every process that can save a
user, such as a Celery worker, clears the cache.

With PrefetchingAuthenticationMiddleware in place of Django's
AuthenticationMiddleware, a request reads its session and its user in one
Redis round trip (config.sessions): the session store fetches the user's
copy with the session's, and get_user takes it from there instead of
asking Redis again.
"""

import logging
from contextvars import ContextVar
from typing import Any

from django.conf import settings
from django.contrib import auth
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from django.contrib.auth.middleware import AuthenticationMiddleware
from django.contrib.auth.signals import user_logged_in
from django.core.cache import caches
from django.core.cache.backends.base import BaseCache
from django.db import transaction
from django.db.models.signals import post_delete, post_save
from django.dispatch import receiver
from django.http import HttpRequest
from django.utils.functional import SimpleLazyObject

logger = logging.getLogger(__name__)

CACHED_USER_SECONDS = 60
# The backend a sign-in link signs the learner in with.
SIGN_IN_BACKEND = "courses.auth_backends.CachedModelBackend"
# The cache alias config.settings defines when a session cache URL is set.
USER_CACHE_ALIAS = "sessions"


# The session of the request whose user is being read, set only while
# PrefetchingAuthenticationMiddleware reads it, so a copy fetched with that
# session is never used for another request.
_reading_session: ContextVar[Any] = ContextVar("reading_session", default=None)
# Marks a user copy that was not fetched with the session.
_NOT_FETCHED = object()


class CachedModelBackend(ModelBackend):
    def get_user(self, user_id: Any) -> Any:
        cache = _user_cache()
        if cache is None:
            return super().get_user(user_id)

        key = user_cache_key(user_id)
        try:
            user = _fetched_with_session(key)
            if user is _NOT_FETCHED:
                user = cache.get(key)
        except Exception:
            logger.warning(
                "Could not read user %s from the cache", user_id, exc_info=True
            )
            return super().get_user(user_id)
        if user is None:
            user = super().get_user(user_id)
            if user is not None:
                _store(cache, key, user)
        return user if user is not None and self.user_can_authenticate(user) else None


def _user_cache() -> BaseCache | None:
    if USER_CACHE_ALIAS not in settings.CACHES:
        return None
    return caches[USER_CACHE_ALIAS]


def user_cache_key(user_id: Any) -> str:
    """Return the cache key of a user's copy."""
    return f"auth.user.{user_id}"


def _fetched_with_session(key: str) -> Any:
    """Return the user copy read with the request's session, once.

    None means the session store asked Redis for it and found none, and
    _NOT_FETCHED that it did not ask.
    """
    session = _reading_session.get()
    fetched = getattr(session, "fetched_copies", None)
    if not fetched or key not in fetched:
        return _NOT_FETCHED
    return fetched.pop(key)


class PrefetchingAuthenticationMiddleware(AuthenticationMiddleware):
    """Django's AuthenticationMiddleware, with the user's copy read with the session."""

    def process_request(self, request: HttpRequest) -> None:
        super().process_request(request)
        request.user = SimpleLazyObject(lambda: _signed_in_user(request))  # type: ignore[assignment]


def _signed_in_user(request: HttpRequest) -> Any:
    # As django.contrib.auth.middleware.get_user, with the session in reach
    # of CachedModelBackend.get_user.
    if not hasattr(request, "_cached_user"):
        token = _reading_session.set(request.session)
        try:
            request._cached_user = auth.get_user(request)  # type: ignore[attr-defined]
        finally:
            _reading_session.reset(token)
    return request._cached_user  # type: ignore[attr-defined]


def _store(cache: BaseCache, key: str, user: Any) -> None:
    # Learners sign in by link and have no usable password. A user with one,
    # such as a CSM, is read from the database each time instead, so Redis,
    # which the broker shares, never contains a password hash.
    if user.has_usable_password():
        return
    try:
        cache.set(key, user, CACHED_USER_SECONDS)
    except Exception:
        logger.warning("Could not store user in the cache", exc_info=True)


@receiver(user_logged_in, dispatch_uid="cached-user-signed-in")
def remember_signed_in_user(
    sender: type, request: Any, user: Any, **kwargs: Any
) -> None:
    """Cache the user as they sign in, so their first page reads no user row.

    The row is read again rather than the object passed in cached, which
    may carry related objects loaded for the sign-in that would go stale.
    """
    cache = _user_cache()
    if cache is None or user is None or user.pk is None:
        return
    fresh = ModelBackend().get_user(user.pk)
    if fresh is not None:
        _store(cache, user_cache_key(user.pk), fresh)


@receiver(post_save, sender=get_user_model(), dispatch_uid="cached-user-saved")
@receiver(post_delete, sender=get_user_model(), dispatch_uid="cached-user-deleted")
def forget_cached_user(
    sender: type,
    instance: Any,
    update_fields: frozenset[str] | None = None,
    created: bool = False,
    **kwargs: Any,
) -> None:
    """Drop the cached copy of a user that was saved or deleted.

    Signing in saves last_login alone, which no sign-in check reads; that
    save keeps the copy, so the first page after signing in reads no user.
    A Redis error here is raised, not logged: the change would otherwise
    stay unseen for CACHED_USER_SECONDS, and a deactivation must not.

    Inside a transaction, such as an admin save, the copy is dropped again
    on commit: until then other processes read the old row and may cache it.
    """
    if update_fields is not None and set(update_fields) <= {"last_login"}:
        return
    if created:
        # No copy of a new row can exist, and a learner's first sign-in
        # creates their user, which must work while Redis is down.
        return
    cache = _user_cache()
    if cache is None:
        return

    key = user_cache_key(instance.pk)
    cache.delete(key)
    using = kwargs.get("using")
    if transaction.get_connection(using).in_atomic_block:
        transaction.on_commit(lambda: cache.delete(key), using=using)
