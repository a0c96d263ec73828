"""Loading and checking a declarative CSV mapping written in TOML.

A mapping names, per target, the CSV files to read and the key that makes
the import idempotent. For each model field it names a source (a column,
the first non-blank of several columns, a template or a fixed value), a
type and transformations. Everything that can be checked without the CSV
files is checked here, and each problem raises MappingError naming the
mapping file, the target, the field and what to write instead.
docs/csv-import.md describes the format.
"""

from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import models

from integrations.csv_import.errors import MappingError
from integrations.csv_import.fields import (
    FieldSpec,
    parse_field,
    reject_unknown,
)
from integrations.csv_import.targets import TARGETS, Target

FORMAT_VERSION = 1

ON_ERROR_CHOICES = ("abort", "skip")

MAPPING_KEYS = {"format", "name", "on_error", "targets"}

TARGET_KEYS = {"target", "file", "key", "fields", "repeat", "only_if_present"}

# Rows one source row may repeat into; a larger count rejects the row, so a
# typo such as seats=5000000 cannot fill the database.
MAX_REPEAT = 10_000


@dataclass(frozen=True)
class Repeat:
    """One output row per number 1..N, N read from column, named variable."""

    column: str
    variable: str


@dataclass(frozen=True)
class TargetSpec:
    index: int
    target: Target
    file_pattern: str
    key: str
    fields: tuple[FieldSpec, ...]
    repeat: Repeat | None = None
    only_if_present: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        return f"targets[{self.index}] ({self.target.name})"

    @property
    def key_field(self) -> FieldSpec:
        return next(spec for spec in self.fields if spec.name == self.key)

    def columns(self) -> set[str]:
        """Return the CSV columns this target reads."""
        names = set(self.only_if_present)
        if self.repeat is not None:
            names.add(self.repeat.column)
        for spec in self.fields:
            names.update(spec.columns)
            names.update(spec.template_names())
        if self.repeat is not None:
            names.discard(self.repeat.variable)
        return names


@dataclass(frozen=True)
class Mapping:
    path: Path
    name: str
    on_error: str
    targets: tuple[TargetSpec, ...]


