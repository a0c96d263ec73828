"""Changes around training, trained against untrained: difference in differences.

Each subject is placed on a training day (metrics.cohorts). Its outcome is
measured in a window before and a window after that day, and the change of
the trained group is compared with the change of the untrained group over
the same calendar windows:

- product usage per contact, in usage events per day, 7 days before
  against 30 days after, read from the daily roll-up customers.UsageDay;
- health score per account, the last score in the 30 days before against
  the last score in the 30 days after (customers.HealthScore);
- support tickets per account on the topics the training covers
  (metrics.CourseTopic), 30 days before against 30 days after;
- expansion per account: whether a subscription started in the 30 days
  before, and one in the 30 days after, was an upgrade or added seats;
  compared as a change, and as the share after.

The comparison group is the untrained, or, when a trigger is chosen, the
subjects that trigger held out at random (metrics.controls), the only
comparison that supports a causal claim.

Usage and the account outcomes read one query each over the anchors, which
are sent as a few array literals, so the cost grows with the subjects
measured, not with the events stored.
"""

import json
import logging
import time as clock
from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

from django.db import connection
from django.utils import timezone

from customers.services import utc_date
from metrics.cohorts import (
    ANY_COMPLETION,
    DAYS_AFTER,
    DAYS_BEFORE,
    Anchor,
    AnchoredCohorts,
    Cohort,
    SubjectLevel,
    anchored_cohorts,
)
from metrics.controls import holdout_cohorts
from metrics.models import CourseTopic, FactRefresh
from metrics.scope import EVERYTHING, Scope
from metrics.services import GroupResult, MetricComparison
from metrics.stats import (
    Difference,
    MeanEstimate,
    Summary,
    Verdict,
    difference_in_differences,
    difference_of_proportions,
    estimate_mean,
    estimate_proportion,
)
from triggers.models import Trigger

logger = logging.getLogger(__name__)

# Health scores and tickets are sparse, so both of their windows span this
# many days, and ticket counts before and after are directly comparable.
ACCOUNT_WINDOW_DAYS = 30


@dataclass(frozen=True)
class ChangeGroup:
    """One group's outcome before and after, and its mean change with a t-interval.

    ``left_out`` counts the anchored subjects of the group that could not be
    measured (added after the window began, or with no score in a window).
    """

    n: int
    left_out: int
    mean_before: float | None
    mean_after: float | None
    change: MeanEstimate


@dataclass(frozen=True)
class ChangeComparison:
    """A difference in differences: the trained change minus the untrained change."""

    key: str
    label: str
    unit: str
    trained: ChangeGroup
    untrained: ChangeGroup
    difference: Difference

    @property
    def verdict(self) -> Verdict:
        return self.difference.verdict


@dataclass(frozen=True)
class TopicTickets:
    """Tickets on one covered topic in the windows before and after, per group."""

    topic: str
    trained_before: int
    trained_after: int
    untrained_before: int
    untrained_after: int


@dataclass(frozen=True)
class OutcomeChanges:
    """Every comparison of changes around training for one cohort and scope."""

    cohort: Cohort
    scope: Scope
    as_of: date
    contacts: AnchoredCohorts
    accounts: AnchoredCohorts
    usage: ChangeComparison
    health: ChangeComparison
    tickets: ChangeComparison
    topics: list[str]
    tickets_by_topic: list[TopicTickets]
    expansion: MetricComparison
    expansion_change: ChangeComparison
    control: Trigger | None = None

    @property
    def is_causal(self) -> bool:
        """Whether the comparison group was held out at random."""
        return self.control is not None


# A derived table of anchors, one row per subject, with its windows. The
# anchors arrive as three array literals (ids, groups, and days counted from
# 1970-01-01); {before} and {after} are whole numbers of days.
ANCHORS_POSTGRESQL = """
SELECT
    raw.subject_id,
    raw.trained,
    DATE '1970-01-01' + raw.day_number AS day,
    DATE '1970-01-01' + raw.day_number - {before} AS window_start,
    DATE '1970-01-01' + raw.day_number - 1 AS before_end,
    DATE '1970-01-01' + raw.day_number + {after} AS after_end
FROM unnest(%s::bigint[], %s::boolean[], %s::integer[])
    AS raw(subject_id, trained, day_number)
"""

ANCHORS_SQLITE = """
SELECT
    json_extract(value, '$[0]') AS subject_id,
    json_extract(value, '$[1]') AS trained,
    json_extract(value, '$[2]') AS day,
    date(json_extract(value, '$[2]'), '-{before} days') AS window_start,
    date(json_extract(value, '$[2]'), '-1 days') AS before_end,
    date(json_extract(value, '$[2]'), '+{after} days') AS after_end
FROM json_each(%s)
"""

EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

# Usage per contact in each window. The training day is in neither window,
# because it is partly before and partly after the training.
USAGE_SQL = """
SELECT
    anchor.subject_id,
    anchor.trained,
    COALESCE(SUM(CASE WHEN usage.day <= anchor.before_end THEN usage.count END), 0),
    COALESCE(SUM(CASE WHEN usage.day > anchor.day THEN usage.count END), 0)
FROM ({anchors}) AS anchor
JOIN customers_contact AS contact
    ON contact.id = anchor.subject_id AND contact.added_at < anchor.window_start
LEFT JOIN customers_usageday AS usage
    ON usage.contact_id = anchor.subject_id
    AND usage.day >= anchor.window_start
    AND usage.day <= anchor.after_end
    AND usage.day <> anchor.day
GROUP BY anchor.subject_id, anchor.trained
"""

# Per account: the last health score in each window, the covered tickets in
# each window, and whether a subscription in the window after, then one in
# the window before, expanded it: an upgrade, or more seats than every
# subscription started before that window.
ACCOUNT_SQL = """
SELECT
    anchor.subject_id,
    anchor.trained,
    (SELECT score FROM customers_healthscore AS health
        WHERE health.account_id = anchor.subject_id
        AND health.scored_on >= anchor.window_start
        AND health.scored_on <= anchor.before_end
        ORDER BY health.scored_on DESC LIMIT 1),
    (SELECT score FROM customers_healthscore AS health
        WHERE health.account_id = anchor.subject_id
        AND health.scored_on > anchor.day
        AND health.scored_on <= anchor.after_end
        ORDER BY health.scored_on DESC LIMIT 1),
    (SELECT COUNT(*) FROM customers_supportticket AS ticket
        WHERE ticket.account_id = anchor.subject_id AND {covered}
        AND ticket.opened_at >= anchor.window_start
        AND ticket.opened_at < anchor.day),
    (SELECT COUNT(*) FROM customers_supportticket AS ticket
        WHERE ticket.account_id = anchor.subject_id AND {covered}
        AND ticket.opened_at >= {day_after}
        AND ticket.opened_at < {end_after}),
    EXISTS (SELECT 1 FROM customers_subscription AS later
        WHERE later.account_id = anchor.subject_id
        AND later.started_on > anchor.day
        AND later.started_on <= anchor.after_end
        AND (later.is_upgrade OR later.seats > COALESCE(
            (SELECT MAX(earlier.seats) FROM customers_subscription AS earlier
                WHERE earlier.account_id = anchor.subject_id
                AND earlier.started_on <= anchor.day),
            later.seats))),
    EXISTS (SELECT 1 FROM customers_subscription AS later
        WHERE later.account_id = anchor.subject_id
        AND later.started_on >= anchor.window_start
        AND later.started_on <= anchor.before_end
        AND (later.is_upgrade OR later.seats > COALESCE(
            (SELECT MAX(earlier.seats) FROM customers_subscription AS earlier
                WHERE earlier.account_id = anchor.subject_id
                AND earlier.started_on < anchor.window_start),
            later.seats)))
FROM ({anchors}) AS anchor
JOIN customers_account AS account
    ON account.id = anchor.subject_id AND account.signup_date <= anchor.window_start
"""

# Tickets of each covered topic per group and window, for the table by topic.
TOPICS_SQL = """
SELECT
    anchor.trained,
    ticket.topic,
    SUM(CASE WHEN ticket.opened_at < anchor.day THEN 1 ELSE 0 END),
    SUM(CASE WHEN ticket.opened_at >= {day_after} THEN 1 ELSE 0 END)
FROM ({anchors}) AS anchor
JOIN customers_account AS account
    ON account.id = anchor.subject_id AND account.signup_date <= anchor.window_start
JOIN customers_supportticket AS ticket
    ON ticket.account_id = anchor.subject_id
    AND {covered}
    AND ticket.opened_at >= anchor.window_start
    AND ticket.opened_at < {end_after}
    AND NOT (ticket.opened_at >= anchor.day AND ticket.opened_at < {day_after})
GROUP BY anchor.trained, ticket.topic
"""


