"""The dashboard's number formatting filters."""

import pytest

from metrics.stats import Interval, Verdict
from metrics.templatetags.metrics_format import (
    bar_width,
    difference,
    difference_interval,
    estimate,
    interval,
    p_value,
    verdict_text,
)


@pytest.mark.parametrize(
    ("value", "is_share", "text"),
    [(0.1234, True, "12.3%"), (4.25, False, "4.2"), (None, True, "\u2013")],
)
def test_estimate_formats_share_and_mean(value, is_share, text):
    assert estimate(value, is_share) == text


def test_difference_of_shares_in_points():
    assert difference(-0.031, True) == "-3.1 pp"
    assert difference(2.0, False) == "+2.0"


def test_intervals_show_both_bounds():
    assert interval(Interval(0.1, 0.25), True) == "10.0% to 25.0%"
    assert difference_interval(Interval(-0.05, 0.02), True) == "-5.0 to +2.0 pp"
    assert interval(None, True) == ""


@pytest.mark.parametrize(
    ("value", "text"), [(0.0004, "< 0.001"), (0.0123, "0.012"), (None, "\u2013")]
)
def test_p_value_rounding(value, text):
    assert p_value(value) == text


@pytest.mark.parametrize(
    ("share", "width"), [(0.425, "42.5"), (1.2, "100.0"), (-0.1, "0.0"), (None, "0")]
)
def test_bar_width_clamped_percentage(share, width):
    assert bar_width(share) == width


def test_every_verdict_has_text():
    for verdict in Verdict:
        assert verdict_text(verdict)
