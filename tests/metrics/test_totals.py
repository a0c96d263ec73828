"""Adding up one group's outcomes around training."""

from metrics.stats import PairSums
from metrics.totals import WindowTotals, account_totals, usage_totals


def test_usage_totals_are_events_per_day():
    totals = usage_totals([(14, 60), (0, 30)], days_before=7, days_after=30)

    assert totals.usage.mean_before == (14 / 7 + 0 / 7) / 2
    assert totals.usage.mean_after == (60 / 30 + 30 / 30) / 2
    assert totals.usage.change_summary().mean == ((2 - 2) + (1 - 0)) / 2


def test_account_totals_count_health_only_with_both_scores():
    rows = [
        (60, 70, 2, 1, False, True),
        (None, 80, 0, 3, None, False),
        (55, None, 1, 1, True, True),
    ]

    totals = account_totals(rows, topics=((3, 5),))

    assert totals.health == PairSums.of_pairs([(60, 70)])
    assert totals.tickets == PairSums.of_pairs([(2, 1), (0, 3), (1, 1)])
    assert totals.expansion == PairSums.of_pairs([(0, 1), (0, 0), (1, 1)])
    assert totals.topics == ((3, 5),)


def test_totals_add_topics_pairwise():
    measured = WindowTotals(topics=((1, 2), (0, 4)))
    stored = WindowTotals(topics=((3, 0), (5, 5)))

    assert (measured + stored).topics == ((4, 2), (5, 9))
    assert (WindowTotals() + stored).topics == stored.topics
    assert (measured + WindowTotals()).topics == measured.topics
