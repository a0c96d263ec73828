"""Full and incremental syncs of companies or contacts through the search API.

A run pages through the search results sorted by last-modified date,
ascending. HubSpot's search returns at most 10,000 results for one query
(paging past that fails), so before a page would pass that cap the run
starts a new query whose lower bound is the last-modified date of the
last record seen. Records modified at that instant come again, and
applying a record twice changes nothing. After every page the run saves
its cursor, so a run that fails is resumed from the page it was on.
"""

import logging
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from typing import Any

from django.conf import settings
from django.db.models import Q, QuerySet
from django.utils import timezone
from hubspot.crm.companies import Filter as CompanyFilter
from hubspot.crm.companies import FilterGroup as CompanyFilterGroup
from hubspot.crm.companies import PublicObjectSearchRequest as CompanySearch
from hubspot.crm.contacts import Filter as ContactFilter
from hubspot.crm.contacts import FilterGroup as ContactFilterGroup
from hubspot.crm.contacts import PublicObjectSearchRequest as ContactSearch
from hubspot.crm.deals import Filter as DealFilter
from hubspot.crm.deals import FilterGroup as DealFilterGroup
from hubspot.crm.deals import PublicObjectSearchRequest as DealSearch
from hubspot.crm.tickets import Filter as TicketFilter
from hubspot.crm.tickets import FilterGroup as TicketFilterGroup
from hubspot.crm.tickets import PublicObjectSearchRequest as TicketSearch

from integrations.hubspot.api import build_client, call
from integrations.hubspot.associations import read_associations
from integrations.hubspot.conversion import ConversionError
from integrations.hubspot.deals import (
    apply_deal,
    attach_waiting_deals,
    deal_properties,
    read_deal_companies,
)
from integrations.hubspot.models import (
    PLURALS,
    HubSpotConnection,
    ObjectType,
    PropertyMapping,
    SyncKind,
    SyncRun,
    SyncStatus,
    Target,
)
from integrations.hubspot.owners import refresh_owners
from integrations.hubspot.records import (
    MODIFIED_PROPERTY,
    HubSpotRecord,
    Outcome,
    RecordError,
    apply_record,
    parse_instant,
    requested_properties,
)
from integrations.hubspot.tickets import apply_ticket, ticket_properties

logger = logging.getLogger(__name__)

# Errors of single records kept on the run for the admin; the rest are
# only counted and logged.
KEPT_RECORD_ERRORS = 50

COUNTERS = {
    Outcome.CREATED: "created",
    Outcome.UPDATED: "updated",
    Outcome.UNCHANGED: "unchanged",
    Outcome.SKIPPED: "skipped",
}


class RunReleased(RuntimeError):
    """The run was released as stuck while this worker still ran it."""


class SyncStuck(RuntimeError):
    """More records share one last-modified instant than one query can return."""


def create_run(
    connection: HubSpotConnection, object_type: str, kind: str = SyncKind.INCREMENTAL
) -> SyncRun:
    """Create a queued run; an incremental one starts where the last one ended.

    Without an earlier successful run an incremental run reads everything,
    as a full one does.
    """
    cursor: dict[str, Any] = {}
    if kind == SyncKind.INCREMENTAL:
        last = (
            SyncRun.objects.filter(
                connection=connection,
                object_type=object_type,
                status=SyncStatus.SUCCEEDED,
            )
            .order_by("-finished_at")
            .first()
        )
        if last is not None and last.cursor.get("max_modified") is not None:
            # max_modified is carried on, so a run that reads nothing still
            # hands the same starting point to the next one.
            since = last.cursor["max_modified"]
            cursor = {"since": since, "max_modified": since}
    return SyncRun.objects.create(
        connection=connection, object_type=object_type, kind=kind, cursor=cursor
    )