def _anchor_table(
    anchors: list[Anchor], days_before: int, days_after: int
) -> tuple[str, list[Any]]:
    """Return the SQL of the anchors' derived table and its parameters.

    Django binds parameters on the client, and psycopg quotes a list element
    by element, which took longer than the query for 5,000 anchors. So the
    anchors go as a few strings, quoted at once.
    """
    windows = {"before": int(days_before), "after": int(days_after)}
    if connection.vendor == "postgresql":
        ids = ",".join(str(anchor.subject_id) for anchor in anchors)
        groups = ",".join("t" if anchor.trained else "f" for anchor in anchors)
        days = ",".join(
            str(anchor.day.toordinal() - EPOCH_ORDINAL) for anchor in anchors
        )
        sql = ANCHORS_POSTGRESQL.format(**windows)
        return sql, [f"{{{ids}}}", f"{{{groups}}}", f"{{{days}}}"]
    rows = [
        [anchor.subject_id, anchor.trained, anchor.day.isoformat()]
        for anchor in anchors
    ]
    return ANCHORS_SQLITE.format(**windows), [json.dumps(rows)]


def _instant_sql(column: str, days: int) -> str:
    """Return SQL for 00:00 UTC ``days`` after the date ``column``."""
    if connection.vendor == "postgresql":
        return f"(({column} + {days})::timestamp AT TIME ZONE 'UTC')"
    return f"datetime({column}, '+{days} days')"


def _fetch(sql: str, params: list[Any]) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def _change_group(
    rows: list[tuple[float, float]], anchored: int
) -> tuple[ChangeGroup, Summary]:
    """Summarise (before, after) pairs of one group."""
    changes = [after - before for before, after in rows]
    summary = Summary.from_values(changes)
    before = Summary.from_values([before for before, _ in rows])
    after = Summary.from_values([after for _, after in rows])
    group = ChangeGroup(
        n=len(rows),
        left_out=anchored - len(rows),
        mean_before=before.mean,
        mean_after=after.mean,
        change=estimate_mean(summary),
    )
    return group, summary


def _change_comparison(
    key: str,
    label: str,
    unit: str,
    pairs: dict[bool, list[tuple[float, float]]],
    cohorts: AnchoredCohorts,
) -> ChangeComparison:
    trained, trained_summary = _change_group(pairs[True], cohorts.trained_count)
    untrained, untrained_summary = _change_group(pairs[False], cohorts.untrained_count)
    return ChangeComparison(
        key=key,
        label=label,
        unit=unit,
        trained=trained,
        untrained=untrained,
        difference=difference_in_differences(trained_summary, untrained_summary),
    )


def usage_change(cohorts: AnchoredCohorts) -> ChangeComparison:
    """Compare usage events per day, 7 days before against 30 days after training."""
    anchors_sql, params = _anchor_table(cohorts.anchors, DAYS_BEFORE, DAYS_AFTER)
    rows = _fetch(USAGE_SQL.format(anchors=anchors_sql), params)
    pairs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for _, trained, before, after in rows:
        pairs[bool(trained)].append((before / DAYS_BEFORE, after / DAYS_AFTER))
    return _change_comparison(
        "usage", "Product usage", "events per day", pairs, cohorts
    )


def covered_topics(cohort: Cohort) -> list[str]:
    """Return the ticket topics of the cohort's course or path, or of every course."""
    topics = CourseTopic.objects.all()
    if cohort.course is not None:
        topics = topics.filter(course=cohort.course)
    elif cohort.path is not None:
        topics = topics.filter(course__path_steps__path=cohort.path)
    return sorted(set(topics.values_list("topic", flat=True)))


def _account_rows(
    cohorts: AnchoredCohorts, topics: list[str]
) -> tuple[list[tuple], list[tuple]]:
    """Read the per-account outcomes and the ticket counts by topic."""
    anchors_sql, params = _anchor_table(
        cohorts.anchors, ACCOUNT_WINDOW_DAYS, ACCOUNT_WINDOW_DAYS
    )
    # With no covered topic no ticket counts, not even those with a blank topic.
    covered = "1 = 0"
    if topics:
        covered = f"ticket.topic IN ({', '.join(['%s'] * len(topics))})"
    topic_params = list(topics)
    fragments = {
        "anchors": anchors_sql,
        "covered": covered,
        "day_after": _instant_sql("anchor.day", 1),
        "end_after": _instant_sql("anchor.after_end", 1),
    }
    # The topic lists come before the anchors in ACCOUNT_SQL's text and
    # after them in TOPICS_SQL's, so the parameters follow that order.
    accounts = _fetch(
        ACCOUNT_SQL.format(**fragments), topic_params + topic_params + params
    )
    by_topic = _fetch(TOPICS_SQL.format(**fragments), params + topic_params)
    return accounts, by_topic


