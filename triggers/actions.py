"""Actions of new firings: enrollments and outbox emails, in a fixed number of queries.

Called by the sweep inside the transaction that inserted the firings, so
the firings and their actions commit together. Held-out and baseline
firings get no action. Emails to unsubscribed or bounced contacts, and a
second email for the same trigger occurrence to a person reached through
several accounts, are written as skipped with the reason, which the
firing's note repeats.
"""

import logging
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.urls import reverse

from courses.models import EnrollmentSource
from courses.paths import enroll_in_paths
from courses.services import course_path, create_sign_in_urls, enroll_many
from customers.models import Account, Contact
from triggers.delivery import duplicate_reason, suppression_reason
from triggers.models import (
    EmailTemplate,
    Firing,
    FiringOutcome,
    OutboxEmail,
    OutboxStatus,
    Recipients,
    SubjectType,
    Trigger,
)
from triggers.outbox import queue_send_after_commit
from triggers.rendering import compile_template, render_body, render_subject

logger = logging.getLogger(__name__)

# Rows per INSERT statement, which keeps PostgreSQL's limit of 65,535 bound
# parameters out of reach (a firing row has 8 columns).
INSERT_BATCH_SIZE = 2000


@dataclass(frozen=True)
class EmailPolicy:
    """What happens to the outbox emails that a sweep writes.

    skip_reason, when not empty, marks every email skipped with that reason.
    Otherwise emails are pending, and queue sets whether a send task is
    queued for each after commit or the rows wait for the periodic job.
    """

    skip_reason: str = ""
    queue: bool = True


@dataclass(frozen=True)
class Recipient:
    """A contact who receives a firing's actions, and the account it fired for.

    For an account trigger the account is the firing's, which differs from
    the contact's own for a person associated with several accounts.
    """

    firing: Firing
    contact: Contact
    account: Account


@dataclass(frozen=True)
class ActionCounts:
    enrollments: int = 0
    emails_pending: int = 0
    emails_skipped: int = 0


def take_actions(
    trigger: Trigger, firings: Sequence[Firing], as_of: datetime, policy: EmailPolicy
) -> ActionCounts:
    """Enroll and write outbox emails for the new firings that are acted on.

    A fixed number of queries however many recipients: two for the
    recipients (one for an account trigger's associated contacts), three for
    the enrollments, a few for a learning path (courses.paths), one for
    earlier emails of the same occurrences, one for
    the sign-in links, one for the outbox rows and one for the notes of
    firings whose emails were skipped.
    """
    acted = [firing for firing in firings if firing.outcome == FiringOutcome.ACTED]
    has_action = any(
        action is not None
        for action in (
            trigger.enroll_course,
            trigger.enroll_path,
            trigger.email_template,
        )
    )
    if not acted or not has_action:
        return ActionCounts()

    recipients = recipients_of(trigger, acted, as_of)
    enrollments = 0
    if trigger.enroll_course is not None:
        enrolled = enroll_many(
            [
                (recipient.contact.pk, trigger.enroll_course.pk)
                for recipient in recipients
            ],
            source=EnrollmentSource.AUTOMATIC,
            origin=trigger.origin,
            at=as_of,
        )
        enrollments = len(enrolled)
    if trigger.enroll_path is not None:
        enroll_in_paths(
            [
                (recipient.contact.pk, trigger.enroll_path.pk)
                for recipient in recipients
            ],
            source=EnrollmentSource.AUTOMATIC,
            origin=trigger.origin,
            at=as_of,
        )
    if trigger.email_template is None:
        return ActionCounts(enrollments=enrollments)

    skip_reasons = _email_skip_reasons(trigger, recipients, policy)
    emails = _render_emails(trigger, trigger.email_template, recipients, skip_reasons)
    created = OutboxEmail.objects.bulk_create(emails, batch_size=INSERT_BATCH_SIZE)
    if not policy.skip_reason:
        _note_skipped_emails(recipients, skip_reasons)

    pending = [email.pk for email in created if email.status == OutboxStatus.PENDING]
    if policy.queue:
        queue_send_after_commit(pending)
    return ActionCounts(
        enrollments=enrollments,
        emails_pending=len(pending),
        emails_skipped=len(created) - len(pending),
    )


def _email_skip_reasons(
    trigger: Trigger, recipients: list[Recipient], policy: EmailPolicy
) -> list[str]:
    """Return, per recipient, why its email is written as skipped, or "".

    A replay's horizon skips every email. Otherwise a suppressed contact is
    skipped, and so is a contact who already has an email of this trigger
    for the same occurrence key, written earlier or earlier in this batch.
    Recipients come with the contact's own account first, so that one wins
    within a batch.
    """
    if policy.skip_reason:
        return [policy.skip_reason] * len(recipients)

    earlier = _earlier_emails(trigger, recipients)
    first_account: dict[tuple[int, str], int] = {}
    reasons = []
    for recipient in recipients:
        contact, firing = recipient.contact, recipient.firing
        key = (contact.pk, firing.occurrence_key)
        reason = suppression_reason(contact)
        if not reason and key in earlier:
            reason = duplicate_reason(
                contact.pk,
                trigger.slug,
                firing.occurrence_key,
                f"outbox email {earlier[key]}",
            )
        elif not reason and key in first_account:
            reason = duplicate_reason(
                contact.pk,
                trigger.slug,
                firing.occurrence_key,
                f"the email of account {first_account[key]} in this sweep",
            )
        elif not reason:
            first_account[key] = recipient.account.pk
        reasons.append(reason)
    return reasons


