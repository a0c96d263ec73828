"""Batched inserts that update rows already present, with an optional progress bar."""

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

from django.db.models import Model
from tqdm import tqdm

# Rows per INSERT; Django lowers it further where SQLite limits query parameters.
BATCH_SIZE = 1000

# Files with fewer rows than this finish too fast for a progress bar to help.
LONG_FILE_ROWS = 1000

RowModel = TypeVar("RowModel", bound=Model)


@contextmanager
def progress_bar(file: str, total: int, enabled: bool) -> Iterator[tqdm]:
    """Yield a tqdm bar on stderr, disabled unless asked for and the file is long."""
    bar = tqdm(
        total=total,
        desc=file,
        unit="rows",
        disable=not enabled or total < LONG_FILE_ROWS,
        leave=False,
    )
    try:
        yield bar
    finally:
        bar.close()


def upsert(
    model: type[RowModel],
    rows: Sequence[RowModel],
    *,
    unique_fields: Sequence[str],
    update_fields: Sequence[str],
    bar: tqdm | None = None,
) -> int:
    """Insert rows in batches; a row whose unique fields exist updates that row.

    Running the same import twice therefore writes each row once. The caller
    wraps the call in a transaction so a failing batch leaves none written.
    """
    for start in range(0, len(rows), BATCH_SIZE):
        batch = rows[start : start + BATCH_SIZE]
        model._default_manager.bulk_create(
            batch,
            update_conflicts=True,
            unique_fields=list(unique_fields),
            update_fields=list(update_fields),
        )
        if bar is not None:
            bar.update(len(batch))
    return len(rows)
