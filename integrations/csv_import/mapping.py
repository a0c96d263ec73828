"""Loading and checking a declarative CSV mapping written in TOML.

A mapping names, per target, the CSV files to read, the key that makes the
import idempotent, and for each model field its source (a column, the
first non-blank of several columns, a template or a fixed value), its type
and its transformations. Everything that can be checked without the CSV
files is checked here, and each problem raises MappingError naming the
mapping file, the target, the field and what to write instead.
docs/csv-import.md describes the format.
"""

from __future__ import annotations

import string
import tomllib
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import models
from django.db.models.fields import PositiveIntegerRelDbTypeMixin

from integrations.csv_import.errors import MappingError
from integrations.csv_import.targets import PROPERTIES, TARGETS, Target

FORMAT_VERSION = 1

ON_ERROR_CHOICES = ("abort", "skip")

TYPES = ("str", "choice", "int", "decimal", "bool", "date", "datetime", "ref")

# Types a key of the JSON properties field may take.
PROPERTY_TYPES = ("str", "int", "decimal", "bool", "date", "datetime")

SOURCE_KEYS = ("column", "columns", "template", "value")

FIELD_KEYS = {
    *SOURCE_KEYS,
    "type", "required", "default", "strip", "case", "replace", "slug", "map",
    "map_other",
    "pick", "format", "timezone", "time", "true", "false", "min", "max",
    "match", "through",
}  # fmt: skip

TARGET_KEYS = {"target", "file", "key", "fields", "repeat", "only_if_present"}

MAPPING_KEYS = {"format", "name", "on_error", "targets"}

TRUE_WORDS = ("true", "1", "yes", "y", "t")
FALSE_WORDS = ("false", "0", "no", "n", "f")

# Rows one source row may repeat into; a larger count rejects the row, so a
# typo such as seats=5000000 cannot fill the database.
MAX_REPEAT = 10_000

# A model class; FieldSpec has a field named type, which hides the builtin.
ModelClass: TypeAlias = type[models.Model]

# Marks a blank optional property, which is left out of the JSON.
OMIT = object()

# Marks a model field that neither allows blank nor has a default.
_NO_BLANK = object()


@dataclass(frozen=True)
class FieldSpec:
    """How one model field (or one key of properties) gets its value."""

    name: str
    type: str
    columns: tuple[str, ...] = ()
    template: str | None = None
    value: str | None = None
    required: bool = True
    default: str | None = None
    strip: bool = True
    case: str | None = None
    replace: dict[str, str] | None = None
    slug: bool = False
    value_map: dict[str, str] | None = None
    map_other: str | None = None
    pick: tuple[str, ...] = ()
    formats: tuple[str, ...] = ()
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    time_of_day: time | None = None
    true_words: frozenset[str] = frozenset(TRUE_WORDS)
    false_words: frozenset[str] = frozenset(FALSE_WORDS)
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    # Taken from the model field.
    max_length: int | None = None
    decimal_places: int | None = None
    choices: tuple[str, ...] = ()
    is_email: bool = False
    # What a blank optional value becomes: None, "", the model default or OMIT.
    blank_value: Any = None
    # For refs: the model looked up, its column matched, and the field taken.
    ref_model: ModelClass | None = None
    match: str = "external_id"
    take: str = "pk"

    @property
    def attname(self) -> str:
        """The name the converted value is stored under in a row."""
        return f"{self.name}_id" if self.type == "ref" else self.name

    @property
    def is_property(self) -> bool:
        return self.name.startswith(f"{PROPERTIES}.")

    def source_label(self) -> str:
        if self.template is not None:
            return f"template {self.template!r}"
        if self.value is not None:
            return "fixed value"
        return " or ".join(self.columns)

    def template_names(self) -> set[str]:
        if self.template is None:
            return set()
        return template_names(self.template)


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


def template_names(template: str) -> set[str]:
    """Return the names a str.format template uses, such as {first} and {n:03d}."""
    return {
        name for _, name, _, _ in string.Formatter().parse(template) if name is not None
    }


