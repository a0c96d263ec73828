"""The statistics module against statsmodels and scipy on the same data."""

import numpy as np
import pytest
from scipy import stats as scipy_stats
from statsmodels.stats.proportion import (
    confint_proportions_2indep,
    proportion_confint,
    proportions_ztest,
)
from statsmodels.stats.weightstats import CompareMeans, DescrStatsW

from metrics.stats import (
    CHI_SQUARE,
    FISHER_EXACT,
    MIN_SUBJECTS,
    PairSums,
    Summary,
    Verdict,
    difference_of_means,
    difference_of_proportions,
    estimate_mean,
    estimate_proportion,
    newcombe_interval,
    wilson_interval,
)

PROPORTION_CASES = [(0, 10), (1, 10), (10, 10), (3, 7), (37, 120), (500, 1000)]

TWO_GROUP_CASES = [
    (30, 100, 20, 100),
    (0, 40, 5, 40),
    (12, 12, 3, 15),
    (450, 1000, 380, 900),
    (1, 3, 2, 2),
]


@pytest.mark.parametrize(("events", "n"), PROPORTION_CASES)
def test_wilson_matches_statsmodels(events, n):
    expected_low, expected_high = proportion_confint(events, n, method="wilson")

    interval = wilson_interval(events, n)

    assert interval.low == pytest.approx(expected_low, abs=1e-12)
    assert interval.high == pytest.approx(expected_high, abs=1e-12)


@pytest.mark.parametrize(("events", "n"), [(-1, 10), (11, 10), (0, 0), (1, -1)])
def test_wilson_rejects_invalid_counts(events, n):
    with pytest.raises(ValueError, match="n"):
        wilson_interval(events, n)


def test_proportion_of_empty_group_is_none():
    estimate = estimate_proportion(0, 0)

    assert estimate.value is None
    assert estimate.interval is None


@pytest.mark.parametrize(("events_a", "n_a", "events_b", "n_b"), TWO_GROUP_CASES)
def test_newcombe_matches_statsmodels(events_a, n_a, events_b, n_b):
    expected_low, expected_high = confint_proportions_2indep(
        events_a, n_a, events_b, n_b, method="newcomb", compare="diff"
    )

    interval = newcombe_interval(events_a, n_a, events_b, n_b)

    assert interval.low == pytest.approx(expected_low, abs=1e-12)
    assert interval.high == pytest.approx(expected_high, abs=1e-12)


def test_chi_square_matches_pooled_z_test():
    # Pearson chi-square without correction equals the pooled two-sample z-test.
    _, expected_p = proportions_ztest([450, 380], [1000, 900])

    result = difference_of_proportions(450, 1000, 380, 900)

    assert result.test == CHI_SQUARE
    assert result.p_value == pytest.approx(expected_p, rel=1e-9)
    assert result.estimate == pytest.approx(450 / 1000 - 380 / 900)


def fisher_p_by_enumeration(events_a, n_a, events_b, n_b):
    """Sum the probabilities of all tables no more likely than the observed one."""
    total_events = events_a + events_b
    distribution = scipy_stats.hypergeom(n_a + n_b, total_events, n_a)
    observed = distribution.pmf(events_a)
    low = max(0, total_events - n_b)
    high = min(n_a, total_events)
    probabilities = [distribution.pmf(k) for k in range(low, high + 1)]
    return sum(p for p in probabilities if p <= observed * (1 + 1e-7))


@pytest.mark.parametrize(
    ("events_a", "n_a", "events_b", "n_b"),
    [(0, 40, 5, 40), (1, 3, 2, 2), (2, 20, 7, 21)],
)
def test_fisher_used_for_small_expected_counts(events_a, n_a, events_b, n_b):
    expected_p = fisher_p_by_enumeration(events_a, n_a, events_b, n_b)

    result = difference_of_proportions(events_a, n_a, events_b, n_b)

    assert result.test == FISHER_EXACT
    assert result.p_value == pytest.approx(expected_p, rel=1e-9)


def test_no_events_anywhere_gives_p_one():
    result = difference_of_proportions(0, 50, 0, 60)

    assert result.p_value == pytest.approx(1.0)
    assert result.estimate == 0
    assert result.small_sample


