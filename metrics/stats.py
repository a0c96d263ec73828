"""Confidence intervals and two-sided tests for comparing two groups.

Pure functions over counts and summary statistics (n, mean, standard
deviation), so callers can aggregate in SQL and pass only a few numbers here.
Nothing in this module imports Django.

Conventions: every interval is at 95% unless a caller asks otherwise, every
test is two-sided, and a difference is always group ``a`` minus group ``b``.
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


def _scipy_stats() -> Any:
    """Import scipy.stats on first use.

    The import takes seconds, and every process that resolves a URL imports
    this module, so workers and portal requests should not pay for it.
    """
    from scipy import stats

    return stats


CONFIDENCE = 0.95
ALPHA = 0.05

# The small-sample rule. Below these counts the normal approximations behind
# the intervals and the chi-square test are poor and a single account moves
# the estimate a lot, so the dashboard shows a warning instead of a verdict.
MIN_SUBJECTS = 30
MIN_EVENTS = 5

# The usual rule for a 2x2 table: with an expected cell count below 5 the
# chi-square p-value is unreliable, so Fisher's exact test is used instead.
MIN_EXPECTED_COUNT = 5

# Variances below this share of the squared mean are rounding noise.
RELATIVE_VARIANCE_NOISE = 1e-12

CHI_SQUARE = "Pearson chi-square"
FISHER_EXACT = "Fisher exact"
WELCH_T = "Welch t-test"
NEWCOMBE = "Newcombe hybrid score"
WELCH_INTERVAL = "Welch t"


@dataclass(frozen=True)
class Interval:
    low: float
    high: float

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high


@dataclass(frozen=True)
class ProportionEstimate:
    """A share of subjects with an event; value and interval are None when n is 0."""

    events: int
    n: int
    value: float | None
    interval: Interval | None


@dataclass(frozen=True)
class Summary:
    """Count, mean and sample standard deviation (ddof=1) of one group's values."""

    n: int
    mean: float | None
    sd: float | None

    @classmethod
    def from_sums(cls, n: int, total: float, sum_of_squares: float) -> "Summary":
        """Build a summary from the count, sum and sum of squares of the values.

        SQL can aggregate these three on every database, unlike a sample
        standard deviation. The subtraction below loses precision only when
        the mean is many orders of magnitude larger than the spread.
        """
        if n == 0:
            return cls(n=0, mean=None, sd=None)
        mean = total / n
        if n == 1:
            return cls(n=1, mean=mean, sd=None)
        variance = (sum_of_squares - total * mean) / (n - 1)
        # Cancellation leaves a tiny non-zero variance, or a negative one,
        # when all values are equal; read anything that small as zero.
        if variance <= RELATIVE_VARIANCE_NOISE * mean**2:
            variance = 0.0
        return cls(n=n, mean=mean, sd=math.sqrt(variance))

    @classmethod
    def from_values(cls, values: Sequence[float]) -> "Summary":
        n = len(values)
        if n == 0:
            return cls(n=0, mean=None, sd=None)
        mean = math.fsum(values) / n
        if n == 1:
            return cls(n=1, mean=mean, sd=None)
        squares = math.fsum((value - mean) ** 2 for value in values)
        return cls(n=n, mean=mean, sd=math.sqrt(squares / (n - 1)))


@dataclass(frozen=True)
class PairSums:
    """Exact sums over one group's (before, after) pairs of whole numbers.

    A value v is read as v / scale, so rates such as events per day stay
    whole numbers. The database adds up the pairs it stores and Python adds
    up the pairs it reads, and both give the same sums, so a report reads
    the same from either. Integers do not lose precision as float sums of
    squares do when the mean is large beside the spread.
    """

    n: int = 0
    before: int = 0
    after: int = 0
    # The sum of (after - before) squared.
    change_squares: int = 0
    scale: int = 1

    @classmethod
    def of_pairs(cls, pairs: Sequence[tuple[int, int]], scale: int = 1) -> "PairSums":
        return cls(
            n=len(pairs),
            before=sum(before for before, _ in pairs),
            after=sum(after for _, after in pairs),
            change_squares=sum((after - before) ** 2 for before, after in pairs),
            scale=scale,
        )

    def __add__(self, other: "PairSums") -> "PairSums":
        # Nothing added to nothing keeps its scale, whatever the other's.
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        if self.scale != other.scale:
            raise ValueError(
                f"cannot add pair sums of scale {self.scale} and {other.scale}"
            )
        return PairSums(
            n=self.n + other.n,
            before=self.before + other.before,
            after=self.after + other.after,
            change_squares=self.change_squares + other.change_squares,
            scale=self.scale,
        )

    @property
    def mean_before(self) -> float | None:
        return self.before / (self.n * self.scale) if self.n else None

    @property
    def mean_after(self) -> float | None:
        return self.after / (self.n * self.scale) if self.n else None

    def change_summary(self) -> Summary:
        """Return the count, mean and standard deviation of after minus before."""
        if self.n == 0:
            return Summary(n=0, mean=None, sd=None)
        total = self.after - self.before
        mean = total / (self.n * self.scale)
        if self.n == 1:
            return Summary(n=1, mean=mean, sd=None)
        # n * sum of squares - total squared is n(n - 1) times the variance,
        # computed exactly on integers before the one division.
        spread = self.n * self.change_squares - total * total
        variance = spread / (self.n * (self.n - 1) * self.scale**2)
        return Summary(n=self.n, mean=mean, sd=math.sqrt(variance))


