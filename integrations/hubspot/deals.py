"""HubSpot deals: the renewal date of an account and its expansions.

A deal is stored as a HubSpotDeal with the account of its company. The
connection decides what a deal means. A deal in one of the renewal
pipelines, or whose type property contains a renewal value, is a renewal.
With renewal dates taken from deals, an account's renewal date is the
earliest close date among its open renewal deals. A deal whose type
contains an expansion value is an expansion. Once won, it is recorded as
an upgrade subscription of its account (customers.Subscription with
is_upgrade), which the upgrade condition already reads and metrics can
count.
"""

import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from django.db import transaction

from customers.models import Account, Subscription
from customers.services import send_data_changed, update_account_attributes
from integrations.hubspot.associations import read_associations
from integrations.hubspot.conversion import convert
from integrations.hubspot.crm_models import DealKind, HubSpotDeal
from integrations.hubspot.models import (
    HubSpotConnection,
    ObjectType,
    PropertyMapping,
    Target,
    ValueType,
)
from integrations.hubspot.records import (
    HubSpotRecord,
    Outcome,
    followed_link,
)

logger = logging.getLogger(__name__)


def deal_properties(connection: HubSpotConnection) -> list[str]:
    """Return the deal properties that the sync requests from HubSpot."""
    from integrations.hubspot.records import BASE_PROPERTIES, MODIFIED_PROPERTY

    names = [
        MODIFIED_PROPERTY[ObjectType.DEAL],
        *BASE_PROPERTIES[ObjectType.DEAL],
        connection.deal_type_property,
    ]
    if connection.deal_seats_property:
        names.append(connection.deal_seats_property)
    return list(dict.fromkeys(name for name in names if name))


def read_deal_companies(
    connection: HubSpotConnection, deal_ids: list[str]
) -> dict[str, str]:
    """Return the company id of each deal that has one, by one batch read.

    A deal with several companies takes its primary one, or else the one
    with the lowest id.
    """
    associated = read_associations(connection, "deals", "companies", deal_ids)
    return {deal_id: ids[0] for deal_id, ids in associated.items() if ids}


@dataclass
class DealValues:
    name: str
    pipeline: str
    stage: str
    deal_type: str
    kind: str
    amount: Decimal | None
    close_date: date | None
    is_closed: bool
    is_won: bool
    seats_added: int | None


def apply_deal(
    connection: HubSpotConnection,
    record: HubSpotRecord,
    company_id: str | None,
    warnings: list[str],
) -> Outcome:
    """Store one deal and update the accounts it touches; raise RecordError to skip.

    Every value is converted before anything is written, so a deal with a
    malformed close date or amount is skipped whole. A deal without a
    company, or whose company is not synced, is stored without an account
    and reported in warnings.
    """
    if record.archived:
        # The search API returns no archived deals; this guards other callers.
        return Outcome.SKIPPED
    values = _deal_values(connection, record)
    account = _deal_account(connection, record, company_id, warnings)
    with transaction.atomic():
        deal, created = HubSpotDeal.objects.select_for_update().get_or_create(
            connection=connection,
            hubspot_id=record.hubspot_id,
            defaults={
                **vars(values),
                "company_id": company_id or "",
                "account": account,
            },
        )
        previous_account_id = deal.account_id
        changed = created or _update_deal(deal, values, company_id, account)
        touched = {
            account_id
            for account_id in (previous_account_id, deal.account_id)
            if account_id is not None
        }
        for account_id in sorted(touched):
            if _apply_to_account(connection, deal, account_id):
                changed = True
    if created:
        return Outcome.CREATED
    return Outcome.UPDATED if changed else Outcome.UNCHANGED


def _deal_values(connection: HubSpotConnection, record: HubSpotRecord) -> DealValues:
    properties = record.properties
    deal_type = str(properties.get(connection.deal_type_property) or "").strip()
    pipeline = str(properties.get("pipeline") or "").strip()
    seats = None
    if connection.deal_seats_property:
        seats = _converted(record, connection.deal_seats_property, ValueType.INTEGER)
    return DealValues(
        name=str(properties.get("dealname") or "")[:200],
        pipeline=pipeline[:100],
        stage=str(properties.get("dealstage") or "")[:100],
        deal_type=deal_type[:100],
        kind=deal_kind(connection, pipeline, deal_type),
        amount=_converted(record, "amount", ValueType.NUMBER),
        close_date=_converted(record, "closedate", ValueType.DATE),
        is_closed=bool(_converted(record, "hs_is_closed", ValueType.BOOLEAN)),
        is_won=bool(_converted(record, "hs_is_closed_won", ValueType.BOOLEAN)),
        seats_added=seats,
    )


def remove_deal(connection: HubSpotConnection, hubspot_id: str) -> bool:
    """Forget a deal deleted in HubSpot; return whether one was stored.

    Its upgrade subscription goes with it, as when a deal stops being a
    won expansion. The account's renewal date is taken again from the
    renewal deals that remain, and stays as it is when none is open.
    """
    with transaction.atomic():
        deal = (
            HubSpotDeal.objects.select_for_update()
            .filter(connection=connection, hubspot_id=hubspot_id)
            .first()
        )
        if deal is None:
            return False
        account_id = deal.account_id
        deal.account = None
        deal.kind = DealKind.OTHER
        if account_id is not None:
            record_expansion(deal, Account.objects.get(pk=account_id))
        deal.delete()
        if account_id is not None and connection.renewal_date_from_deals:
            refresh_renewal_date(Account.objects.get(pk=account_id))
    logger.info("Removed HubSpot deal %s, deleted in HubSpot", hubspot_id)
    return True


