"""Sending the email outbox: claiming rows, delivering, retrying, releasing.

Delivery is at least once. A worker claims a row inside a transaction that
locks it with SELECT ... FOR UPDATE SKIP LOCKED and moves it from pending to
sending, so two workers never send the same row at the same time. In the
same transaction the delivery rules (triggers.delivery) lock the contact and
decide whether the email goes now, waits for the cap or quiet hours, or is
skipped. A row left in "sending" by a crashed worker is released back to
pending after a timeout and sent again with the same Message-ID and
Idempotency-Key headers, so a receiver can drop the duplicate.
docs/decisions/0001-outbox-email.md gives the reasons.
"""

import logging
import time
from collections.abc import Iterable
from datetime import datetime, timedelta
from email.utils import parseaddr

from anymail.exceptions import AnymailError
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from triggers import retries
from triggers.delivery import Action, SendDecision, check_before_send
from triggers.models import OutboxEmail, OutboxStatus

logger = logging.getLogger(__name__)

# Attempts before a row is marked failed; a CSM can retry it from the admin.
MAX_ATTEMPTS = 6
# Delay before retry n is BACKOFF_BASE * 2 ** (n - 1), capped at BACKOFF_MAX:
# 1, 2, 4, 8 and 16 minutes for the default six attempts.
BACKOFF_BASE = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=1)
# Used when EMAIL_TIMEOUT is unset, so an SMTP call cannot hang longer than
# a claim is trusted (see STUCK_AFTER).
DEFAULT_SEND_TIMEOUT_SECONDS = 60
# A row in "sending" for longer than this is assumed to belong to a worker
# that died; it must stay well above the send timeout.
STUCK_AFTER = timedelta(minutes=15)
# Rows the periodic job queues per run; the rest wait for the next run.
PENDING_BATCH_SIZE = 500


def retry_delay(attempts: int) -> timedelta:
    """Return the wait before the next attempt after `attempts` failed attempts."""
    exponent = max(attempts - 1, 0)
    return min(BACKOFF_BASE * 2**exponent, BACKOFF_MAX)


def message_id_for(email: OutboxEmail) -> str:
    """Return the Message-ID header value, the same on every attempt of the row.

    The creation time is part of it, so two installations whose ids overlap
    still produce different ids.
    """
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "localhost"
    return f"<outbox-{email.pk}.{int(email.created_at.timestamp())}@{domain}>"


def idempotency_key_for(email: OutboxEmail) -> str:
    """Return the Idempotency-Key header value: the Message-ID without brackets.

    Sending APIs that accept an idempotency key drop a second request with
    the same key, which turns a resend after a crash into a no-op there.
    """
    return message_id_for(email).strip("<>")


def send_outbox_email(outbox_id: int) -> bool:
    """Claim one outbox row and send it; return whether this call sent it.

    Returns False without sending when the row does not exist, is not
    pending, waits for a retry or a deferral, is locked by another worker,
    or the delivery rules defer or skip it. A mail server error
    (SMTPException is an OSError) or an email provider's error (AnymailError)
    returns the row to pending with the error and a backoff, or marks it
    failed after MAX_ATTEMPTS; it is not raised. A backend configuration
    error (ImproperlyConfigured, which AnymailConfigurationError subclasses)
    marks the row failed at once, because no retry can pass until the
    settings change; the admin's retry action queues it again after that.
    """
    email = _claim(outbox_id)
    if email is None:
        return False

    started = time.monotonic()
    try:
        _deliver(email)
    except (OSError, AnymailError) as exc:
        _record_failure(email, exc)
        return False
    except ImproperlyConfigured as exc:
        _record_configuration_error(email, exc)
        return False

    OutboxEmail.objects.filter(pk=email.pk, status=OutboxStatus.SENDING).update(
        status=OutboxStatus.SENT, sent_at=timezone.now(), last_error=""
    )
    logger.info(
        "Sent outbox email %s (firing %s, attempt %s) in %.0f ms",
        email.pk,
        email.firing_id,
        email.attempts,
        (time.monotonic() - started) * 1000,
    )
    return True


def _due(now: datetime) -> Q:
    return Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now)


def _claim(outbox_id: int) -> OutboxEmail | None:
    """Move a due pending row to sending; return it only to the one caller that did.

    The row lock is taken with SKIP LOCKED, so a second worker asking for the
    same row at the same moment gets nothing instead of waiting, and once the
    first commits the row is no longer pending. No lock is held while the
    mail server is called: the transaction ends before _deliver.
    """
    now = timezone.now()
    with transaction.atomic():
        email = (
            OutboxEmail.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("firing__trigger")
            .filter(_due(now), pk=outbox_id, status=OutboxStatus.PENDING)
            .first()
        )
        if email is None:
            logger.debug(
                "Outbox email %s not claimed: taken, locked or not due", outbox_id
            )
            return None

        decision = check_before_send(email, now)
        if decision.action != Action.SEND:
            _hold_back(email, decision)
            return None

        email.status = OutboxStatus.SENDING
        email.attempts += 1
        email.claimed_at = now
        email.message_id = message_id_for(email)
        email.save(update_fields=["status", "attempts", "claimed_at", "message_id"])
    return email