@dataclass(frozen=True)
class MeanEstimate:
    """A group mean with its t-interval; the interval is None below two values."""

    n: int
    value: float | None
    interval: Interval | None


class Verdict(StrEnum):
    SIGNIFICANT = "significant"
    NOT_SIGNIFICANT = "not significant"
    SMALL_SAMPLE = "small sample"
    NOT_TESTABLE = "not testable"


@dataclass(frozen=True)
class Difference:
    """Group a minus group b, with its interval and the p-value of a two-sided test.

    ``estimate``, ``interval`` and ``p_value`` are None when a group is too
    small to compute them (no subjects, or fewer than two values for a mean).
    """

    estimate: float | None
    interval: Interval | None
    p_value: float | None
    test: str
    interval_method: str
    small_sample: bool

    @property
    def verdict(self) -> Verdict:
        if self.small_sample:
            return Verdict.SMALL_SAMPLE
        if self.p_value is None:
            return Verdict.NOT_TESTABLE
        if self.p_value < ALPHA:
            return Verdict.SIGNIFICANT
        return Verdict.NOT_SIGNIFICANT


def _z(confidence: float) -> float:
    return float(_scipy_stats().norm.ppf(1 - (1 - confidence) / 2))


def _check_counts(events: int, n: int) -> None:
    if n < 0 or not 0 <= events <= n:
        raise ValueError(
            f"invalid counts: {events} events among {n} subjects; "
            "events must be between 0 and n, and n must not be negative"
        )


def wilson_interval(events: int, n: int, confidence: float = CONFIDENCE) -> Interval:
    """Return the Wilson score interval for ``events`` out of ``n``.

    Wilson stays inside [0, 1] and keeps close to its nominal coverage for
    small n and for shares near 0 or 1, where the Wald interval does not.
    """
    _check_counts(events, n)
    if n == 0:
        raise ValueError("a Wilson interval needs at least one subject (n is 0)")
    z = _z(confidence)
    share = events / n
    denominator = 1 + z**2 / n
    centre = (share + z**2 / (2 * n)) / denominator
    half_width = (
        z * math.sqrt(share * (1 - share) / n + z**2 / (4 * n**2)) / denominator
    )
    # With 0 or n events one bound is exactly 0 or 1 but floating point
    # arithmetic misses it by a few ulps, so set it directly.
    low = 0.0 if events == 0 else centre - half_width
    high = 1.0 if events == n else centre + half_width
    return Interval(low, high)


def estimate_proportion(
    events: int, n: int, confidence: float = CONFIDENCE
) -> ProportionEstimate:
    _check_counts(events, n)
    if n == 0:
        return ProportionEstimate(events=0, n=0, value=None, interval=None)
    return ProportionEstimate(
        events=events,
        n=n,
        value=events / n,
        interval=wilson_interval(events, n, confidence),
    )


def is_small_proportion_sample(
    events_a: int, n_a: int, events_b: int, n_b: int
) -> bool:
    """Return True when either group has too few subjects, events or non-events.

    Non-events count too because a share near 1 is as poorly approximated
    as a share near 0.
    """
    smallest_count = min(events_a, n_a - events_a, events_b, n_b - events_b)
    return min(n_a, n_b) < MIN_SUBJECTS or smallest_count < MIN_EVENTS


def newcombe_interval(
    events_a: int,
    n_a: int,
    events_b: int,
    n_b: int,
    confidence: float = CONFIDENCE,
) -> Interval:
    """Return Newcombe's hybrid score interval for p_a - p_b.

    The interval (Newcombe 1998, Statistics in Medicine 17:873-890) combines
    the two Wilson intervals, so it stays sensible near 0 and 1 where the Wald
    interval collapses to a point or leaves [-1, 1].
    """
    share_a, share_b = events_a / n_a, events_b / n_b
    interval_a = wilson_interval(events_a, n_a, confidence)
    interval_b = wilson_interval(events_b, n_b, confidence)
    difference = share_a - share_b
    below = math.sqrt(
        (share_a - interval_a.low) ** 2 + (interval_b.high - share_b) ** 2
    )
    above = math.sqrt(
        (interval_a.high - share_a) ** 2 + (share_b - interval_b.low) ** 2
    )
    return Interval(difference - below, difference + above)


