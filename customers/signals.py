"""The signal that announces a change to an account's customer record.

customers imports no app above it, so it cannot call triggers when a usage
event or a survey response arrives. It sends data_changed instead, and
triggers connects a receiver in its AppConfig.ready(). courses and
lifecycle send it too, for learning and stage changes.
"""

from django.dispatch import Signal

from conditions import DATA_SOURCES

# Sent inside the transaction that writes the change, with the keyword
# arguments account_id (int) and source (a key of conditions.DATA_SOURCES).
# A receiver must defer its work with transaction.on_commit, so it never
# acts on data that is rolled back.
data_changed = Signal()


def send_data_changed(sender: type, account_id: int, source: str) -> None:
    """Announce that data of one kind changed for an account and its contacts."""
    if source not in DATA_SOURCES:
        raise ValueError(
            f"data source {source!r} is unknown; use one of {', '.join(DATA_SOURCES)}"
        )
    data_changed.send(sender=sender, account_id=account_id, source=source)
