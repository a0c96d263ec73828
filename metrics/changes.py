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
from dataclasses import dataclass
from datetime import date

from django.utils import timezone

from customers.services import utc_date
from metrics.cohorts import (
    ANY_COMPLETION,
    DAYS_AFTER,
    DAYS_BEFORE,
    AnchoredCohorts,
    Cohort,
    SubjectLevel,
    anchored_cohorts,
)
from metrics.controls import holdout_cohorts
from metrics.models import CourseTopic, FactRefresh
from metrics.scope import EVERYTHING, Scope
from metrics.services import GroupResult, MetricComparison
from metrics.side_by_side import start
from metrics.stats import (
    Difference,
    MeanEstimate,
    PairSums,
    Summary,
    Verdict,
    difference_in_differences,
    difference_of_proportions,
    estimate_mean,
    estimate_proportion,
)
from metrics.totals import AccountRow, WindowTotals, account_totals, usage_totals
from metrics.windows import (
    ACCOUNT_SQL,
    ACCOUNT_WINDOW_DAYS,
    ADDED_IN_TIME_SQL,
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


def _change_group(sums: PairSums, anchored: int) -> tuple[ChangeGroup, Summary]:
    """Summarise one group's (before, after) pairs from their sums."""
    summary = sums.change_summary()
    group = ChangeGroup(
        n=sums.n,
        left_out=anchored - sums.n,
        mean_before=sums.mean_before,
        mean_after=sums.mean_after,
        change=estimate_mean(summary),
    )
    return group, summary


def _change_comparison(
    key: str,
    label: str,
    unit: str,
    sums: dict[bool, PairSums],
    cohorts: AnchoredCohorts,
) -> ChangeComparison:
    trained, trained_summary = _change_group(sums[True], cohorts.trained_count)
    untrained, untrained_summary = _change_group(sums[False], cohorts.untrained_count)
    return ChangeComparison(
        key=key,
        label=label,
        unit=unit,
        trained=trained,
        untrained=untrained,
        difference=difference_in_differences(trained_summary, untrained_summary),
    )


def _with_stored(
    totals: dict[bool, WindowTotals], cohorts: AnchoredCohorts
) -> dict[bool, WindowTotals]:
    """Add the trained figures that a refresh stored to those just measured."""
    if cohorts.stored is None:
        return totals
    return {True: totals[True] + cohorts.stored, False: totals[False]}


def usage_change(cohorts: AnchoredCohorts) -> ChangeComparison:
    """Compare usage events per day, 7 days before against 30 days after training."""
    # Anchors already checked against their contact's added_at need no
    # join with the contacts, which PostgreSQL read in full to merge.
    anchors, added_in_time = cohorts.added_in_time, ""
    if anchors is None:
        anchors, added_in_time = cohorts.anchors, ADDED_IN_TIME_SQL
    anchors_sql, params = anchor_table(anchors, DAYS_BEFORE, DAYS_AFTER)
    sql = USAGE_SQL.format(anchors=anchors_sql, added_in_time=added_in_time)
    counts: dict[bool, list[tuple[int, int]]] = {True: [], False: []}
    for _, trained, before, after, _ in fetch_rows(sql, params):
        counts[bool(trained)].append((int(before), int(after)))
    totals = _with_stored(
        {
            trained: usage_totals(pairs, DAYS_BEFORE, DAYS_AFTER)
            for trained, pairs in counts.items()
        },
        cohorts,
    )
    return _change_comparison(
        "usage",
        "Product usage",
        "events per day",
        {trained: group.usage for trained, group in totals.items()},
        cohorts,
    )


def covered_topics(cohort: Cohort) -> list[str]:
    """Return the ticket topics of the cohort's course or path, or of every course."""
    topics = CourseTopic.objects.all()
    if cohort.course is not None:
        topics = topics.filter(course=cohort.course)
    elif cohort.path is not None:
        topics = topics.filter(course__path_steps__path=cohort.path)
    return sorted(set(topics.values_list("topic", flat=True)))


def _account_totals(
    cohorts: AnchoredCohorts, topics: list[str]
) -> dict[bool, WindowTotals]:
    """Measure the per-account outcomes and the ticket counts by topic, per group.

    The anchored accounts are measured from the source tables; the trained
    accounts' stored figures, when read from the facts, are added to them.
    """
    anchors_sql, params = anchor_table(
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
    rows: dict[bool, list[AccountRow]] = {True: [], False: []}
    for row in accounts:
        _, trained, score_before, score_after, before, after = row[:6]
        expanded_after, expanded_before = row[6:8]
        rows[bool(trained)].append(
            (score_before, score_after, before, after, expanded_before, expanded_after)
        )
    counts = {
        (bool(trained), topic): (int(before), int(after))
        for trained, topic, before, after in by_topic
    }
    totals = {
        trained: account_totals(
            group,
            tuple(counts.get((trained, topic), (0, 0)) for topic in topics)
            if group
            else (),
        )
        for trained, group in rows.items()
    }
    return _with_stored(totals, cohorts)


def _expansion(
    totals: dict[bool, WindowTotals], cohorts: AnchoredCohorts
) -> MetricComparison:
    measured = {trained: group.tickets.n for trained, group in totals.items()}
    expanded = {trained: group.expansion.after for trained, group in totals.items()}
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


def _topic_table(
    totals: dict[bool, WindowTotals], topics: list[str]
) -> list[TopicTickets]:
    table = []
    for index, topic in enumerate(topics):
        trained = totals[True].topics[index] if totals[True].topics else (0, 0)
        untrained = totals[False].topics[index] if totals[False].topics else (0, 0)
        table.append(
            TopicTickets(
                topic=topic,
                trained_before=trained[0],
                trained_after=trained[1],
                untrained_before=untrained[0],
                untrained_after=untrained[1],
            )
        )
    return table


def _accounts_half(
    cohort: Cohort,
    scope: Scope,
    as_of: date,
    control: Trigger | None,
    precomputed: bool,
    topics: list[str],
) -> tuple[AnchoredCohorts, dict[bool, WindowTotals]]:
    """Anchor the accounts and measure their outcomes around training."""
    if control is not None:
        accounts = holdout_cohorts(control, scope, SubjectLevel.ACCOUNT, as_of)
    else:
        accounts = anchored_cohorts(
            cohort, scope, SubjectLevel.ACCOUNT, as_of, precomputed, topics
        )
    return accounts, _account_totals(accounts, topics)


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
    # The accounts' half reads other rows than the contacts' half, so it
    # runs on a thread of its own where that is safe (metrics.side_by_side).
    accounts_half = start(
        lambda: _accounts_half(cohort, scope, as_of, control, precomputed, topics)
    )
    if control is not None:
        contacts = holdout_cohorts(control, scope, SubjectLevel.CONTACT, as_of)
    else:
        contacts = anchored_cohorts(
            cohort, scope, SubjectLevel.CONTACT, as_of, precomputed
        )
    usage = usage_change(contacts)
    accounts, per_group = accounts_half.result()

    def pairs(outcome: str) -> dict[bool, PairSums]:
        return {
            trained: getattr(group, outcome) for trained, group in per_group.items()
        }

    report = OutcomeChanges(
        cohort=cohort,
        scope=scope,
        as_of=as_of,
        contacts=contacts,
        accounts=accounts,
        usage=usage,
        health=_change_comparison(
            "health", "Health score", "points", pairs("health"), accounts
        ),
        tickets=_change_comparison(
            "topic_tickets",
            "Support tickets on covered topics",
            f"tickets per {ACCOUNT_WINDOW_DAYS} days",
            pairs("tickets"),
            accounts,
        ),
        topics=topics,
        tickets_by_topic=_topic_table(per_group, topics),
        expansion=_expansion(per_group, accounts),
        expansion_change=_change_comparison(
            "expansion_change",
            "Expansion (upgrade or more seats)",
            f"share of accounts per {ACCOUNT_WINDOW_DAYS} days",
            pairs("expansion"),
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
