"""Actions of new firings: enrollments and outbox emails, in a fixed number of queries.

Called by the sweep inside the transaction that inserted the firings, so
the firings and their actions commit together.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from django.conf import settings
from django.urls import reverse

from courses.models import EnrollmentSource
from courses.services import course_path, create_sign_in_urls, enroll_many
from customers.models import Contact
from triggers.models import (
    EmailTemplate,
    Firing,
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


def take_actions(
    trigger: Trigger, firings: Sequence[Firing], as_of: datetime, policy: EmailPolicy
) -> tuple[int, int]:
    """Enroll and write outbox emails for new firings; return (enrollments, emails).

    A fixed number of queries however many recipients: one for the
    recipients, three for the enrollments, one for the sign-in links and
    one for the outbox rows.
    """
    if not firings or (
        trigger.enroll_course is None and trigger.email_template is None
    ):
        return 0, 0

    recipients = _recipients(trigger, firings, as_of)
    enrollments = 0
    if trigger.enroll_course is not None:
        enrolled = enroll_many(
            [(contact.pk, trigger.enroll_course.pk) for _, contact in recipients],
            source=EnrollmentSource.AUTOMATIC,
            origin=trigger.origin,
            at=as_of,
        )
        enrollments = len(enrolled)
    if trigger.email_template is None:
        return enrollments, 0

    emails = _render_emails(trigger, trigger.email_template, recipients, policy)
    created = OutboxEmail.objects.bulk_create(emails, batch_size=INSERT_BATCH_SIZE)
    if policy.queue and not policy.skip_reason:
        queue_send_after_commit([email.pk for email in created])
    return enrollments, len(created)


def _render_emails(
    trigger: Trigger,
    template: EmailTemplate,
    recipients: list[tuple[Firing, Contact]],
    policy: EmailPolicy,
) -> list[OutboxEmail]:
    """Render the template for each recipient as unsaved outbox rows."""
    course = trigger.enroll_course
    subject_template = compile_template(template.subject, "subject")
    body_template = compile_template(template.body, "body")
    contacts = [contact for _, contact in recipients]
    sign_in_urls = _sign_in_urls(
        contacts, course_path(course) if course else "", policy
    )

    status = OutboxStatus.SKIPPED if policy.skip_reason else OutboxStatus.PENDING
    emails = []
    for firing, contact in recipients:
        context = {
            "contact": contact,
            "account": contact.account,
            "course": course,
            "sign_in_url": sign_in_urls[contact.pk],
        }
        emails.append(
            OutboxEmail(
                firing=firing,
                contact=contact,
                template=template,
                to_email=contact.email,
                subject=render_subject(subject_template, context),
                body_text=render_body(body_template, context),
                status=status,
                skip_reason=policy.skip_reason,
            )
        )
    return emails


def _sign_in_urls(
    contacts: list[Contact], next_path: str, policy: EmailPolicy
) -> dict[int, str]:
    """Create a single-use sign-in link per contact, or none for skipped emails.

    A skipped email is never sent, so it links to the portal's sign-in page
    instead of carrying a working single-use link.
    """
    if not policy.skip_reason:
        return create_sign_in_urls(contacts, next_path)
    sign_in_page = settings.SITE_URL + reverse("portal:sign-in")
    return {contact.pk: sign_in_page for contact in contacts}


def _recipients(
    trigger: Trigger, firings: Sequence[Firing], as_of: datetime
) -> list[tuple[Firing, Contact]]:
    """Pair each firing with the contacts that receive its actions, in one query."""
    if trigger.subject_type == SubjectType.CONTACT:
        by_contact = {firing.contact_id: firing for firing in firings}
        contacts = Contact.objects.filter(pk__in=by_contact).select_related("account")
        return [
            (by_contact[contact.pk], contact) for contact in contacts.order_by("pk")
        ]

    by_account = {firing.account_id: firing for firing in firings}
    contacts = Contact.objects.filter(
        account_id__in=by_account, added_at__lte=as_of
    ).select_related("account")
    if trigger.recipients == Recipients.CHAMPIONS:
        contacts = contacts.filter(is_champion=True)
    return [
        (by_account[contact.account_id], contact) for contact in contacts.order_by("pk")
    ]