def load_mapping(path: Path) -> Mapping:
    """Read and check a mapping file; raise MappingError naming each problem."""
    path = Path(path)
    if not path.is_file():
        raise MappingError(f"Mapping file {path} not found; pass a .toml mapping file")
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as error:
        raise MappingError(f"Mapping file {path} is not UTF-8: {error}") from None
    except tomllib.TOMLDecodeError as error:
        raise MappingError(f"Mapping file {path} is not valid TOML: {error}") from None
    return parse_mapping(document, path)


def parse_mapping(document: dict[str, Any], path: Path) -> Mapping:
    """Check a parsed TOML document and build the Mapping it describes."""
    where = str(path)
    _reject_unknown(document, MAPPING_KEYS, where)
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
    if not isinstance(raw_targets, list) or not raw_targets:
        raise MappingError(
            f"{where}: the mapping has no targets; add at least one [[targets]] table"
        )
    targets = tuple(
        _parse_target(raw, index, where) for index, raw in enumerate(raw_targets)
    )
    return Mapping(path, str(document.get("name", path.stem)), on_error, targets)


def _reject_unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise MappingError(
            f"{where}: unknown key {unknown[0]!r}; use one of "
            + ", ".join(sorted(allowed))
        )


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
    _reject_unknown(raw, TARGET_KEYS, where)

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
        _parse_field(target, field_name, spec, where, variables)
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


def _model_type(model_field: models.Field[Any, Any]) -> tuple[str, ...]:
    """Return the mapping types that can fill a model field, the first the default."""
    if isinstance(model_field, models.ForeignKey):
        return ("ref",)
    if isinstance(model_field, models.BooleanField):
        return ("bool",)
    if isinstance(model_field, models.DateTimeField):
        return ("datetime",)
    if isinstance(model_field, models.DateField):
        return ("date",)
    if isinstance(model_field, models.DecimalField):
        return ("decimal",)
    if isinstance(model_field, models.IntegerField):
        return ("int",)
    if isinstance(model_field, models.CharField | models.TextField):
        return ("choice", "str") if model_field.choices else ("str", "choice")
    return ()


def _parse_field(
    target: Target, name: str, raw: Any, where: str, variables: set[str]
) -> FieldSpec:
    where = f"{where} field {name}"
    if isinstance(raw, str):
        raw = {"column": raw}
    if not isinstance(raw, dict):
        raise MappingError(f'{where}: write a table such as {{ column = "COLUMN" }}')
    _reject_unknown(raw, FIELD_KEYS, where)

    options: dict[str, Any] = {"name": name}
    options.update(_source(raw, where, variables))
    model_field, allowed = _field_types(target, name, where)
    kind = raw.get("type", allowed[0])
    if kind not in TYPES:
        raise MappingError(
            f"{where}: unknown type {kind!r}; use one of {', '.join(TYPES)}"
        )
    if kind not in allowed:
        raise MappingError(
            f"{where}: type {kind!r} cannot fill this field; use "
            + " or ".join(repr(choice) for choice in allowed)
        )
    options["type"] = kind
    options.update(_transformations(raw, kind, where))
    options.update(_typing(raw, kind, where))
    if model_field is not None:
        options.update(_from_model(model_field, raw, kind, target, name, where))
    else:
        options["blank_value"] = OMIT
    spec = FieldSpec(**options)
    if not spec.required and spec.default is None and spec.blank_value is _NO_BLANK:
        raise MappingError(
            f"{where}: the field cannot be blank in the {target.label}; set "
            "required = true or give a default"
        )
    return spec


