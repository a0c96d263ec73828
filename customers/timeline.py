"""An account's timeline: dated entries from every app, merged newest first.

customers cannot import the apps above it, so each app registers a
TimelineSource from its AppConfig.ready() with register_source(). A source
returns at most `limit` entries of one account, newest first, and must run
a fixed number of queries whatever the number of rows: no query per entry.
account_timeline() asks every source for `limit` entries and keeps the
newest `limit` of the union, which is exact: an entry that a source left
out is older than `limit` entries of that source alone.

customers registers its own sources at the bottom of this module: usage
events, contacts added, support tickets, survey answers and health score
changes.
"""

import heapq
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from itertools import islice

from django.db.models import F, Q, Window
from django.db.models.functions import Lag
from django.utils import timezone

from customers.models import (
    Account,
    Contact,
    HealthScore,
    SupportTicket,
    SurveyResponse,
    UsageEvent,
)

# The default and the largest number of entries one page of the timeline shows.
DEFAULT_LIMIT = 50
MAX_LIMIT = 500


@dataclass(frozen=True)
class TimelineEntry:
    """One dated thing that happened to an account, as the timeline shows it."""

    at: datetime
    source: str
    title: str
    detail: str = ""
    # Breaks ties between entries of one instant, so the order is stable.
    tie_breaker: int = 0


@dataclass(frozen=True)
class TimelineSource:
    """A kind of timeline entry and the function that loads one account's entries."""

    key: str
    label: str
    load: Callable[[Account, int], list[TimelineEntry]]


_SOURCES: dict[str, TimelineSource] = {}


def register_source(source: TimelineSource) -> TimelineSource:
    """Add a timeline source; apps call this from AppConfig.ready()."""
    existing = _SOURCES.get(source.key)
    if existing is not None and existing.load is not source.load:
        raise ValueError(f"timeline source {source.key!r} is registered twice")
    _SOURCES[source.key] = source
    return source


def registered_sources() -> dict[str, TimelineSource]:
    """Return the sources by key, in the order they were registered."""
    return dict(_SOURCES)


def clamp_limit(raw: str | None) -> int:
    """Read the number of entries to show from a query string value.

    An invalid or missing value gives the default, so a bad link still shows
    a timeline; values above MAX_LIMIT are capped.
    """
    try:
        limit = int(raw or DEFAULT_LIMIT)
    except ValueError:
        return DEFAULT_LIMIT
    return max(1, min(limit, MAX_LIMIT))


def account_timeline(
    account: Account, limit: int = DEFAULT_LIMIT
) -> list[TimelineEntry]:
    """Return the account's newest `limit` entries of every source, newest first."""
    streams = [source.load(account, limit) for source in _SOURCES.values()]
    merged = heapq.merge(*streams, key=_sort_key, reverse=True)
    return list(islice(merged, limit))


def _sort_key(entry: TimelineEntry) -> tuple[datetime, str, int]:
    return (entry.at, entry.source, entry.tie_breaker)


def sorted_entries(entries: Iterable[TimelineEntry], limit: int) -> list[TimelineEntry]:
    """Sort a source's entries newest first and keep `limit` of them.

    For sources that build two entries from one row (opened and closed),
    whose entries come out of the query in no single time order.
    """
    return sorted(entries, key=_sort_key, reverse=True)[:limit]


def day_start(day: date) -> datetime:
    """Return the instant a day starts in the site's time zone."""
    return datetime.combine(day, time(), timezone.get_current_timezone())


# -- customers' own sources ------------------------------------------------------


def _usage_entries(account: Account, limit: int) -> list[TimelineEntry]:
    rows = (
        UsageEvent.objects.filter(account=account)
        .select_related("contact")
        .order_by("-occurred_at", "-id")[:limit]
    )
    return [
        TimelineEntry(
            at=event.occurred_at,
            source="usage",
            title=event.name + (f" ({event.feature})" if event.feature else ""),
            detail=event.contact.full_name if event.contact else "",
            tie_breaker=event.pk,
        )
        for event in rows
    ]


def _contact_entries(account: Account, limit: int) -> list[TimelineEntry]:
    rows = Contact.objects.filter(account=account).order_by("-added_at", "-id")[:limit]
    return [
        TimelineEntry(
            at=contact.added_at,
            source="contacts",
            title=f"Contact added: {contact.full_name}",
            detail=contact.role,
            tie_breaker=contact.pk,
        )
        for contact in rows
    ]


def _ticket_entries(account: Account, limit: int) -> list[TimelineEntry]:
    # The newest `limit` openings and the newest `limit` closings hold the
    # newest `limit` entries of both kinds together.
    opened = SupportTicket.objects.filter(account=account).order_by(
        "-opened_at", "-id"
    )[:limit]
    closed = (
        SupportTicket.objects.filter(account=account, closed_at__isnull=False)
        .order_by("-closed_at", "-id")
        .only("pk", "external_id", "closed_at", "topic", "satisfaction_score")[:limit]
    )
    entries = [
        TimelineEntry(
            at=ticket.opened_at,
            source="tickets",
            title=(
                f"Ticket {ticket.external_id} opened ({ticket.get_priority_display()})"
            ),
            detail=ticket.topic + (" · escalated" if ticket.escalated else ""),
            tie_breaker=ticket.pk,
        )
        for ticket in opened
    ]
    entries += [
        TimelineEntry(
            at=ticket.closed_at,
            source="tickets",
            title=f"Ticket {ticket.external_id} closed",
            detail=(
                f"CSAT {ticket.satisfaction_score}"
                if ticket.satisfaction_score is not None
                else ticket.topic
            ),
            tie_breaker=ticket.pk,
        )
        for ticket in closed
        if ticket.closed_at is not None
    ]
    return sorted_entries(entries, limit)


def _survey_entries(account: Account, limit: int) -> list[TimelineEntry]:
    rows = (
        SurveyResponse.objects.filter(account=account)
        .select_related("contact")
        .order_by("-submitted_at", "-id")[:limit]
    )
    return [
        TimelineEntry(
            at=response.submitted_at,
            source="surveys",
            title=f"{response.get_kind_display()} answer: {response.score}",
            detail=(response.contact.full_name if response.contact else "")
            + (f": {response.comment}" if response.comment else ""),
            tie_breaker=response.pk,
        )
        for response in rows
    ]


def _health_entries(account: Account, limit: int) -> list[TimelineEntry]:
    # A score is stored every day, and only the days it changed are news.
    # The window function compares each day with the one before in SQL, so
    # the query returns the changes alone.
    rows = (
        HealthScore.objects.filter(account=account)
        .annotate(previous=Window(Lag("score"), order_by="scored_on"))
        .filter(Q(previous__isnull=True) | ~Q(previous=F("score")))
        .order_by("-scored_on")
        .values("pk", "scored_on", "score", "previous")[:limit]
    )
    return [
        TimelineEntry(
            at=day_start(row["scored_on"]),
            source="health",
            title=f"Health score {row['score']}",
            detail=(
                "first score"
                if row["previous"] is None
                else f"{row['score'] - row['previous']:+d} from {row['previous']}"
            ),
            tie_breaker=row["pk"],
        )
        for row in rows
    ]


register_source(TimelineSource("usage", "Product usage", _usage_entries))
register_source(TimelineSource("contacts", "Contacts", _contact_entries))
register_source(TimelineSource("tickets", "Support tickets", _ticket_entries))
register_source(TimelineSource("surveys", "Surveys", _survey_entries))
register_source(TimelineSource("health", "Health score", _health_entries))
