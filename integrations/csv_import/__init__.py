"""CSV import through a declarative column mapping (docs/csv-import.md).

load_mapping() reads and checks a TOML mapping. run_import() imports the
files of a folder with it, or reports what it would change in a dry run.
The import_csv command and the admin upload page (admin_views.py) call
both.
"""

from pathlib import Path

from integrations.csv_import.errors import CsvImportError, MappingError
from integrations.csv_import.importer import run_import
from integrations.csv_import.mapping import Mapping, load_mapping
from integrations.csv_import.report import CsvImportReport

__all__ = [
    "MAPPINGS_DIR",
    "CsvImportError",
    "CsvImportReport",
    "Mapping",
    "MappingError",
    "load_mapping",
    "run_import",
    "shipped_mappings",
]

# Mappings that ship with the project, such as ravenstack.toml.
MAPPINGS_DIR = Path(__file__).resolve().parent / "mappings"


def shipped_mappings() -> list[Path]:
    """Return the mapping files that ship with the project, sorted by name."""
    return sorted(MAPPINGS_DIR.glob("*.toml"))