def _earlier_emails(
    trigger: Trigger, recipients: list[Recipient]
) -> dict[tuple[int, str], int]:
    """Map (contact id, occurrence key) to an earlier email of the trigger.

    Only account triggers can reach a person through two subjects. A skipped
    email was never sent, so it does not count.
    """
    if trigger.subject_type != SubjectType.ACCOUNT or not recipients:
        return {}
    earlier = (
        OutboxEmail.objects.filter(
            firing__trigger=trigger,
            template=trigger.email_template,
            firing__occurrence_key__in={r.firing.occurrence_key for r in recipients},
            contact_id__in={r.contact.pk for r in recipients},
        )
        .exclude(status=OutboxStatus.SKIPPED)
        .order_by("-pk")
        .values_list("contact_id", "firing__occurrence_key", "pk")
    )
    # Ordered newest first, so the dict keeps the oldest email of each key.
    return {(contact_id, key): pk for contact_id, key, pk in earlier}


def _note_skipped_emails(recipients: list[Recipient], reasons: list[str]) -> None:
    """Add the skip reasons to the notes of the firings, in one query."""
    notes: dict[int, list[str]] = defaultdict(list)
    firings: dict[int, Firing] = {}
    for recipient, reason in zip(recipients, reasons, strict=True):
        if reason:
            notes[recipient.firing.pk].append(reason)
            firings[recipient.firing.pk] = recipient.firing
    for firing_id, firing in firings.items():
        firing.note = "\n".join(filter(None, [firing.note, *notes[firing_id]]))
    if firings:
        Firing.objects.bulk_update(
            list(firings.values()), ["note"], batch_size=INSERT_BATCH_SIZE
        )


def _render_emails(
    trigger: Trigger,
    template: EmailTemplate,
    recipients: list[Recipient],
    skip_reasons: list[str],
) -> list[OutboxEmail]:
    """Render the template for each recipient as unsaved outbox rows."""
    course = trigger.enroll_course
    subject_template = compile_template(template.subject, "subject")
    body_template = compile_template(template.body, "body")
    deliverable = [
        recipient.contact
        for recipient, reason in zip(recipients, skip_reasons, strict=True)
        if not reason
    ]
    sign_in_urls = _sign_in_urls(deliverable, course_path(course) if course else "")

    emails = []
    for recipient, reason in zip(recipients, skip_reasons, strict=True):
        contact = recipient.contact
        context = {
            "contact": contact,
            "account": recipient.account,
            "course": course,
            "sign_in_url": sign_in_urls.get(contact.pk, _sign_in_page()),
        }
        emails.append(
            OutboxEmail(
                firing=recipient.firing,
                contact=contact,
                template=template,
                to_email=contact.email,
                subject=render_subject(subject_template, context),
                body_text=render_body(body_template, context),
                status=OutboxStatus.SKIPPED if reason else OutboxStatus.PENDING,
                skip_reason=reason,
            )
        )
    return emails


def _sign_in_urls(contacts: list[Contact], next_path: str) -> dict[int, str]:
    """Create a single-use sign-in link per contact whose email will be sent.

    A skipped email is never sent, so it links to the portal's sign-in page
    instead of carrying a working single-use link.
    """
    if not contacts:
        return {}
    return create_sign_in_urls(contacts, next_path)


def _sign_in_page() -> str:
    return settings.SITE_URL + reverse("portal:sign-in")


def recipients_of(
    trigger: Trigger, firings: Sequence[Firing], as_of: datetime
) -> list[Recipient]:
    """Pair each firing with the contacts that receive its actions.

    An account trigger reaches the account's own contacts and the contacts
    associated with it, own contacts first.
    """
    if trigger.subject_type == SubjectType.CONTACT:
        by_contact = {firing.contact_id: firing for firing in firings}
        contacts = Contact.objects.filter(pk__in=by_contact).select_related("account")
        return [
            Recipient(by_contact[contact.pk], contact, contact.account)
            for contact in contacts.order_by("pk")
        ]

    by_account = {firing.account_id: firing for firing in firings}
    contacts = Contact.objects.filter(
        account_id__in=by_account, added_at__lte=as_of
    ).select_related("account")
    links = Contact.associated_accounts.through.objects.filter(
        account_id__in=by_account, contact__added_at__lte=as_of
    ).select_related("account", "contact__account")
    # NOTE: is_champion is one flag per person, so a champion of their own
    # account counts as a champion of every account associated with them.
    if trigger.recipients == Recipients.CHAMPIONS:
        contacts = contacts.filter(is_champion=True)
        links = links.filter(contact__is_champion=True)

    own = [
        Recipient(by_account[contact.account_id], contact, contact.account)
        for contact in contacts.order_by("pk")
    ]
    associated = [
        Recipient(by_account[link.account_id], link.contact, link.account)
        for link in links.order_by("contact_id", "account_id")
    ]
    return own + associated