def stuck_runs(now: datetime | None = None) -> QuerySet[SyncRun]:
    """Select running runs whose progress is older than the stuck-run limit."""
    now = now or timezone.now()
    cutoff = now - timedelta(minutes=settings.NUDGEPATH_HUBSPOT_STUCK_RUN_MINUTES)
    return SyncRun.objects.filter(status=SyncStatus.RUNNING).filter(
        Q(heartbeat_at__lt=cutoff) | Q(heartbeat_at__isnull=True, started_at__lt=cutoff)
    )


def release_run(run: SyncRun) -> bool:
    """Mark a stuck run failed, unless it beat since it was read; return whether.

    The update matches the heartbeat that was read, so a run whose worker
    saved progress in the meantime stays running.
    """
    released = SyncRun.objects.filter(
        pk=run.pk, status=SyncStatus.RUNNING, heartbeat_at=run.heartbeat_at
    ).update(
        status=SyncStatus.FAILED,
        finished_at=timezone.now(),
        last_error=(
            f"no progress since {run.heartbeat_at or run.started_at}, so its "
            "worker is taken to have stopped; resumed from the cursor in a new run"
        ),
    )
    if released:
        run.refresh_from_db()
    return bool(released)


def release_queued_run(run: SyncRun) -> bool:
    """Mark a queued run failed as lost, unless a worker claimed it; return whether."""
    released = SyncRun.objects.filter(pk=run.pk, status=SyncStatus.QUEUED).update(
        status=SyncStatus.FAILED,
        finished_at=timezone.now(),
        last_error=(
            f"queued since {run.created_at} and never started, so its task "
            "message is taken to be lost; queued again from the cursor in a new run"
        ),
    )
    if released:
        run.refresh_from_db()
    return bool(released)


def create_resumed_run(failed: SyncRun) -> SyncRun:
    """Create a queued run that starts at the cursor of a failed run."""
    if failed.status != SyncStatus.FAILED:
        raise ValueError(
            f"sync run {failed.pk} is {failed.status}; only a failed run can be resumed"
        )
    return SyncRun.objects.create(
        connection=failed.connection,
        object_type=failed.object_type,
        kind=failed.kind,
        cursor=dict(failed.cursor),
        resumed_from=failed,
    )


def claim_run(run_id: int) -> SyncRun | None:
    """Mark a queued run running and return it; None if another worker has it."""
    now = timezone.now()
    claimed = SyncRun.objects.filter(pk=run_id, status=SyncStatus.QUEUED).update(
        status=SyncStatus.RUNNING, started_at=now, heartbeat_at=now
    )
    if not claimed:
        return None
    return SyncRun.objects.select_related("connection").get(pk=run_id)


def execute_run(run: SyncRun) -> SyncRun:
    """Page through the run's records from its cursor; record how it ended."""
    started = timezone.now()
    logger.info(
        "HubSpot %s sync run %s of %s started",
        run.kind,
        run.pk,
        PLURALS.get(run.object_type, run.object_type),
    )
    try:
        _page_through(run)
    except RunReleased:
        # The run is failed and resumed by another; its row is not ours to save.
        logger.warning(
            "HubSpot sync run %s was released while this worker ran it; stopped",
            run.pk,
        )
        return run
    except Exception as error:
        run.status = SyncStatus.FAILED
        run.last_error = str(error)[:4000]
        run.finished_at = timezone.now()
        _finish(run, last_error=run.last_error)
        logger.exception("HubSpot sync run %s failed at cursor %s", run.pk, run.cursor)
        return run
    run.status = SyncStatus.SUCCEEDED
    run.finished_at = timezone.now()
    _finish(run)
    logger.info(
        "HubSpot sync run %s finished in %.0f ms: %s fetched, %s created, %s "
        "updated, %s skipped",
        run.pk,
        (run.finished_at - started).total_seconds() * 1000,
        run.fetched,
        run.created,
        run.updated,
        run.skipped,
    )
    return run