def test_empty_group_has_no_difference():
    result = difference_of_proportions(0, 0, 4, 40)

    assert result.estimate is None
    assert result.p_value is None
    assert result.verdict == Verdict.SMALL_SAMPLE


def test_mean_interval_matches_statsmodels():
    values = np.random.default_rng(7).gamma(2.0, 5.0, size=45).tolist()
    expected_low, expected_high = DescrStatsW(values).tconfint_mean()

    estimate = estimate_mean(Summary.from_values(values))

    interval = estimate.interval
    assert estimate.value == pytest.approx(np.mean(values))
    assert interval is not None
    assert interval.low == pytest.approx(expected_low, rel=1e-10)
    assert interval.high == pytest.approx(expected_high, rel=1e-10)


def test_summary_matches_numpy():
    values = [3.0, 9.0, 4.5, 12.25, 0.0]

    summary = Summary.from_values(values)

    assert summary.n == 5
    assert summary.mean == pytest.approx(np.mean(values))
    assert summary.sd == pytest.approx(np.std(values, ddof=1))


def test_summary_from_sums_matches_values():
    values = np.random.default_rng(8).integers(0, 400, size=300).astype(float)

    summary = Summary.from_sums(
        len(values), float(values.sum()), float((values**2).sum())
    )

    assert summary.mean == pytest.approx(values.mean(), rel=1e-12)
    assert summary.sd == pytest.approx(values.std(ddof=1), rel=1e-9)


def test_summary_from_sums_of_constant_values():
    summary = Summary.from_sums(3, 0.3, 0.03)

    assert summary.sd == 0.0


def test_pair_sums_match_numpy_on_changes():
    rng = np.random.default_rng(21)
    before = rng.integers(0, 900, size=400)
    after = before + rng.integers(-50, 80, size=400)
    scale = 7 * 30

    pairs = list(zip(before.tolist(), after.tolist(), strict=True))
    sums = PairSums.of_pairs(pairs, scale=scale)
    summary = sums.change_summary()

    changes = (after - before) / scale
    assert summary.n == 400
    assert summary.mean == pytest.approx(changes.mean(), rel=1e-12)
    assert summary.sd == pytest.approx(changes.std(ddof=1), rel=1e-12)
    assert sums.mean_before == pytest.approx(before.mean() / scale, rel=1e-12)
    assert sums.mean_after == pytest.approx(after.mean() / scale, rel=1e-12)


def test_pair_sums_keep_precision_of_large_values():
    # A float sum of squares loses the spread when the mean is this large.
    pairs = [(10**12, 10**12 + change) for change in (1, 2, 3, 4)]

    summary = PairSums.of_pairs(pairs).change_summary()

    assert summary.mean == 2.5
    assert summary.sd == pytest.approx(np.std([1, 2, 3, 4], ddof=1), rel=1e-15)


def test_pair_sums_add_up_as_one_group():
    first = [(3, 5), (0, 2), (7, 1)]
    second = [(4, 4), (9, 12)]

    added = PairSums.of_pairs(first, scale=3) + PairSums.of_pairs(second, scale=3)

    assert added == PairSums.of_pairs(first + second, scale=3)
    assert PairSums() + added == added
    assert added + PairSums() == added


def test_pair_sums_of_other_scales_do_not_add():
    with pytest.raises(ValueError, match="scale 3 and 5"):
        PairSums.of_pairs([(1, 2)], scale=3) + PairSums.of_pairs([(1, 2)], scale=5)


def test_pair_sums_of_too_few_pairs():
    assert PairSums().change_summary() == Summary(n=0, mean=None, sd=None)
    assert PairSums().mean_before is None
    single = PairSums.of_pairs([(2, 6)], scale=2).change_summary()
    assert single == Summary(n=1, mean=2.0, sd=None)


def test_mean_of_one_value_has_no_interval():
    estimate = estimate_mean(Summary.from_values([4.0]))

    assert estimate.value == 4.0
    assert estimate.interval is None


