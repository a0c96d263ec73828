"""The signed-in learner's contact id, kept in the session.

Sign-in by link stores the contact's id in the session, so a request that
needs only the id, such as a heartbeat, skips the contact lookup. Sessions
signed in another way (a staff user's password, a test's force_login, a
session from before this key existed) get the id looked up once and
stored on their first such request.

The value is trusted because the session data stays on the server
(SESSION_ENGINE is the database backend). Django's login() flushes the
session when a different user signs in, and logout() always flushes it,
so the id belongs to the session's user.
"""

from django.http import HttpRequest

from customers.models import Contact

CONTACT_ID_SESSION_KEY = "portal_contact_id"


def remember_contact_id(request: HttpRequest, contact_id: int) -> None:
    """Store the signed-in user's contact id in the session; call after login()."""
    request.session[CONTACT_ID_SESSION_KEY] = contact_id


def signed_in_contact_id(request: HttpRequest) -> int | None:
    """Return the signed-in user's contact id, or None for a user without a contact.

    The caller must have checked request.user.is_authenticated. Costs no
    query once the session contains the id, and one the first time.
    """
    stored = request.session.get(CONTACT_ID_SESSION_KEY)
    if isinstance(stored, int):
        return stored

    user_id = request.user.pk
    if user_id is None:
        return None
    contact_id = (
        Contact.objects.filter(user_id=user_id).values_list("pk", flat=True).first()
    )
    if contact_id is not None:
        remember_contact_id(request, contact_id)
    return contact_id
