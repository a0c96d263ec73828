"""The account page that CSMs work from: a registry of sections, and customers' own.

customers cannot import lifecycle, courses or triggers, so the page does
not know their data. Each app registers the Sections that show its data
from its AppConfig.ready() with register_section(), as it registers its
timeline sources with customers.timeline.register_source(). A section's
load function receives the account and today's date and returns the
context of its template. It must run a fixed number of queries whatever
the number of contacts, events or other rows: no query per row.

customers registers health, recent usage, support tickets and surveys at
the bottom of this module.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from django.db.models import Count, Q, Sum

from customers.models import (
    Account,
    HealthScore,
    SupportTicket,
    SurveyKind,
    SurveyResponse,
    UsageDay,
    UsageEvent,
)

# Days of health history drawn on the page, and the period the change is
# measured over (the same as the attention list's "health dropping").
HEALTH_HISTORY_DAYS = 90
HEALTH_TREND_DAYS = 30

# Days of usage summarised in the usage section.
USAGE_DAYS = 30

# Rows shown in each list section; the timeline shows older ones.
RECENT_ROWS = 10


@dataclass(frozen=True)
class Section:
    """One part of the account page: its heading, place, template and data."""

    key: str
    title: str
    # Sections are shown by ascending order, with gaps so that other apps
    # can place theirs in between.
    order: int
    template: str
    load: Callable[[Account, date], Mapping[str, Any]]


@dataclass(frozen=True)
class LoadedSection:
    """A section with the data of one account, ready for its template."""

    key: str
    title: str
    template: str
    data: Mapping[str, Any]


_SECTIONS: dict[str, Section] = {}


def register_section(section: Section) -> Section:
    """Add a section to the account page; apps call this from AppConfig.ready()."""
    existing = _SECTIONS.get(section.key)
    if existing is not None and existing.load is not section.load:
        raise ValueError(f"account page section {section.key!r} is registered twice")
    _SECTIONS[section.key] = section
    return section


def registered_sections() -> list[Section]:
    """Return the sections in page order."""
    return sorted(_SECTIONS.values(), key=lambda section: (section.order, section.key))


def account_sections(account: Account, today: date) -> list[LoadedSection]:
    """Load every registered section for one account, in page order."""
    return [
        LoadedSection(
            section.key, section.title, section.template, section.load(account, today)
        )
        for section in registered_sections()
    ]


# -- health ---------------------------------------------------------------------


@dataclass(frozen=True)
class HealthTrend:
    """An account's recent health scores, oldest first, and their change."""

    latest: int | None
    latest_on: date | None
    # Latest score minus the earliest score of the last HEALTH_TREND_DAYS
    # days; None with fewer than two scores in that period.
    change: int | None
    scores: list[tuple[date, int]]

    @property
    def points(self) -> str:
        """The scores as SVG polyline points on a 100 by 100 box."""
        if not self.scores:
            return ""
        step = 100 / max(len(self.scores) - 1, 1)
        return " ".join(
            f"{index * step:.1f},{100 - score}"
            for index, (_, score) in enumerate(self.scores)
        )


def health_trend(account: Account, today: date) -> HealthTrend:
    """Read the last HEALTH_HISTORY_DAYS days of scores and the recent change."""
    since = today - timedelta(days=HEALTH_HISTORY_DAYS - 1)
    scores = list(
        HealthScore.objects.filter(
            account=account, scored_on__gte=since, scored_on__lte=today
        )
        .order_by("scored_on")
        .values_list("scored_on", "score")
    )
    trend_start = today - timedelta(days=HEALTH_TREND_DAYS)
    recent = [score for day, score in scores if day >= trend_start]
    latest = scores[-1] if scores else None
    return HealthTrend(
        latest=latest[1] if latest else None,
        latest_on=latest[0] if latest else None,
        change=recent[-1] - recent[0] if len(recent) >= 2 else None,
        scores=scores,
    )


def _health_section(account: Account, today: date) -> dict[str, Any]:
    return {
        "trend": health_trend(account, today),
        "history_days": HEALTH_HISTORY_DAYS,
        "trend_days": HEALTH_TREND_DAYS,
    }


# -- usage, tickets, surveys -------------------------------------------------------


def _usage_section(account: Account, today: date) -> dict[str, Any]:
    # The daily roll-up holds one row per contact, event name, feature and
    # day, so the totals read far fewer rows than the events.
    days = UsageDay.objects.filter(
        account=account, day__gt=today - timedelta(days=USAGE_DAYS), day__lte=today
    )
    totals = days.aggregate(
        events=Sum("count"), active_contacts=Count("contact", distinct=True)
    )
    features = (
        days.exclude(feature="")
        .values("feature")
        .annotate(events=Sum("count"))
        .order_by("-events", "feature")[:5]
    )
    latest = (
        UsageEvent.objects.filter(account=account)
        .select_related("contact")
        .order_by("-occurred_at", "-id")[:RECENT_ROWS]
    )
    return {
        "days": USAGE_DAYS,
        "events": totals["events"] or 0,
        "active_contacts": totals["active_contacts"],
        "seats": account.seats,
        "features": list(features),
        "latest": list(latest),
    }


def _ticket_section(account: Account, today: date) -> dict[str, Any]:
    tickets = SupportTicket.objects.filter(account=account)
    counts = tickets.aggregate(
        open=Count("pk", filter=Q(closed_at__isnull=True)),
        total=Count("pk"),
    )
    latest = tickets.select_related("contact").order_by("-opened_at", "-id")[
        :RECENT_ROWS
    ]
    return {"open": counts["open"], "total": counts["total"], "latest": list(latest)}


def _survey_section(account: Account, today: date) -> dict[str, Any]:
    responses = SurveyResponse.objects.filter(account=account)
    # NPS = share of promoters (9-10) minus share of detractors (0-6), in points.
    nps = responses.filter(kind=SurveyKind.NPS).aggregate(
        answers=Count("pk"),
        promoters=Count("pk", filter=Q(score__gte=9)),
        detractors=Count("pk", filter=Q(score__lte=6)),
    )
    nps_score = (
        round(100 * (nps["promoters"] - nps["detractors"]) / nps["answers"])
        if nps["answers"]
        else None
    )
    latest = responses.select_related("contact").order_by("-submitted_at", "-id")[
        :RECENT_ROWS
    ]
    return {"nps": nps_score, "nps_answers": nps["answers"], "latest": list(latest)}


register_section(
    Section(
        "health", "Health score", 20, "accounts/sections/health.html", _health_section
    )
)
register_section(
    Section("usage", "Recent usage", 60, "accounts/sections/usage.html", _usage_section)
)
register_section(
    Section(
        "tickets",
        "Support tickets",
        70,
        "accounts/sections/tickets.html",
        _ticket_section,
    )
)
register_section(
    Section("surveys", "Surveys", 80, "accounts/sections/surveys.html", _survey_section)
)
