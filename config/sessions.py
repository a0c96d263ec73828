"""Sessions kept in the database and read from Redis.

Every signed-in request reads its session. Django's database backend makes
that a query, which on the portal's busiest endpoint, the lesson
heartbeat, cost as much as the heartbeat's own write. This backend is
Django's cached_db with two changes:

- A cached copy lives at most CACHED_SESSION_SECONDS. Signing out deletes
  the database row and then the cached copy. If Redis fails between the
  two, the copy keeps the session alive until it expires, so it must not
  live as long as the session, which may be weeks.
- A Redis error while reading or refreshing the cached copy is logged and
  the session is read from the database, so a Redis outage slows pages
  down instead of failing them. Signing in, which checks that its new key
  is free, also falls back to the database. Signing out still fails with
  the error, as in Django, so a sign-out that left a copy behind is never
  reported as done.

- A signed-in request reads its user's cached copy too
  (courses.auth_backends). Each process remembers which user a session
  named when it was last loaded, and the next load reads that user's copy
  with the session in one MGET, leaving it in fetched_copies for the
  backend. The backend takes a copy only under the key of the user that
  the session names, so a session that now names another user costs a
  second read, never a wrong user.

The async methods (aload, aexists, asave) run the same code in a thread,
so code that awaits them gets the same expiry and fallback.

settings.SESSION_ENGINE names this module when a session cache URL is set
(NUDGEPATH_SESSION_CACHE_URL, by default the Redis broker's URL).
"""

import logging
from typing import Any

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import BACKEND_SESSION_KEY, SESSION_KEY
from django.contrib.sessions.backends import cached_db
from django.core.cache import caches

from courses.auth_backends import SIGN_IN_BACKEND, user_cache_key

logger = logging.getLogger(__name__)

# How long a cached copy of a session lives, in seconds. A learner's
# session is read again from the database at most this often.
CACHED_SESSION_SECONDS = 5 * 60
# The maximum number of sessions whose user one process remembers. When
# the map is full, it is emptied and starts again.
MAX_REMEMBERED_SESSIONS = 10_000

# Session cache key -> the user id its data named when last loaded here.
remembered_user_ids: dict[str, str] = {}


class SessionStore(cached_db.SessionStore):
    def __init__(self, session_key: str | None = None) -> None:
        super().__init__(session_key)
        self.copies = caches[settings.SESSION_CACHE_ALIAS]
        # The user copies read with the session: cache key -> the copy, or
        # None when Redis had none.
        self.fetched_copies: dict[str, Any] = {}

    def load(self) -> dict[str, Any]:
        try:
            data = self._read_copies()
        except Exception:
            logger.warning("Could not read session from the cache", exc_info=True)
            # Storing a copy in a Redis that has just failed would wait again.
            return self._load_from_db(keep_copy=False)
        if data is None:
            data = self._load_from_db(keep_copy=True)
        self._remember_user(data)
        return data

    def _read_copies(self) -> dict[str, Any] | None:
        """Read the session's copy, with its user's if this process remembers it."""
        user_id = remembered_user_ids.get(self.cache_key)
        if user_id is None:
            return self.copies.get(self.cache_key)  # type: ignore[no-any-return]
        user_key = user_cache_key(user_id)
        found = self.copies.get_many([self.cache_key, user_key])
        self.fetched_copies = {user_key: found.get(user_key)}
        return found.get(self.cache_key)

    def _remember_user(self, data: dict[str, Any]) -> None:
        user_id = data.get(SESSION_KEY)
        if user_id is None or data.get(BACKEND_SESSION_KEY) != SIGN_IN_BACKEND:
            remembered_user_ids.pop(self.cache_key, None)
            return
        if len(remembered_user_ids) >= MAX_REMEMBERED_SESSIONS:
            remembered_user_ids.clear()
        remembered_user_ids[self.cache_key] = str(user_id)

    def _load_from_db(self, keep_copy: bool) -> dict[str, Any]:
        stored = self._get_session_from_db()  # type: ignore[attr-defined]
        if stored is None:
            return {}
        data = self.decode(stored.session_data)
        if keep_copy:
            self._keep_copy(data, self.get_expiry_age(expiry=stored.expire_date))
        return data

    def exists(self, session_key: str | None) -> bool:
        # Signing in checks whether a new random key is taken. During an
        # outage the database, which contains every live session, decides.
        if not session_key:
            return False
        try:
            if self.cache_key_prefix + session_key in self.copies:
                return True
        except Exception:
            logger.warning("Could not look up session in the cache", exc_info=True)
        return bool(super(cached_db.SessionStore, self).exists(session_key))

    def save(self, must_create: bool = False) -> None:
        # The database backend's save, not cached_db's, which would cache the
        # copy for the session's whole lifetime.
        super(cached_db.SessionStore, self).save(must_create)
        self._keep_copy(dict(self.items()), self.get_expiry_age())

    def _keep_copy(self, data: dict[str, Any], expiry_age: int) -> None:
        try:
            self.copies.set(
                self.cache_key, data, min(expiry_age, CACHED_SESSION_SECONDS)
            )
        except Exception:
            logger.warning("Could not store session in the cache", exc_info=True)

    # Django's cached_db has async versions that read and write the cache
    # without the changes above, so they are replaced by the sync ones.
    async def aload(self) -> dict[str, Any]:
        return await sync_to_async(self.load)()

    async def aexists(self, session_key: str | None) -> bool:
        return await sync_to_async(self.exists)(session_key)

    async def asave(self, must_create: bool = False) -> None:
        await sync_to_async(self.save)(must_create)