def _page_through(run: SyncRun) -> None:
    connection = run.connection
    mappings = list(
        PropertyMapping.objects.filter(
            connection=connection, object_type=run.object_type
        )
    )
    if run.object_type == ObjectType.DEAL:
        properties = deal_properties(connection)
        attach_waiting_deals(connection)
    elif run.object_type == ObjectType.TICKET:
        properties = ticket_properties(connection)
    else:
        properties = requested_properties(run.object_type, mappings)
    if any(mapping.target == Target.OWNER for mapping in mappings):
        # Owners change rarely and are few, so each company run reads them all
        # before the companies that name them.
        refresh_owners(connection)
    search = _search_function(connection, run.object_type)
    page_size = settings.NUDGEPATH_HUBSPOT_PAGE_SIZE
    cap = settings.NUDGEPATH_HUBSPOT_SEARCH_RESULT_LIMIT
    cursor = dict(run.cursor)
    # Results already read in the current query; the cap counts from its start.
    in_window = int(cursor.get("in_window", 0))

    while True:
        request = _search_request(
            run.object_type,
            cursor.get("since"),
            cursor.get("after"),
            properties,
            page_size,
        )
        page = call(
            connection,
            partial(search, public_object_search_request=request),
            description=f"search {PLURALS[run.object_type]}",
            search=True,
        )
        results = page.results or []
        apply = _applier(run, connection, mappings, results)
        for obj in results:
            _apply(run, HubSpotRecord.from_api(run.object_type, obj), apply, cursor)
        in_window += len(results)
        next_after = (
            page.paging.next.after if page.paging and page.paging.next else None
        )

        if next_after is None:
            cursor.pop("after", None)
            cursor.pop("in_window", None)
            _save_progress(run, cursor)
            return
        if in_window + page_size > cap:
            cursor = _next_window(run, cursor)
            in_window = 0
        else:
            cursor["after"] = next_after
            cursor["in_window"] = in_window
        _save_progress(run, cursor)


def _finish(run: SyncRun, **fields: Any) -> None:
    # Only while running: a run released as stuck keeps the releaser's error.
    SyncRun.objects.filter(pk=run.pk, status=SyncStatus.RUNNING).update(
        status=run.status, finished_at=run.finished_at, **fields
    )


def _next_window(run: SyncRun, cursor: dict[str, Any]) -> dict[str, Any]:
    """Start a new query at the last record's last-modified date."""
    last = cursor.get("max_modified")
    if last is None or last == cursor.get("since"):
        raise SyncStuck(
            f"more than {settings.NUDGEPATH_HUBSPOT_SEARCH_RESULT_LIMIT} HubSpot "
            f"{PLURALS[run.object_type]} have the last-modified date {last}, "
            "more than one search can return; sync them in smaller groups or "
            "raise the limit"
        )
    logger.info("HubSpot sync run %s starts a new search window at %s", run.pk, last)
    return {"since": last, "max_modified": last}


Applier = Callable[[HubSpotRecord, list[str]], Outcome]


def _applier(
    run: SyncRun,
    connection: HubSpotConnection,
    mappings: list[PropertyMapping],
    results: list[Any],
) -> Applier:
    """Return the function that writes one record of this page."""
    ids = [str(obj.id) for obj in results]
    if run.object_type == ObjectType.TICKET:
        # Two batch reads give the companies and contacts of the whole page.
        companies = read_associations(connection, "tickets", "companies", ids)
        contacts = read_associations(connection, "tickets", "contacts", ids)
        return lambda record, warnings: apply_ticket(
            connection,
            record,
            companies.get(record.hubspot_id, []),
            contacts.get(record.hubspot_id, []),
        )
    if run.object_type != ObjectType.DEAL:
        return lambda record, warnings: apply_record(
            connection, record, mappings, warnings
        )
    # One batch read gives the companies of the whole page.
    deal_companies = read_deal_companies(connection, ids)
    return lambda record, warnings: apply_deal(
        connection, record, deal_companies.get(record.hubspot_id), warnings
    )