def _source(raw: dict[str, Any], where: str, variables: set[str]) -> dict[str, Any]:
    given = [key for key in SOURCE_KEYS if key in raw]
    if len(given) != 1:
        raise MappingError(
            f"{where}: give exactly one of column, columns, template or value "
            f"(found {', '.join(given) or 'none'})"
        )
    key = given[0]
    value = raw[key]
    if key == "columns":
        if (
            not isinstance(value, list)
            or not value
            or not all(isinstance(column, str) for column in value)
        ):
            raise MappingError(f"{where}: columns must be a list of column names")
        return {"columns": tuple(value)}
    if not isinstance(value, str):
        raise MappingError(f"{where}: {key} must be a string")
    if key == "column":
        return {"columns": (value,)}
    if key == "value":
        return {"value": value}
    try:
        names = template_names(value)
    except ValueError as error:
        raise MappingError(f"{where}: template {value!r} is invalid: {error}") from None
    bad = sorted(name for name in names if not name.isidentifier())
    if bad:
        raise MappingError(
            f"{where}: template {value!r} uses {{{bad[0]}}}; templates take plain "
            "column names only, such as {first_name}"
        )
    return {"template": value}


def _field_types(
    target: Target, name: str, where: str
) -> tuple[models.Field[Any, Any] | None, tuple[str, ...]]:
    if name.startswith(f"{PROPERTIES}."):
        if PROPERTIES not in target.writable_fields() or name == f"{PROPERTIES}.":
            raise MappingError(f"{where}: the {target.label} has no properties to fill")
        return None, PROPERTY_TYPES
    model_fields = target.writable_fields()
    if name not in model_fields:
        raise MappingError(
            f"{where}: unknown field of the {target.label}; use one of "
            + ", ".join(sorted(model_fields))
            + f", or {PROPERTIES}.NAME"
        )
    allowed = _model_type(model_fields[name])
    if not allowed:
        raise MappingError(f"{where}: a mapping cannot fill this field")
    return model_fields[name], allowed