def attach_waiting_deals(connection: HubSpotConnection) -> int:
    """Give deals stored without an account the account their company has now.

    A deal read before its company was synced is stored without an account.
    An incremental deal sync would not read it again, so each deal run
    starts with this pass; it returns how many deals found their account.
    """
    attached = 0
    waiting = HubSpotDeal.objects.filter(
        connection=connection, account__isnull=True
    ).exclude(company_id="")
    for deal_id, company_id in waiting.values_list("pk", "company_id"):
        link = followed_link(connection, ObjectType.COMPANY, company_id)
        if link is None or link.account is None:
            continue
        with transaction.atomic():
            deal = HubSpotDeal.objects.select_for_update().get(pk=deal_id)
            if deal.account_id is not None:
                continue
            deal.account = link.account
            deal.save(update_fields=["account", "updated_at"])
            _apply_to_account(connection, deal, link.account.pk)
        attached += 1
    if attached:
        logger.info(
            "HubSpot connection %s: %s deals found their account",
            connection.pk,
            attached,
        )
    return attached


def deal_kind(connection: HubSpotConnection, pipeline: str, deal_type: str) -> str:
    """Return whether a deal is a renewal, an expansion or neither."""
    if pipeline in connection.renewal_pipelines:
        return DealKind.RENEWAL
    if deal_type and deal_type in connection.renewal_deal_types:
        return DealKind.RENEWAL
    if deal_type and deal_type in connection.expansion_deal_types:
        return DealKind.EXPANSION
    return DealKind.OTHER


def _converted(record: HubSpotRecord, name: str, value_type: str) -> Any:
    # An unsaved mapping gives deal values the same checks and messages as
    # mapped company properties.
    mapping = PropertyMapping(
        hubspot_property=name, target=Target.PROPERTY, value_type=value_type
    )
    return convert(mapping, record.properties.get(name), record.label)


def _deal_account(
    connection: HubSpotConnection,
    record: HubSpotRecord,
    company_id: str | None,
    warnings: list[str],
) -> Account | None:
    if not company_id:
        warnings.append(
            f"{record.label} has no company, so it sets no renewal date or "
            "expansion; associate it with a company in HubSpot"
        )
        return None
    link = followed_link(connection, ObjectType.COMPANY, company_id)
    if link is None or link.account is None:
        warnings.append(
            f"{record.label}: its company {company_id} is not synced yet; run the "
            "company sync, then sync deals again"
        )
        return None
    return link.account


def _update_deal(
    deal: HubSpotDeal,
    values: DealValues,
    company_id: str | None,
    account: Account | None,
) -> bool:
    stored = {
        **vars(values),
        "company_id": company_id or "",
        "account_id": account.pk if account is not None else None,
    }
    changed = [name for name, value in stored.items() if getattr(deal, name) != value]
    for name in changed:
        setattr(deal, name, stored[name])
    if changed:
        deal.save(update_fields=[*changed, "updated_at"])
    return bool(changed)


def _apply_to_account(
    connection: HubSpotConnection, deal: HubSpotDeal, account_id: int
) -> bool:
    account = Account.objects.get(pk=account_id)
    changed = record_expansion(deal, account)
    if connection.renewal_date_from_deals and refresh_renewal_date(account):
        changed = True
    return changed


def refresh_renewal_date(account: Account) -> bool:
    """Set the renewal date to the earliest open renewal deal's close date.

    An account without an open renewal deal keeps its renewal date: the
    renewal deal of the next term is usually created after the last one
    closes.
    """
    upcoming = (
        HubSpotDeal.objects.filter(
            account=account,
            kind=DealKind.RENEWAL,
            is_closed=False,
            close_date__isnull=False,
        )
        .order_by("close_date")
        .values_list("close_date", flat=True)
        .first()
    )
    if upcoming is None:
        return False
    return update_account_attributes(account, {"renewal_date": upcoming})


def expansion_external_id(deal: HubSpotDeal) -> str:
    return f"hubspot-{deal.connection_id}-deal-{deal.hubspot_id}"


def record_expansion(deal: HubSpotDeal, account: Account) -> bool:
    """Keep the upgrade subscription of a won expansion deal; return whether changed.

    The subscription starts on the close date, with the account's plan,
    seats, MRR and ARR when it is first recorded. A deal that stops being
    a won expansion, or moves to another account, takes its row with it.
    """
    external_id = expansion_external_id(deal)
    existing = Subscription.objects.filter(external_id=external_id).first()
    wanted = (
        deal.kind == DealKind.EXPANSION
        and deal.is_won
        and deal.close_date is not None
        and deal.account_id == account.pk
    )
    if not wanted:
        if existing is None or existing.account_id != account.pk:
            return False
        existing.delete()
        send_data_changed(Subscription, account.pk, "subscriptions")
        return True
    assert deal.close_date is not None
    if existing is not None and existing.account_id != account.pk:
        existing.delete()
        send_data_changed(Subscription, existing.account_id, "subscriptions")
        existing = None
    if existing is None:
        Subscription.objects.create(
            account=account,
            external_id=external_id,
            started_on=deal.close_date,
            plan=account.plan,
            seats=account.seats,
            mrr=account.mrr,
            arr=account.arr,
            is_upgrade=True,
        )
    elif existing.started_on != deal.close_date:
        existing.started_on = deal.close_date
        existing.save(update_fields=["started_on"])
    else:
        return False
    send_data_changed(Subscription, account.pk, "subscriptions")
    return True