def test_welch_matches_scipy_and_statsmodels():
    rng = np.random.default_rng(11)
    values_a = rng.normal(10.0, 2.0, size=40)
    values_b = rng.normal(11.5, 6.0, size=65)
    scipy_result = scipy_stats.ttest_ind(values_a, values_b, equal_var=False)
    scipy_interval = scipy_result.confidence_interval(0.95)
    statsmodels_low, statsmodels_high = CompareMeans(
        DescrStatsW(values_a), DescrStatsW(values_b)
    ).tconfint_diff(usevar="unequal")

    result = difference_of_means(
        Summary.from_values(values_a.tolist()), Summary.from_values(values_b.tolist())
    )

    assert result.estimate == pytest.approx(values_a.mean() - values_b.mean())
    assert result.p_value == pytest.approx(scipy_result.pvalue, rel=1e-9)
    interval = result.interval
    assert interval is not None
    assert interval.low == pytest.approx(scipy_interval.low, rel=1e-9)
    assert interval.high == pytest.approx(scipy_interval.high, rel=1e-9)
    assert interval.low == pytest.approx(statsmodels_low, rel=1e-9)
    assert interval.high == pytest.approx(statsmodels_high, rel=1e-9)


def test_welch_with_constant_groups_untestable():
    result = difference_of_means(
        Summary.from_values([2.0] * 40), Summary.from_values([5.0] * 40)
    )

    assert result.estimate == -3.0
    assert result.p_value is None
    assert result.verdict == Verdict.NOT_TESTABLE


def test_small_sample_threshold_for_means():
    rng = np.random.default_rng(3)
    enough = Summary.from_values(rng.normal(size=MIN_SUBJECTS).tolist())
    too_few = Summary.from_values(rng.normal(size=MIN_SUBJECTS - 1).tolist())

    assert not difference_of_means(enough, enough).small_sample
    assert difference_of_means(enough, too_few).small_sample
    assert difference_of_means(enough, too_few).verdict == Verdict.SMALL_SAMPLE


@pytest.mark.parametrize(
    ("events_a", "n_a", "events_b", "n_b", "small"),
    [
        (10, 30, 10, 30, False),
        (10, 29, 10, 30, True),
        (4, 100, 10, 100, True),
        (5, 100, 10, 100, False),
        (96, 100, 10, 100, True),
        (95, 100, 10, 100, False),
    ],
)
def test_small_sample_rule_for_proportions(events_a, n_a, events_b, n_b, small):
    result = difference_of_proportions(events_a, n_a, events_b, n_b)

    assert result.small_sample is small


def test_verdict_follows_p_value():
    significant = difference_of_proportions(20, 100, 45, 100)
    not_significant = difference_of_proportions(30, 100, 33, 100)

    assert significant.verdict == Verdict.SIGNIFICANT
    assert not_significant.verdict == Verdict.NOT_SIGNIFICANT


def test_false_positive_rate_near_alpha():
    # 400 comparisons of two groups drawn from the same population: about 5 %
    # should come out significant. The bounds are roughly 20 +/- 4 standard
    # deviations of a Binomial(400, 0.05) count.
    rng = np.random.default_rng(2024)
    runs = 400
    proportion_hits = 0
    mean_hits = 0
    for _ in range(runs):
        events = rng.binomial(200, 0.3, size=2)
        proportion_result = difference_of_proportions(
            int(events[0]), 200, int(events[1]), 200
        )
        proportion_hits += proportion_result.verdict == Verdict.SIGNIFICANT

        values = rng.exponential(10.0, size=(2, 60))
        mean_result = difference_of_means(
            Summary.from_values(values[0].tolist()),
            Summary.from_values(values[1].tolist()),
        )
        mean_hits += mean_result.verdict == Verdict.SIGNIFICANT

    assert 3 <= proportion_hits <= 38
    assert 3 <= mean_hits <= 38


def test_newcombe_coverage_near_nominal():
    rng = np.random.default_rng(99)
    runs = 400
    true_difference = 0.15 - 0.35
    covered = 0
    for _ in range(runs):
        events_a = int(rng.binomial(120, 0.15))
        events_b = int(rng.binomial(150, 0.35))
        interval = newcombe_interval(events_a, 120, events_b, 150)
        covered += interval.contains(true_difference)

    # Nominal 95 % coverage: 380 of 400, with a Binomial(400, 0.95) spread of ~4.4.
    assert 360 <= covered <= 396