def _transformations(raw: dict[str, Any], kind: str, where: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    for flag in ("required", "strip", "slug"):
        if flag in raw:
            if not isinstance(raw[flag], bool):
                raise MappingError(f"{where}: {flag} must be true or false")
            options[flag] = raw[flag]
    if "case" in raw:
        if raw["case"] not in ("lower", "upper"):
            raise MappingError(f'{where}: case must be "lower" or "upper"')
        options["case"] = raw["case"]
    for key in ("default", "map_other"):
        if key in raw:
            if not isinstance(raw[key], str):
                raise MappingError(f"{where}: {key} must be a string, as in the CSV")
            options[key] = raw[key]
    if "replace" in raw:
        replace = raw["replace"]
        if not isinstance(replace, dict) or not all(
            isinstance(value, str) and old for old, value in replace.items()
        ):
            raise MappingError(
                f'{where}: replace must be a table of strings, such as {{ "_" = "-" }}'
            )
        options["replace"] = dict(replace)
    if "map" in raw:
        value_map = raw["map"]
        if not isinstance(value_map, dict) or not all(
            isinstance(value, str) for value in value_map.values()
        ):
            raise MappingError(
                f'{where}: map must be a table of strings, such as {{ "Hi" = "high" }}'
            )
        options["value_map"] = dict(value_map)
    if "map_other" in options and "value_map" not in options:
        raise MappingError(f"{where}: map_other needs a map")
    if "pick" in raw:
        pick = raw["pick"]
        if (
            not isinstance(pick, list)
            or not pick
            or not all(isinstance(value, str) for value in pick)
        ):
            raise MappingError(f"{where}: pick must be a non-empty list of strings")
        options["pick"] = tuple(pick)
    return options


def _typing(raw: dict[str, Any], kind: str, where: str) -> dict[str, Any]:
    options: dict[str, Any] = {}
    if "format" in raw:
        if kind not in ("date", "datetime"):
            raise MappingError(f"{where}: format applies to date and datetime only")
        formats = raw["format"]
        formats = [formats] if isinstance(formats, str) else formats
        if not isinstance(formats, list) or not all(
            isinstance(text, str) for text in formats
        ):
            raise MappingError(f"{where}: format must be a strptime format or a list")
        options["formats"] = tuple(formats)
    if ("timezone" in raw or "time" in raw) and kind != "datetime":
        raise MappingError(f"{where}: timezone and time apply to datetime only")
    if "timezone" in raw:
        try:
            options["timezone"] = ZoneInfo(str(raw["timezone"]))
        except (ZoneInfoNotFoundError, ValueError):
            raise MappingError(
                f"{where}: timezone {raw['timezone']!r} is not an IANA time zone; "
                'use a name such as "UTC" or "Europe/Paris"'
            ) from None
    if "time" in raw:
        try:
            options["time_of_day"] = time.fromisoformat(str(raw["time"]))
        except ValueError:
            raise MappingError(
                f'{where}: time {raw["time"]!r} is invalid; write "HH:MM"'
            ) from None
    for key, option in (("true", "true_words"), ("false", "false_words")):
        if key in raw:
            if kind != "bool":
                raise MappingError(f"{where}: {key} applies to bool only")
            words = raw[key]
            if not isinstance(words, list) or not all(
                isinstance(word, str) for word in words
            ):
                raise MappingError(f"{where}: {key} must be a list of strings")
            options[option] = frozenset(word.lower() for word in words)
    for key, option in (("min", "minimum"), ("max", "maximum")):
        if key in raw:
            if kind not in ("int", "decimal"):
                raise MappingError(f"{where}: {key} applies to int and decimal only")
            try:
                options[option] = Decimal(str(raw[key]))
            except InvalidOperation:
                raise MappingError(f"{where}: {key} must be a number") from None
    return options


def _from_model(
    model_field: models.Field[Any, Any],
    raw: dict[str, Any],
    kind: str,
    target: Target,
    name: str,
    where: str,
) -> dict[str, Any]:
    options: dict[str, Any] = {
        "max_length": getattr(model_field, "max_length", None),
        "decimal_places": getattr(model_field, "decimal_places", None),
        "choices": tuple(str(value) for value, _ in model_field.choices or ()),
        "is_email": isinstance(model_field, models.EmailField),
    }
    if isinstance(model_field, PositiveIntegerRelDbTypeMixin) and (
        "min" not in raw or Decimal(str(raw["min"])) < 0
    ):
        options["minimum"] = Decimal(0)
    if model_field.null:
        options["blank_value"] = None
    elif isinstance(model_field, models.CharField | models.TextField):
        options["blank_value"] = ""
    elif model_field.has_default():
        options["blank_value"] = model_field.get_default()
    else:
        options["blank_value"] = _NO_BLANK
    if kind == "ref":
        options.update(_ref(model_field, raw, target, name, where))
    elif "match" in raw or "through" in raw:
        raise MappingError(f"{where}: match and through apply to type ref only")
    return options


def _ref(
    model_field: models.Field[Any, Any],
    raw: dict[str, Any],
    target: Target,
    name: str,
    where: str,
) -> dict[str, Any]:
    related = model_field.related_model
    assert isinstance(related, type)
    lookup_model: type[models.Model] = related
    take = "pk"
    through = raw.get("through")
    if through is not None:
        # Look up another target's row and take its foreign key, as a usage
        # event takes its account from its subscription.
        through_target = TARGETS.get(through)
        if through_target is None:
            raise MappingError(
                f"{where}: through = {through!r} is not a target; use one of "
                + ", ".join(TARGETS)
            )
        via = through_target.writable_fields().get(name)
        if not isinstance(via, models.ForeignKey) or via.related_model is not related:
            raise MappingError(
                f"{where}: a {through_target.label} has no {name}, so it cannot "
                f"give the {name} of a {target.label}"
            )
        lookup_model = through_target.model
        take = f"{name}_id"
    match = raw.get("match", "external_id")
    matched = next(
        (field for field in lookup_model._meta.concrete_fields if field.name == match),
        None,
    )
    if matched is None or not matched.unique:
        raise MappingError(
            f"{where}: match = {match!r} is not a unique field of "
            f"{lookup_model._meta.verbose_name}; use a field such as external_id"
        )
    return {"ref_model": lookup_model, "match": match, "take": take}