def _expansion(accounts: list[tuple], cohorts: AnchoredCohorts) -> MetricComparison:
    measured = Counter(bool(row[1]) for row in accounts)
    expanded = Counter(bool(row[1]) for row in accounts if row[6])
    anchored = (cohorts.trained_count, cohorts.untrained_count)
    groups = []
    for trained, group_anchored in zip((True, False), anchored, strict=True):
        estimate = estimate_proportion(expanded[trained], measured[trained])
        groups.append(
            GroupResult(
                n=measured[trained],
                estimate=estimate.value,
                interval=estimate.interval,
                excluded=group_anchored - measured[trained],
                events=expanded[trained],
            )
        )
    return MetricComparison(
        key="expansion",
        label="Expansion (upgrade or more seats)",
        unit="share",
        is_share=True,
        trained=groups[0],
        untrained=groups[1],
        difference=difference_of_proportions(
            expanded[True], measured[True], expanded[False], measured[False]
        ),
    )


def _topic_table(rows: list[tuple], topics: list[str]) -> list[TopicTickets]:
    counts = {
        (bool(trained), topic): (before, after)
        for trained, topic, before, after in rows
    }
    table = []
    for topic in topics:
        trained = counts.get((True, topic), (0, 0))
        untrained = counts.get((False, topic), (0, 0))
        table.append(
            TopicTickets(
                topic=topic,
                trained_before=int(trained[0]),
                trained_after=int(trained[1]),
                untrained_before=int(untrained[0]),
                untrained_after=int(untrained[1]),
            )
        )
    return table


def outcome_changes(
    cohort: Cohort = ANY_COMPLETION,
    scope: Scope = EVERYTHING,
    as_of: date | None = None,
    control: Trigger | None = None,
    precomputed: bool | None = None,
) -> OutcomeChanges:
    """Compare usage, health, covered tickets and expansion around training.

    Trained against untrained is observational: self-selection can bias it.
    With ``control``, the treated subjects of that trigger are compared with
    those it held out at random, each on its first firing day, and
    ``cohort`` only chooses the covered ticket topics.
    ``as_of`` (default: today in UTC) is the last day any window may reach.
    With ``precomputed`` (by default, once the facts were refreshed) the
    cohorts are read from the facts, as of their last refresh.
    """
    started = clock.monotonic()
    as_of = as_of or utc_date(timezone.now())
    if precomputed is None:
        precomputed = FactRefresh.last() is not None
    if control is not None:
        contacts = holdout_cohorts(control, scope, SubjectLevel.CONTACT, as_of)
        accounts = holdout_cohorts(control, scope, SubjectLevel.ACCOUNT, as_of)
    else:
        contacts = anchored_cohorts(
            cohort, scope, SubjectLevel.CONTACT, as_of, precomputed
        )
        accounts = anchored_cohorts(
            cohort, scope, SubjectLevel.ACCOUNT, as_of, precomputed
        )
    topics = covered_topics(cohort)

    account_rows, topic_rows = _account_rows(accounts, topics)
    health: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    tickets: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    expansion: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for row in account_rows:
        _, trained, score_before, score_after, before, after = row[:6]
        expanded_after, expanded_before = row[6:8]
        tickets[bool(trained)].append((float(before), float(after)))
        expansion[bool(trained)].append(
            (float(bool(expanded_before)), float(bool(expanded_after)))
        )
        if score_before is not None and score_after is not None:
            health[bool(trained)].append((float(score_before), float(score_after)))

    report = OutcomeChanges(
        cohort=cohort,
        scope=scope,
        as_of=as_of,
        contacts=contacts,
        accounts=accounts,
        usage=usage_change(contacts),
        health=_change_comparison("health", "Health score", "points", health, accounts),
        tickets=_change_comparison(
            "topic_tickets",
            "Support tickets on covered topics",
            f"tickets per {ACCOUNT_WINDOW_DAYS} days",
            tickets,
            accounts,
        ),
        topics=topics,
        tickets_by_topic=_topic_table(topic_rows, topics),
        expansion=_expansion(account_rows, accounts),
        expansion_change=_change_comparison(
            "expansion_change",
            "Expansion (upgrade or more seats)",
            f"share of accounts per {ACCOUNT_WINDOW_DAYS} days",
            expansion,
            accounts,
        ),
        control=control,
    )
    logger.info(
        "Compared changes around training (%s, control trigger %s) as of %s: "
        "%s and %s contacts, %s and %s accounts, in %.0f ms",
        cohort.description,
        control.pk if control else None,
        as_of,
        contacts.trained_count,
        contacts.untrained_count,
        accounts.trained_count,
        accounts.untrained_count,
        (clock.monotonic() - started) * 1000,
    )
    return report