def load_mapping(path: Path, display_name: str | None = None) -> Mapping:
    """Read and check a mapping file; raise MappingError naming each problem.

    display_name names the file in errors and is the mapping's default name,
    in place of its path, such as the name of an uploaded file.
    """
    path = Path(path)
    name_in_errors = Path(display_name) if display_name else path
    if not path.is_file():
        raise MappingError(
            f"Mapping file {name_in_errors} not found; pass a .toml mapping file"
        )
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise MappingError(
            f"Mapping file {name_in_errors} is not UTF-8: {error}"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise MappingError(
            f"Mapping file {name_in_errors} is not valid TOML: {error}"
        ) from None
    mapping = parse_mapping(document, name_in_errors)
    return dataclasses.replace(mapping, path=path)


def parse_mapping(document: dict[str, Any], path: Path) -> Mapping:
    """Check a parsed TOML document and build the Mapping it describes."""
    where = str(path)
    reject_unknown(document, MAPPING_KEYS, where)
    version = document.get("format", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise MappingError(
            f"{where}: format = {version!r} is not supported; write format = "
            f"{FORMAT_VERSION}"
        )
    on_error = document.get("on_error", "abort")
    if on_error not in ON_ERROR_CHOICES:
        raise MappingError(
            f"{where}: on_error = {on_error!r} is invalid; use "
            + " or ".join(repr(choice) for choice in ON_ERROR_CHOICES)
        )
    raw_targets = document.get("targets")
    if raw_targets is not None and not isinstance(raw_targets, list):
        raise MappingError(
            f"{where}: targets = {raw_targets!r} is invalid; targets must be an "
            "array of tables, so write each target as a [[targets]] table"
        )
    if not raw_targets:
        raise MappingError(
            f"{where}: the mapping has no targets; add at least one [[targets]] table"
        )
    targets = tuple(
        _parse_target(raw, index, where) for index, raw in enumerate(raw_targets)
    )
    return Mapping(path, str(document.get("name", path.stem)), on_error, targets)


def _parse_target(raw: Any, index: int, where: str) -> TargetSpec:
    if not isinstance(raw, dict):
        raise MappingError(f"{where}: targets[{index}] must be a table")
    name = raw.get("target")
    if name not in TARGETS:
        raise MappingError(
            f"{where}: targets[{index}] has target = {name!r}; use one of "
            + ", ".join(TARGETS)
        )
    target = TARGETS[name]
    where = f"{where}: targets[{index}] ({name})"
    reject_unknown(raw, TARGET_KEYS, where)

    file_pattern = raw.get("file")
    if not isinstance(file_pattern, str) or not file_pattern.strip():
        raise MappingError(f"{where}: file is missing; name the CSV file or a pattern")
    if Path(file_pattern).is_absolute() or ".." in Path(file_pattern).parts:
        raise MappingError(
            f"{where}: file = {file_pattern!r} must be relative to the data folder "
            "and stay inside it"
        )

    raw_fields = raw.get("fields")
    if not isinstance(raw_fields, dict) or not raw_fields:
        raise MappingError(f"{where}: fields is missing; add a [targets.fields] table")
    repeat = _parse_repeat(raw.get("repeat"), where)
    variables = {repeat.variable} if repeat else set()
    fields = tuple(
        parse_field(target, field_name, spec, where, variables)
        for field_name, spec in raw_fields.items()
    )

    key = raw.get("key", "external_id")
    _check_key(target, key, fields, where)
    _check_required_fields(target, fields, where)

    only_if_present = raw.get("only_if_present", [])
    if not isinstance(only_if_present, list) or not all(
        isinstance(column, str) for column in only_if_present
    ):
        raise MappingError(f"{where}: only_if_present must be a list of column names")
    return TargetSpec(
        index, target, file_pattern, key, fields, repeat, tuple(only_if_present)
    )


def _parse_repeat(raw: Any, where: str) -> Repeat | None:
    if raw is None:
        return None
    if (
        not isinstance(raw, dict)
        or set(raw) != {"column", "as"}
        or not all(isinstance(value, str) for value in raw.values())
    ):
        raise MappingError(
            f'{where}: repeat must be {{ column = "COLUMN", as = "NAME" }}, '
            "naming a whole-number column and the variable templates use"
        )
    if not raw["as"].isidentifier():
        raise MappingError(f"{where}: repeat as = {raw['as']!r} must be a plain name")
    return Repeat(raw["column"], raw["as"])


def _check_key(
    target: Target, key: Any, fields: tuple[FieldSpec, ...], where: str
) -> None:
    model_fields = target.writable_fields()
    if not isinstance(key, str) or key not in model_fields:
        raise MappingError(
            f"{where}: key = {key!r} is not a field of the {target.label}"
        )
    if not model_fields[key].unique:
        unique = [name for name, field in model_fields.items() if field.unique]
        raise MappingError(
            f"{where}: key = {key!r} is not unique in the {target.label}; use one "
            f"of {', '.join(unique)}"
        )
    spec = next((spec for spec in fields if spec.name == key), None)
    if spec is None or not spec.required:
        raise MappingError(
            f"{where}: the key field {key} must be mapped and required, because "
            "it is how a later import finds the same row"
        )


def _check_required_fields(
    target: Target, fields: tuple[FieldSpec, ...], where: str
) -> None:
    mapped = {spec.name for spec in fields}
    for name, model_field in target.writable_fields().items():
        if name not in mapped and _must_be_set(model_field):
            raise MappingError(
                f"{where}: field {name} is missing; the {target.label} needs a "
                "value for it, so map a column, template or value to it"
            )


def _must_be_set(model_field: models.Field[Any, Any]) -> bool:
    return not (model_field.null or model_field.blank or model_field.has_default())
