"""Applying the items of one inbound webhook request in one transaction."""

import logging
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.db import IntegrityError, transaction

from integrations.inbound.items import Item, apply_item, parse_item
from integrations.inbound.models import InboundKey
from integrations.models import EventSource
from integrations.segment.messages import Rejection

logger = logging.getLogger(__name__)


@dataclass
class InboundResult:
    """The outcome of the items of one request: counts and rejected items."""

    received: int = 0
    applied: int = 0
    duplicates: int = 0
    rejected: list[dict[str, Any]] = field(default_factory=list)

    @property
    def accepted(self) -> int:
        return self.applied + self.duplicates


def ingest_items(
    items: list[Any], source: EventSource, received_at: datetime
) -> InboundResult:
    """Apply each good item once; return the counts and each bad item's reason.

    Each item runs in its own savepoint, so a rejected one leaves nothing.
    Its key is stored in the same savepoint: an item whose key the source
    sent before is counted as a duplicate and not applied again. When this
    returns, everything applied is committed.
    """
    result = InboundResult(received=len(items))
    with transaction.atomic():
        for index, raw in enumerate(items):
            try:
                item = parse_item(index, raw, received_at)
                outcome = _apply_once(item, source)
            except Rejection as rejection:
                result.rejected.append(_rejected(index, raw, rejection))
                continue
            if outcome:
                result.applied += 1
            else:
                result.duplicates += 1
    if result.rejected:
        logger.info(
            "Inbound webhook of source %s: %s of %s items rejected, first: %s",
            source.pk,
            len(result.rejected),
            result.received,
            result.rejected[0]["reason"],
        )
    return result


def _apply_once(item: Item, source: EventSource) -> bool:
    """Apply the item unless its key is stored; return whether it was applied.

    A Rejection from the item rolls back its key too, so the item can be
    sent again once it is fixed.
    """
    with transaction.atomic():
        try:
            with transaction.atomic():
                _, created = InboundKey.objects.get_or_create(
                    source=source, key=item.key, defaults={"item_type": item.type}
                )
        except IntegrityError:
            # Another request stored the key between the read and the insert.
            return False
        if not created:
            return False
        apply_item(item, source.pk)
    return True


def _rejected(index: int, raw: Any, rejection: Rejection) -> dict[str, Any]:
    key = raw.get("key") if isinstance(raw, dict) else None
    return {
        "index": index,
        "key": key if isinstance(key, str) else None,
        "code": rejection.code,
        "reason": rejection.reason,
    }