def two_by_two_test(
    events_a: int, n_a: int, events_b: int, n_b: int
) -> tuple[float, str]:
    """Return the two-sided p-value for equal shares and the name of the test used.

    Pearson's chi-square without continuity correction (the same p-value as
    the pooled two-proportion z-test) when every expected count is at least
    5; Fisher's exact test otherwise, including when a column is empty.
    """
    table = [[events_a, n_a - events_a], [events_b, n_b - events_b]]
    total = n_a + n_b
    column_totals = (events_a + events_b, total - events_a - events_b)
    smallest_expected = min(
        row_total * column_total / total
        for row_total in (n_a, n_b)
        for column_total in column_totals
    )
    if smallest_expected < MIN_EXPECTED_COUNT:
        result = _scipy_stats().fisher_exact(table, alternative="two-sided")
        return float(result.pvalue), FISHER_EXACT
    chi_square = _scipy_stats().chi2_contingency(table, correction=False)
    return float(chi_square.pvalue), CHI_SQUARE


def difference_of_proportions(
    events_a: int,
    n_a: int,
    events_b: int,
    n_b: int,
    confidence: float = CONFIDENCE,
) -> Difference:
    """Compare the share of events in group a with group b."""
    _check_counts(events_a, n_a)
    _check_counts(events_b, n_b)
    small_sample = is_small_proportion_sample(events_a, n_a, events_b, n_b)
    if n_a == 0 or n_b == 0:
        return Difference(
            estimate=None,
            interval=None,
            p_value=None,
            test="",
            interval_method=NEWCOMBE,
            small_sample=small_sample,
        )
    p_value, test = two_by_two_test(events_a, n_a, events_b, n_b)
    return Difference(
        estimate=events_a / n_a - events_b / n_b,
        interval=newcombe_interval(events_a, n_a, events_b, n_b, confidence),
        p_value=p_value,
        test=test,
        interval_method=NEWCOMBE,
        small_sample=small_sample,
    )


def estimate_mean(summary: Summary, confidence: float = CONFIDENCE) -> MeanEstimate:
    """Return the mean with its Student t-interval on n - 1 degrees of freedom."""
    if summary.n == 0 or summary.mean is None:
        return MeanEstimate(n=summary.n, value=None, interval=None)
    if summary.n < 2 or summary.sd is None:
        return MeanEstimate(n=summary.n, value=summary.mean, interval=None)
    critical = float(_scipy_stats().t.ppf(1 - (1 - confidence) / 2, summary.n - 1))
    half_width = critical * summary.sd / math.sqrt(summary.n)
    return MeanEstimate(
        n=summary.n,
        value=summary.mean,
        interval=Interval(summary.mean - half_width, summary.mean + half_width),
    )


def difference_of_means(
    a: Summary, b: Summary, confidence: float = CONFIDENCE
) -> Difference:
    """Compare two means with Welch's t-test, which does not assume equal variances.

    The interval uses the same Welch-Satterthwaite degrees of freedom as
    the test, so it excludes 0 exactly when p < 1 - confidence.
    """
    small_sample = min(a.n, b.n) < MIN_SUBJECTS
    untestable = Difference(
        estimate=None,
        interval=None,
        p_value=None,
        test=WELCH_T,
        interval_method=WELCH_INTERVAL,
        small_sample=small_sample,
    )
    if a.mean is None or b.mean is None or a.sd is None or b.sd is None:
        return untestable

    variance_a, variance_b = a.sd**2 / a.n, b.sd**2 / b.n
    standard_error = math.sqrt(variance_a + variance_b)
    estimate = a.mean - b.mean
    if standard_error == 0:
        # Both groups are constant: no variance to test against.
        return Difference(
            estimate=estimate,
            interval=None,
            p_value=None,
            test=WELCH_T,
            interval_method=WELCH_INTERVAL,
            small_sample=small_sample,
        )

    degrees_of_freedom = (variance_a + variance_b) ** 2 / (
        variance_a**2 / (a.n - 1) + variance_b**2 / (b.n - 1)
    )
    critical = float(_scipy_stats().t.ppf(1 - (1 - confidence) / 2, degrees_of_freedom))
    result = _scipy_stats().ttest_ind_from_stats(
        a.mean, a.sd, a.n, b.mean, b.sd, b.n, equal_var=False
    )
    return Difference(
        estimate=estimate,
        interval=Interval(
            estimate - critical * standard_error, estimate + critical * standard_error
        ),
        p_value=float(result.pvalue),
        test=WELCH_T,
        interval_method=WELCH_INTERVAL,
        small_sample=small_sample,
    )


def difference_in_differences(
    changes_a: Summary, changes_b: Summary, confidence: float = CONFIDENCE
) -> Difference:
    """Compare group a's mean change with group b's over aligned periods.

    Each subject contributes one change, its value after minus its value
    before. The mean change of a minus that of b is the same estimate as
    the interaction coefficient of an ordinary least squares fit of value
    on group, period and group x period over the two periods stacked. The
    Welch standard error equals that of a fit of the change on the group
    with HC2 robust errors. Unlike the pooled fit with plain errors, it does
    not treat a subject's two values as independent.
    """
    return difference_of_means(changes_a, changes_b, confidence)