def _apply(
    run: SyncRun,
    record: HubSpotRecord,
    apply: Applier,
    cursor: dict[str, Any],
) -> None:
    run.fetched += 1
    warnings: list[str] = []
    try:
        outcome = apply(record, warnings)
    except (ConversionError, RecordError) as error:
        outcome = Outcome.SKIPPED
        logger.warning("Skipped %s in sync run %s: %s", record.label, run.pk, error)
        if len(run.record_errors) < KEPT_RECORD_ERRORS:
            run.record_errors.append(str(error))
    for warning in warnings:
        logger.warning("Sync run %s: %s", run.pk, warning)
        if len(run.warnings) < KEPT_RECORD_ERRORS:
            run.warnings.append(warning)
    field = COUNTERS[outcome]
    setattr(run, field, getattr(run, field) + 1)
    modified = _modified_millis(record)
    if modified is not None and modified > int(cursor.get("max_modified") or 0):
        cursor["max_modified"] = modified


def _modified_millis(record: HubSpotRecord) -> int | None:
    raw = record.properties.get(MODIFIED_PROPERTY[ObjectType(record.object_type)])
    instant = parse_instant(raw) if raw else None
    return int(instant.timestamp() * 1000) if instant else None


def _save_progress(run: SyncRun, cursor: dict[str, Any]) -> None:
    """Save the cursor and counts, and beat the heartbeat, if the run is still ours.

    The update applies only while the run is running, so a worker whose run
    was released as stuck stops here instead of writing over the run.
    """
    run.cursor = cursor
    run.heartbeat_at = timezone.now()
    saved = SyncRun.objects.filter(pk=run.pk, status=SyncStatus.RUNNING).update(
        cursor=cursor,
        fetched=run.fetched,
        created=run.created,
        updated=run.updated,
        unchanged=run.unchanged,
        skipped=run.skipped,
        record_errors=run.record_errors,
        warnings=run.warnings,
        heartbeat_at=run.heartbeat_at,
    )
    if not saved:
        raise RunReleased(f"sync run {run.pk} is no longer running")


def _search_function(
    connection: HubSpotConnection, object_type: str
) -> Callable[..., Any]:
    client = build_client(connection)
    if object_type == ObjectType.COMPANY:
        return client.crm.companies.search_api.do_search
    if object_type == ObjectType.DEAL:
        return client.crm.deals.search_api.do_search
    if object_type == ObjectType.TICKET:
        return client.crm.tickets.search_api.do_search
    return client.crm.contacts.search_api.do_search


def _search_request(
    object_type: str,
    since: int | None,
    after: str | None,
    properties: list[str],
    limit: int,
) -> Any:
    modified = MODIFIED_PROPERTY[ObjectType(object_type)]
    if object_type == ObjectType.COMPANY:
        request_class, filter_class, group_class = (
            CompanySearch,
            CompanyFilter,
            CompanyFilterGroup,
        )
    elif object_type == ObjectType.DEAL:
        request_class, filter_class, group_class = (
            DealSearch,
            DealFilter,
            DealFilterGroup,
        )
    elif object_type == ObjectType.TICKET:
        request_class, filter_class, group_class = (
            TicketSearch,
            TicketFilter,
            TicketFilterGroup,
        )
    else:
        request_class, filter_class, group_class = (
            ContactSearch,
            ContactFilter,
            ContactFilterGroup,
        )
    groups = []
    if since is not None:
        groups = [
            group_class(
                filters=[
                    filter_class(
                        property_name=modified, operator="GTE", value=str(since)
                    )
                ]
            )
        ]
    return request_class(
        filter_groups=groups,
        # HubSpot's search takes sort objects; the client types them as text.
        sorts=[{"propertyName": modified, "direction": "ASCENDING"}],
        properties=properties,
        limit=limit,
        after=after,
    )
