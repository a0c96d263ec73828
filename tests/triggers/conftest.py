"""Fixtures shared by the trigger tests."""

import pytest

from customers.signals import data_changed


@pytest.fixture
def announced():
    """Record every data_changed signal as (account id, source)."""
    sent: list[tuple[int, str]] = []

    def receive(sender, account_id, source, **kwargs):
        sent.append((account_id, source))

    data_changed.connect(receive, weak=False)
    yield sent
    data_changed.disconnect(receive)
