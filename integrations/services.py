"""Public functions for importing the datasets and writing the sample dataset.

import_all expects FOLDER/ravenstack and FOLDER/oulad_2013 and imports
RavenStack first, because OULAD learners are enrolled as RavenStack's
contacts. Each importer raises ImportDataError before writing anything for a
missing folder, file or column, a file that is not UTF-8, or a quoted field
that is not closed. import_all checks the files of both datasets before it
writes. Bad rows are reported in the ImportReport and skipped.
"""

from pathlib import Path

from integrations import oulad, ravenstack
from integrations.csvfiles import require_folder
from integrations.oulad import import_oulad, read_oulad, write_oulad
from integrations.ravenstack import (
    import_ravenstack,
    read_ravenstack,
    write_ravenstack,
)
from integrations.report import FileCounts, ImportDataError, ImportReport, RowIssue
from integrations.sample import generate_sample

__all__ = [
    "FileCounts",
    "ImportDataError",
    "ImportReport",
    "RowIssue",
    "generate_sample",
    "import_all",
    "import_oulad",
    "import_ravenstack",
]

RAVENSTACK_FOLDER = "ravenstack"
OULAD_FOLDER = "oulad_2013"


def import_all(folder: Path, progress: bool = False) -> list[ImportReport]:
    """Import FOLDER/ravenstack, then FOLDER/oulad_2013; return both reports."""
    folder = Path(folder)
    what_to_do = (
        f"Pass a folder that holds {RAVENSTACK_FOLDER}/ and {OULAD_FOLDER}/ "
        "(see docs/data.md), or make a small sample with: "
        "python manage.py generate_sample FOLDER"
    )
    # Checked here first, so a missing path gets the message about both folders.
    require_folder(folder, [], what_to_do)
    require_folder(folder / RAVENSTACK_FOLDER, ravenstack.COLUMNS, what_to_do)
    oulad.check_folder(folder / OULAD_FOLDER)

    # Every file of both datasets is read before anything is written, so a
    # bad OULAD file stops the run before RavenStack is written.
    ravenstack_files = read_ravenstack(folder / RAVENSTACK_FOLDER)
    oulad_files = read_oulad(folder / OULAD_FOLDER)
    return [
        write_ravenstack(ravenstack_files, progress),
        write_oulad(oulad_files, progress),
    ]
