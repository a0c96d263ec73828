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

import logging
import time as clock
from collections import Counter
from dataclasses import dataclass
from datetime import date

from django.utils import timezone

from customers.services import utc_date
from metrics.cohorts import (
    ANY_COMPLETION,
    DAYS_AFTER,
    DAYS_BEFORE,
    Anchor,
    AnchoredCohorts,
    Cohort,
    StoredWindow,
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
from metrics.windows import (
    ACCOUNT_SQL,
    ACCOUNT_WINDOW_DAYS,
    TOPICS_SQL,
    USAGE_SQL,
    anchor_table,
    fetch_rows,
    instant_sql,
)
from triggers.models import Trigger

logger = logging.getLogger(__name__)


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


def _unstored_anchors(cohorts: AnchoredCohorts) -> list[Anchor]:
    """Return the anchors whose figures are read from the source tables.

    With figures stored for the trained, only the untrained are left: their
    days are drawn from the trained on each request.
    """
    if cohorts.stored is None:
        return cohorts.anchors
    return [anchor for anchor in cohorts.anchors if not anchor.trained]


def usage_change(cohorts: AnchoredCohorts) -> ChangeComparison:
    """Compare usage events per day, 7 days before against 30 days after training."""
    anchors_sql, params = anchor_table(
        _unstored_anchors(cohorts), DAYS_BEFORE, DAYS_AFTER
    )
    rows = [
        (bool(trained), before, after)
        for _, trained, before, after, _ in fetch_rows(
            USAGE_SQL.format(anchors=anchors_sql), params
        )
    ]
    for window in (cohorts.stored or {}).values():
        if window.measured:
            rows.append((True, window.usage_before, window.usage_after))
    pairs: dict[bool, list[tuple[float, float]]] = {True: [], False: []}
    for trained, before, after in rows:
        pairs[trained].append((before / DAYS_BEFORE, after / DAYS_AFTER))
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
    """Read the per-account outcomes and the ticket counts by topic.

    Each account row is laid out as ACCOUNT_SQL's columns, and each topic row
    as TOPICS_SQL's, whether read from the source tables or from the facts.
    """
    anchors_sql, params = anchor_table(
        _unstored_anchors(cohorts), ACCOUNT_WINDOW_DAYS, ACCOUNT_WINDOW_DAYS
    )
    # With no covered topic no ticket counts, not even those with a blank topic.
    covered = "1 = 0"
    if topics:
        covered = f"ticket.topic IN ({', '.join(['%s'] * len(topics))})"
    topic_params = list(topics)
    fragments = {
        "anchors": anchors_sql,
        "covered": covered,
        "day_after": instant_sql("anchor.day", 1),
        "end_after": instant_sql("anchor.after_end", 1),
    }
    # The topic lists come before the anchors in ACCOUNT_SQL's text and
    # after them in TOPICS_SQL's, so the parameters follow that order.
    accounts = fetch_rows(
        ACCOUNT_SQL.format(**fragments), topic_params + topic_params + params
    )
    by_topic = fetch_rows(
        TOPICS_SQL.format(keys="anchor.trained", **fragments), params + topic_params
    )
    if cohorts.stored is not None:
        stored_accounts, stored_topics = _stored_account_rows(cohorts.stored, topics)
        accounts += stored_accounts
        by_topic += stored_topics
    return accounts, by_topic


def _stored_account_rows(
    stored: dict[int, StoredWindow], topics: list[str]
) -> tuple[list[tuple], list[tuple]]:
    """Lay out the trained accounts' stored figures as _account_rows' rows."""
    accounts = []
    totals = {topic: [0, 0] for topic in topics}
    for subject_id, window in stored.items():
        if not window.measured:
            continue
        before = after = 0
        for index, topic in enumerate(topics):
            topic_before, topic_after = window.tickets[2 * index : 2 * index + 2]
            before += topic_before
            after += topic_after
            totals[topic][0] += topic_before
            totals[topic][1] += topic_after
        accounts.append(
            (
                subject_id,
                True,
                window.health_before,
                window.health_after,
                before,
                after,
                window.expanded_after,
                window.expanded_before,
            )
        )
    by_topic = [
        (True, topic, before, after) for topic, (before, after) in totals.items()
    ]
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
    topics = covered_topics(cohort)
    if control is not None:
        contacts = holdout_cohorts(control, scope, SubjectLevel.CONTACT, as_of)
        accounts = holdout_cohorts(control, scope, SubjectLevel.ACCOUNT, as_of)
    else:
        contacts = anchored_cohorts(
            cohort, scope, SubjectLevel.CONTACT, as_of, precomputed
        )
        accounts = anchored_cohorts(
            cohort, scope, SubjectLevel.ACCOUNT, as_of, precomputed, topics
        )

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
