"""Difference in differences by simulation: error rate, coverage and statsmodels."""

import numpy as np
import pandas as pd
import pytest
import statsmodels.formula.api as smf
from scipy import stats as scipy_stats

from metrics.stats import ALPHA, Summary, Verdict, difference_in_differences

TRAINED, UNTRAINED = 40, 60
RUNS = 2000


def draw_changes(
    rng: np.random.Generator, size: int, effect: float, base_shift: float
) -> tuple[np.ndarray, np.ndarray]:
    """Draw usage rates before (7 days) and after (30 days) for ``size`` subjects.

    Rates vary by subject and by group level (``base_shift``), and every
    subject's usage grows by the same trend, so only ``effect`` separates
    the groups' changes.
    """
    rates = rng.uniform(0.5, 3.0, size) + base_shift
    before = rng.poisson(rates * 7) / 7
    after = rng.poisson((rates + 0.3 + effect) * 30) / 30
    return before, after


def compare(rng: np.random.Generator, effect: float):
    trained_before, trained_after = draw_changes(rng, TRAINED, effect, 1.0)
    untrained_before, untrained_after = draw_changes(rng, UNTRAINED, 0.0, 0.0)
    return difference_in_differences(
        Summary.from_values(list(trained_after - trained_before)),
        Summary.from_values(list(untrained_after - untrained_before)),
    )


def test_no_effect_rejects_at_alpha():
    rng = np.random.default_rng(2024)

    rejections = sum(compare(rng, effect=0.0).p_value < ALPHA for _ in range(RUNS))

    # Bounds that a correct test leaves with probability 0.998 together.
    assert rejections <= scipy_stats.binom.ppf(0.999, RUNS, ALPHA)
    assert rejections >= scipy_stats.binom.ppf(0.001, RUNS, ALPHA)


def test_interval_covers_planted_effect():
    rng = np.random.default_rng(2025)
    runs = 500

    covered = sum(
        present_interval(compare(rng, effect=0.8)).contains(0.8) for _ in range(runs)
    )

    assert covered >= scipy_stats.binom.ppf(0.001, runs, 0.95)
    assert covered <= scipy_stats.binom.ppf(0.999, runs, 0.95)


def present_interval(difference):
    assert difference.interval is not None
    return difference.interval


def test_planted_effect_mostly_found():
    rng = np.random.default_rng(2026)
    runs = 200

    verdicts = [compare(rng, effect=0.8).verdict for _ in range(runs)]

    # With these rates the standard error of the difference is about 0.14,
    # so the effect is about 6 standard errors: the power is close to 1.
    assert verdicts.count(Verdict.SIGNIFICANT) >= 0.95 * runs


def test_matches_ols_with_interaction():
    rng = np.random.default_rng(7)
    trained_before, trained_after = draw_changes(rng, TRAINED, 0.5, 1.0)
    untrained_before, untrained_after = draw_changes(rng, UNTRAINED, 0.0, 0.0)
    subjects = TRAINED + UNTRAINED
    panel = pd.DataFrame(
        {
            "subject": np.tile(np.arange(subjects), 2),
            "trained": np.tile([1] * TRAINED + [0] * UNTRAINED, 2),
            "post": [0] * subjects + [1] * subjects,
            "rate": np.concatenate(
                [trained_before, untrained_before, trained_after, untrained_after]
            ),
        }
    )
    changes = pd.DataFrame(
        {
            "trained": [1] * TRAINED + [0] * UNTRAINED,
            "change": np.concatenate(
                [trained_after - trained_before, untrained_after - untrained_before]
            ),
        }
    )
    pooled = smf.ols("rate ~ trained * post", data=panel).fit(
        cov_type="cluster", cov_kwds={"groups": panel["subject"]}
    )
    robust = smf.ols("change ~ trained", data=changes).fit(cov_type="HC2")

    result = difference_in_differences(
        Summary.from_values(list(trained_after - trained_before)),
        Summary.from_values(list(untrained_after - untrained_before)),
    )
    assert result.interval is not None
    half_width = (result.interval.high - result.interval.low) / 2
    welch = scipy_stats.ttest_ind(
        trained_after - trained_before,
        untrained_after - untrained_before,
        equal_var=False,
    )

    assert result.estimate == pytest.approx(pooled.params["trained:post"], rel=1e-9)
    assert result.estimate == pytest.approx(robust.params["trained"], rel=1e-9)
    assert half_width / scipy_stats.t.ppf(0.975, welch.df) == pytest.approx(
        robust.bse["trained"], rel=1e-9
    )
    # The cluster-robust fit scales by a small-sample factor, so it agrees
    # with the Welch error only to within that factor.
    assert pooled.bse["trained:post"] == pytest.approx(robust.bse["trained"], rel=0.05)
