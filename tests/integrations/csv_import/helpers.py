"""Building mappings and CSV folders for the CSV import tests."""

from pathlib import Path
from typing import Any

from integrations.csv_import.fields import FieldSpec
from integrations.csv_import.mapping import Mapping, parse_mapping

# The fields each target needs, so a test can add only the one it checks.
REQUIRED_FIELDS: dict[str, dict[str, Any]] = {
    "account": {
        "external_id": {"column": "id"},
        "name": {"column": "name"},
        "signup_date": {"column": "signup", "type": "date"},
    },
    "ticket": {
        "external_id": {"column": "id"},
        "account": {"column": "account", "type": "ref"},
        "opened_at": {"column": "opened", "type": "datetime"},
        "priority": {"column": "priority", "type": "choice"},
    },
}


def mapping_of(*targets: dict[str, Any], on_error: str = "abort") -> Mapping:
    """Build a checked Mapping from target tables, as a TOML file would give."""
    document = {"on_error": on_error, "targets": list(targets)}
    return parse_mapping(document, Path("test.toml"))


def field_spec(target: str, name: str, **options: Any) -> FieldSpec:
    """Return the checked FieldSpec of one field added to a minimal target."""
    fields = {**REQUIRED_FIELDS[target], name: options}
    mapping = mapping_of({"target": target, "file": "x.csv", "fields": fields})
    return next(spec for spec in mapping.targets[0].fields if spec.name == name)


def write_csv(folder: Path, name: str, lines: list[str]) -> Path:
    """Write a CSV file; lines[0] is the header, so lines[1] is line 2."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