def _hold_back(email: OutboxEmail, decision: SendDecision) -> None:
    """Record a deferral or a skip decided by the delivery rules."""
    if decision.action == Action.DEFER:
        email.next_attempt_at = decision.at
        email.save(update_fields=["next_attempt_at"])
        logger.info(
            "Deferred outbox email %s to contact %s until %s: %s",
            email.pk,
            email.contact_id,
            decision.at.isoformat() if decision.at else None,
            decision.reason,
        )
        return

    email.status = OutboxStatus.SKIPPED
    email.skip_reason = decision.reason
    email.next_attempt_at = None
    email.save(update_fields=["status", "skip_reason", "next_attempt_at"])
    logger.info(
        "Skipped outbox email %s to contact %s: %s",
        email.pk,
        email.contact_id,
        decision.reason,
    )


def _deliver(email: OutboxEmail) -> None:
    timeout = getattr(settings, "EMAIL_TIMEOUT", None) or DEFAULT_SEND_TIMEOUT_SECONDS
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=email.body_text,
        to=[email.to_email],
        headers={
            "Message-ID": message_id_for(email),
            "Idempotency-Key": idempotency_key_for(email),
        },
        connection=get_connection(fail_silently=False, timeout=timeout),
    )
    message.send(fail_silently=False)


def _record_failure(email: OutboxEmail, exc: Exception) -> None:
    error = f"{type(exc).__name__}: {exc}"
    if email.attempts >= MAX_ATTEMPTS:
        OutboxEmail.objects.filter(pk=email.pk, status=OutboxStatus.SENDING).update(
            status=OutboxStatus.FAILED, last_error=error, next_attempt_at=None
        )
        logger.error(
            "Outbox email %s failed after %s attempts, giving up: %s",
            email.pk,
            email.attempts,
            error,
        )
        return

    delay = retry_delay(email.attempts)
    OutboxEmail.objects.filter(pk=email.pk, status=OutboxStatus.SENDING).update(
        status=OutboxStatus.PENDING,
        last_error=error,
        next_attempt_at=timezone.now() + delay,
    )
    logger.warning(
        "Outbox email %s attempt %s failed, retrying in %s s: %s",
        email.pk,
        email.attempts,
        int(delay.total_seconds()),
        error,
    )


def _record_configuration_error(email: OutboxEmail, exc: ImproperlyConfigured) -> None:
    # The backend raises this before it talks to the server, so nothing was
    # sent and a later retry cannot send the email twice.
    error = (
        f"The email backend is misconfigured ({type(exc).__name__}: {exc}); "
        "fix the email settings, restart, then retry this email from the admin."
    )
    OutboxEmail.objects.filter(pk=email.pk, status=OutboxStatus.SENDING).update(
        status=OutboxStatus.FAILED, last_error=error, next_attempt_at=None
    )
    logger.error("Outbox email %s not sent: %s", email.pk, error)


def release_stuck_email(older_than: timedelta) -> int:
    """Release emails claimed longer ago than older_than; return how many."""
    return retries.release_stuck(OutboxEmail, older_than, MAX_ATTEMPTS, "outbox emails")


def due_outbox_ids(limit: int = PENDING_BATCH_SIZE) -> list[int]:
    """Return up to `limit` ids of pending emails that are due, oldest first."""
    return retries.due_ids(OutboxEmail, limit)


def send_due_email() -> int:
    """Send every due pending email in this process, oldest first; return how many.

    The embedded demo has no workers or beat, so it calls this once after
    replaying history. Each row goes through send_outbox_email and its
    claim. A failed row gets a later next_attempt_at and so drops out of the
    due rows, which makes the loop end.
    """
    sent = 0
    while outbox_ids := due_outbox_ids():
        sent_now = sum(send_outbox_email(outbox_id) for outbox_id in outbox_ids)
        sent += sent_now
        if not sent_now:
            # Every due row failed or was claimed elsewhere; the periodic job
            # picks up what remains.
            break
    return sent


def retry_failed_email(outbox_ids: Iterable[int]) -> int:
    """Return failed emails to pending with fresh attempts and queue them."""
    return retries.retry_failed(
        OutboxEmail, outbox_ids, queue_send_after_commit, "outbox emails"
    )


def queue_send_after_commit(outbox_ids: list[int]) -> None:
    """Queue a send task per row once the current transaction commits."""
    if not outbox_ids:
        return
    # Imported here because the tasks module imports the services.
    from triggers.tasks import send_email

    def queue() -> None:
        for outbox_id in outbox_ids:
            send_email.delay(outbox_id)

    # A worker must never see an outbox id whose row is not committed yet.
    transaction.on_commit(queue)
