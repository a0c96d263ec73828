"""Delivery rules for lifecycle email: suppression, one email per occurrence,
the frequency cap and quiet hours.

Two moments apply them. When a sweep writes an email, a suppressed contact
(unsubscribed or bounced) or a second email for the same trigger occurrence
is written as skipped with the reason. When a worker claims an email, the
same checks run again, because the contact may have unsubscribed since,
and the cap and quiet hours decide whether it goes now, later
(next_attempt_at) or not at all. The send-time decision runs under a row
lock on the contact, so parallel workers cannot exceed the cap.

Without a DeliveryRules row there is no cap and no quiet hours; suppression
and the one-email-per-occurrence rule always apply.
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo

from django.db.models import DateTimeField
from django.db.models.functions import Coalesce

from customers.models import Contact
from customers.time_zones import load_time_zone
from triggers.models import DeliveryRules, OutboxEmail, OutboxStatus

logger = logging.getLogger(__name__)

WEEKDAY_ABBREVIATIONS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

# Statuses of an email that has left, or is leaving, for the mail server.
# Both count against the cap, so two workers that claim a contact's emails
# one after the other see each other's claims before either has sent.
IN_FLIGHT_OR_SENT = (OutboxStatus.SENT, OutboxStatus.SENDING)


class Action(StrEnum):
    SEND = "send"
    DEFER = "defer"
    SKIP = "skip"


@dataclass(frozen=True)
class SendDecision:
    """A decision about an email: send it now, defer it until ``at``, or skip it."""

    action: Action
    at: datetime | None = None
    reason: str = ""


def load_rules() -> DeliveryRules | None:
    """Return the site's delivery rules, or None when none are saved."""
    return DeliveryRules.objects.order_by("pk").first()


def suppression_reason(contact: Contact) -> str:
    """Return why the contact must get no lifecycle email, or "" when it may."""
    if contact.unsubscribed_at is not None:
        return (
            f"Contact {contact.pk} unsubscribed from lifecycle email at "
            f"{contact.unsubscribed_at.isoformat()}."
        )
    if contact.bounced_at is not None:
        return (
            f"Email to contact {contact.pk} bounced at "
            f"{contact.bounced_at.isoformat()}; the address is suppressed."
        )
    return ""


def duplicate_reason(
    contact_id: int, trigger_slug: str, occurrence_key: str, original: str
) -> str:
    return (
        f"Duplicate: contact {contact_id} already gets the email of trigger "
        f"{trigger_slug}, occurrence {occurrence_key}, as {original}."
    )


def recipient_time_zone(contact: Contact, rules: DeliveryRules) -> ZoneInfo:
    """Return the contact's zone, else its account's, else the rules' default.

    An invalid name is logged with its value and skipped, so a typo stored by
    an import delays nobody's email forever; UTC is the last resort.
    """
    candidates = (
        ("contact", contact.time_zone),
        ("account", contact.account.time_zone),
        ("delivery rules", rules.default_time_zone),
    )
    for source, name in candidates:
        if not name:
            continue
        try:
            return load_time_zone(name)
        except ValueError:
            logger.warning(
                "Invalid time zone %r on the %s of contact %s; trying the next one",
                name,
                source,
                contact.pk,
            )
    return ZoneInfo("UTC")


def crosses_midnight(rules: DeliveryRules) -> bool:
    """Return whether the sending window closes on the day after it opens."""
    return rules.send_until < rules.send_from


def window_bounds(
    day: date, zone: ZoneInfo, rules: DeliveryRules
) -> tuple[datetime, datetime]:
    """Return the UTC opening and closing of the sending window that opens on day.

    Both come from local times in the zone, so a window stays 09:00-17:00 on the
    wall clock across daylight-saving changes, and a window that crosses
    midnight on such a night is an hour shorter or longer. A time that does
    not exist on a spring-forward day (02:30 in a gap from 02:00 to 03:00)
    is read with the offset before the change, which puts it one hour later
    on the wall clock. A time that happens twice on a fall-back day is the
    first of the two.
    """
    closing_day = day + timedelta(days=1) if crosses_midnight(rules) else day
    opening = datetime.combine(day, rules.send_from, tzinfo=zone)
    closing = datetime.combine(closing_day, rules.send_until, tzinfo=zone)
    # Converted to UTC because aware datetimes that share a tzinfo compare by
    # wall clock, which is wrong in the repeated hour of a fall-back day.
    return opening.astimezone(UTC), closing.astimezone(UTC)


def in_send_window(instant: datetime, zone: ZoneInfo, rules: DeliveryRules) -> bool:
    """Return whether instant is inside a sending window in the zone."""
    instant_utc = instant.astimezone(UTC)
    local_day = instant.astimezone(zone).date()
    # A window that crosses midnight and opened the day before may be open.
    for day in (local_day - timedelta(days=1), local_day):
        if day.weekday() not in rules.send_weekdays:
            continue
        opening, closing = window_bounds(day, zone, rules)
        if opening <= instant_utc < closing:
            return True
    return False


def next_window_opening(
    instant: datetime, zone: ZoneInfo, rules: DeliveryRules
) -> datetime | None:
    """Return instant when it is inside the sending window, else the next opening.

    The opening is send_from on the next sending day in the zone; see
    window_bounds() for daylight-saving changes. Returns None when no
    weekday is a sending day.
    """
    if in_send_window(instant, zone, rules):
        return instant
    instant_utc = instant.astimezone(UTC)
    local_day = instant.astimezone(zone).date()
    # Eight days reach the same weekday next week, past today's window. A
    # week more covers a sending day that has no window (see the NOTE below).
    for offset in range(15):
        day = local_day + timedelta(days=offset)
        if day.weekday() not in rules.send_weekdays:
            continue
        opening, closing = window_bounds(day, zone, rules)
        # NOTE: a short window that ends just after a spring-forward gap can
        # close before it opens (02:30 reads as 03:30, 03:15 stays 03:15), so
        # that day has no window and the next sending day's is used.
        if opening > instant_utc and closing > opening:
            return opening
    return None


