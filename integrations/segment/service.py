"""Applying the calls of one Segment request in one transaction.

ingest_messages() validates every message, applies identify and group
calls one by one (each in a savepoint, so a rejected one leaves nothing
behind), then checks the usage event of each track and page call and
stores those that pass with customers.batches in one statement. Good
calls are kept and bad ones are returned with their index and reason.
When it returns, everything accepted is committed.

Within a request, identify calls are applied first, then group calls,
then track and page calls, each kind in the order sent. So a batch that
identifies a user, places it in an account and tracks its events is
recorded whole, whatever the order of the calls inside the batch.
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import transaction

from customers.batches import UsageEventBatch, UsageEventRow
from customers.models import Account, Contact
from integrations.models import EventSource
from integrations.segment.identities import apply_group, apply_identify
from integrations.segment.messages import Call, Rejection, parse_call

logger = logging.getLogger(__name__)

# Reasons shown in the log line of a request with rejected calls.
LOGGED_REASONS = 3


@dataclass
class IngestResult:
    """The outcome of the messages of one request."""

    received: int = 0
    # Usage events written now, and those already stored under their messageId.
    stored: int = 0
    duplicates: int = 0
    # identify, group and page calls that were applied without a new event.
    applied: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.received - len(self.rejected)

    def reject(self, index: int, message: Any, rejection: Rejection) -> None:
        message_id = message.get("messageId") if isinstance(message, dict) else None
        self.rejected.append(
            {
                "index": index,
                "messageId": message_id if isinstance(message_id, str) else None,
                "code": rejection.code,
                "reason": rejection.reason,
            }
        )


def ingest_messages(
    messages: Sequence[Any],
    source: EventSource,
    *,
    received_at: datetime,
    sent_at: datetime | None = None,
    call_type: str | None = None,
) -> IngestResult:
    """Apply Segment messages of one request; return what was stored and rejected.

    sent_at is the request's sentAt; call_type the type that a single-call
    endpoint implies.
    """
    result = IngestResult(received=len(messages))
    calls = []
    for index, message in enumerate(messages):
        try:
            calls.append(
                parse_call(
                    index,
                    message,
                    received_at=received_at,
                    sent_at=sent_at,
                    call_type=call_type,
                )
            )
        except Rejection as rejection:
            result.reject(index, message, rejection)

    with transaction.atomic():
        for kind in ("identify", "group"):
            for call in calls:
                if call.type == kind:
                    _apply_identity(call, source, messages, result)
        events = [call for call in calls if call.type in ("track", "page")]
        if not source.store_page_views:
            result.applied += sum(1 for call in events if call.type == "page")
            events = [call for call in events if call.type == "track"]
        new = _event_batch(events, messages, result).store()
    result.stored = sum(new)
    result.duplicates = len(new) - result.stored
    result.rejected.sort(key=lambda item: item["index"])
    _log(result, source)
    return result


def _apply_identity(
    call: Call, source: EventSource, messages: Sequence[Any], result: IngestResult
) -> None:
    apply = apply_identify if call.type == "identify" else apply_group
    try:
        with transaction.atomic():
            apply(call, source)
    except Rejection as rejection:
        result.reject(call.index, messages[call.index], rejection)
        return
    result.applied += 1


def _event_batch(
    calls: list[Call], messages: Sequence[Any], result: IngestResult
) -> UsageEventBatch:
    """Resolve each call's contact and account with three queries; check its event.

    Returns the checked events, ready to store; a call whose event fails a
    check is rejected with the reason.
    """
    # order_by() drops the models' default ordering, which would join and
    # sort by account name for nothing.
    found = Contact.objects.filter(external_id__in={call.user_id for call in calls})
    contacts = {
        external_id: (pk, account_id)
        for external_id, pk, account_id in found.order_by().values_list(
            "external_id", "pk", "account_id"
        )
    }
    group_ids = {call.context_group_id for call in calls if call.context_group_id}
    accounts = dict(
        Account.objects.filter(external_id__in=group_ids)
        .order_by()
        .values_list("external_id", "pk")
        if group_ids
        else []
    )
    links = _links(calls, contacts, accounts)
    batch = UsageEventBatch()
    for call in calls:
        try:
            batch.add(_event_row(call, contacts, accounts, links))
        except Rejection as rejection:
            result.reject(call.index, messages[call.index], rejection)
            continue
        except ValueError as error:
            invalid = Rejection("invalid_message", str(error))
            result.reject(call.index, messages[call.index], invalid)
    return batch


def _links(
    calls: list[Call],
    contacts: dict[str, tuple[int, int]],
    accounts: dict[str, int],
) -> set[tuple[int, int]]:
    """Return the (contact, account) pairs of associated accounts that calls name."""
    asked = {
        (contacts[call.user_id][0], accounts[call.context_group_id])
        for call in calls
        if call.user_id in contacts and call.context_group_id in accounts
    }
    if not asked:
        return set()
    links = Contact.associated_accounts.through.objects.filter(
        contact_id__in={contact for contact, _ in asked},
        account_id__in={account for _, account in asked},
    )
    return set(links.values_list("contact_id", "account_id"))


def _event_row(
    call: Call,
    contacts: dict[str, tuple[int, int]],
    accounts: dict[str, int],
    links: set[tuple[int, int]],
) -> UsageEventRow:
    if call.user_id not in contacts:
        raise Rejection(
            "unknown_user",
            f"userId {call.user_id!r} matches no contact; send identify with "
            "traits.email and context.groupId (or identify, then group) first",
        )
    contact_id, account_id = contacts[call.user_id]
    if call.context_group_id:
        if call.context_group_id not in accounts:
            raise Rejection(
                "unknown_group",
                f"context.groupId {call.context_group_id!r} matches no account",
            )
        named = accounts[call.context_group_id]
        if named != account_id and (contact_id, named) not in links:
            raise Rejection(
                "not_in_group",
                f"userId {call.user_id!r} is not a contact of groupId "
                f"{call.context_group_id!r}; send a group call that links them first",
            )
        account_id = named
    return UsageEventRow(
        account_id=account_id,
        contact_id=contact_id,
        external_id=call.message_id,
        name=call.event,
        occurred_at=call.occurred_at,
        feature=call.feature,
        properties=call.properties,
    )


def _log(result: IngestResult, source: EventSource) -> None:
    if result.rejected:
        reasons = "; ".join(
            f"{item['index']}: {item['reason']}"
            for item in result.rejected[:LOGGED_REASONS]
        )
        logger.info(
            "Source %s: rejected %d of %d calls (%s)",
            source.pk,
            len(result.rejected),
            result.received,
            reasons,
        )
    logger.debug(
        "Source %s: %d calls, %d new events, %d duplicates, %d applied",
        source.pk,
        result.received,
        result.stored,
        result.duplicates,
        result.applied,
    )
