"""Public functions for importing the datasets and writing the sample dataset.

import_all expects FOLDER/ravenstack and FOLDER/oulad_2013 and imports
RavenStack first, because OULAD learners are enrolled as RavenStack's
contacts. Each importer raises ImportDataError for a missing folder, file or
column before writing anything, and reports bad rows in its ImportReport.
"""

from pathlib import Path

from integrations import oulad, ravenstack
from integrations.csvfiles import require_folder
from integrations.oulad import import_oulad
from integrations.ravenstack import import_ravenstack
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
    # Both folders are checked first so a missing OULAD file stops the run
    # before RavenStack is imported.
    require_folder(folder, [], what_to_do)
    require_folder(folder / RAVENSTACK_FOLDER, ravenstack.COLUMNS, what_to_do)
    oulad.check_folder(folder / OULAD_FOLDER)
    return [
        import_ravenstack(folder / RAVENSTACK_FOLDER, progress),
        import_oulad(folder / OULAD_FOLDER, progress),
    ]
