"""The SQL functions registered on SQLite connections for the embedded demo."""

from customers.sqlite import local_day_start


def test_local_day_start_in_summer_time():
    # Berlin is UTC+2 in July, so its day starts at 22:00 UTC the day before.
    assert local_day_start("2024-07-01", "Europe/Berlin") == "2024-06-30 22:00:00"


def test_local_day_start_on_clock_change_day():
    # Clocks go forward at 02:00 on 31 March 2024, after midnight (UTC+1).
    assert local_day_start("2024-03-31", "Europe/Berlin") == "2024-03-30 23:00:00"


def test_local_day_start_ignores_time_part():
    assert local_day_start("2024-07-01 00:00:00", "UTC") == "2024-07-01 00:00:00"


def test_local_day_start_passes_null():
    assert local_day_start(None, "UTC") is None