def cap_slot(
    send_times: Iterable[datetime], now: datetime, rules: DeliveryRules
) -> datetime:
    """Return the first instant from now at which one more email stays within the cap.

    The window is (instant - cap_window_days, instant]. When it already
    contains cap_emails sends, the next slot is when enough of the oldest
    leave it.
    """
    if not rules.cap_emails:
        return now
    window = timedelta(days=rules.cap_window_days)
    recent = sorted(sent for sent in send_times if sent > now - window)
    must_leave = len(recent) - rules.cap_emails + 1
    if must_leave <= 0:
        return now
    return recent[must_leave - 1] + window


def decide(
    email: OutboxEmail,
    contact: Contact,
    rules: DeliveryRules | None,
    now: datetime,
    send_times: Iterable[datetime],
) -> SendDecision:
    """Apply the cap and quiet hours to an email whose recipient may get it.

    Deferral is bounded by rules.max_deferral_days from when the email was
    written; an email that could only go later is skipped with the reason.
    """
    if rules is None:
        return SendDecision(Action.SEND)

    waits = []
    earliest = cap_slot(send_times, now, rules)
    if earliest > now:
        waits.append(
            f"the frequency cap of {rules.cap_emails} emails in "
            f"{rules.cap_window_days} days allows the next one at "
            f"{earliest.isoformat()}"
        )

    if rules.quiet_hours_enabled:
        zone = recipient_time_zone(contact, rules)
        opening = next_window_opening(earliest, zone, rules)
        if opening is None:
            return SendDecision(Action.SKIP, reason="No sending day is configured.")
        if opening > earliest:
            waits.append(
                f"the sending window {_describe_window(rules)} in {zone.key} opens "
                f"at {opening.astimezone(zone).isoformat()}"
            )
        earliest = opening

    if earliest <= now:
        return SendDecision(Action.SEND)
    deadline = email.created_at + timedelta(days=rules.max_deferral_days)
    if earliest > deadline:
        return SendDecision(
            Action.SKIP,
            reason=(
                f"Dropped: {'; '.join(waits)}, after the maximum deferral of "
                f"{rules.max_deferral_days} days, which ended at "
                f"{deadline.isoformat()}."
            ),
        )
    return SendDecision(Action.DEFER, at=earliest, reason="; ".join(waits))


def _describe_window(rules: DeliveryRules) -> str:
    days = ",".join(WEEKDAY_ABBREVIATIONS[day] for day in sorted(rules.send_weekdays))
    hours = f"{_hhmm(rules.send_from)}-{_hhmm(rules.send_until)}"
    if crosses_midnight(rules):
        hours += " (next day)"
    return f"{hours} {days}"


def _hhmm(value: time) -> str:
    return value.strftime("%H:%M")


def check_before_send(email: OutboxEmail, now: datetime) -> SendDecision:
    """Lock the recipient's contact row and decide whether the email goes now.

    Must run inside the transaction that claims the email, so that the lock
    is held until the claim commits: a second worker deciding for the same
    contact waits, then counts this claim against the cap. FOR NO KEY
    UPDATE is enough to serialize the senders and, unlike FOR UPDATE, does
    not wait for sweeps that insert rows referring to the contact.
    """
    contact = (
        Contact.objects.select_for_update(no_key=True, of=("self",))
        .select_related("account")
        .get(pk=email.contact_id)
    )
    reason = suppression_reason(contact)
    if reason:
        return SendDecision(Action.SKIP, reason=reason)

    original = _sent_duplicate(email)
    if original is not None:
        firing = email.firing
        return SendDecision(
            Action.SKIP,
            reason=duplicate_reason(
                email.contact_id,
                firing.trigger.slug,
                firing.occurrence_key,
                f"outbox email {original}",
            ),
        )

    rules = load_rules()
    send_times: list[datetime] = []
    if rules is not None and rules.cap_emails:
        send_times = _recent_send_times(
            contact.pk, now - timedelta(days=rules.cap_window_days)
        )
    return decide(email, contact, rules, now, send_times)


def _sent_duplicate(email: OutboxEmail) -> int | None:
    """Return the id of an email of another firing already sent for the same occurrence.

    Firings of different accounts can reach one person for the same trigger
    occurrence; the first to be sent wins. The template is part of the key,
    so later emails of one firing with other templates are not duplicates.
    """
    firing = email.firing
    duplicates = (
        OutboxEmail.objects.filter(
            contact_id=email.contact_id,
            template_id=email.template_id,
            firing__trigger_id=firing.trigger_id,
            firing__occurrence_key=firing.occurrence_key,
            status__in=IN_FLIGHT_OR_SENT,
        )
        .exclude(firing_id=email.firing_id)
        .order_by("pk")
    )
    return duplicates.values_list("pk", flat=True).first()


def _recent_send_times(contact_id: int, since: datetime) -> list[datetime]:
    """Return when each email of the contact sent or being sent after since left.

    A row still sending has no sent_at yet, so its claim time is used instead.
    """
    sent_or_claimed = Coalesce("sent_at", "claimed_at", output_field=DateTimeField())
    return list(
        OutboxEmail.objects.filter(contact_id=contact_id, status__in=IN_FLIGHT_OR_SENT)
        .annotate(left_at=sent_or_claimed)
        .filter(left_at__gt=since)
        .values_list("left_at", flat=True)
    )
