"""One field of a CSV mapping: where its text comes from and how it is typed.

parse_field() checks a field's TOML table against the model field it
fills and builds a FieldSpec; values.convert() applies it to a row.
"""

from __future__ import annotations

import re
import string
from dataclasses import dataclass, field
from datetime import time
from decimal import Decimal, InvalidOperation
from typing import Any, TypeAlias
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from django.db import models
from django.db.backends.base.operations import BaseDatabaseOperations
from django.db.models.fields import PositiveIntegerRelDbTypeMixin

from integrations.csv_import.errors import MappingError
from integrations.csv_import.targets import PROPERTIES, TARGETS, Target

TYPES = ("str", "choice", "int", "decimal", "bool", "date", "datetime", "ref")

# Types a key of the JSON properties field may take.
PROPERTY_TYPES = ("str", "int", "decimal", "bool", "date", "datetime")

SOURCE_KEYS = ("column", "columns", "template", "value")

FIELD_KEYS = {
    *SOURCE_KEYS,
    "type", "required", "default", "strip", "case", "replace", "slug", "map",
    "map_other", "pick", "format", "timezone", "time", "true", "false", "min",
    "max", "match", "through",
}  # fmt: skip

# Python's format specification without nested fields, in ASCII digits:
# [[fill]align][sign][z][#][0][width][grouping][.precision][type].
FORMAT_SPEC = re.compile(
    r"(?:.?[<>=^])?[-+ ]?z?#?0?(?P<width>[0-9]+)?[,_]?"
    r"(?:\.(?P<precision>[0-9]+))?[bcdeEfFgGnosxX%]?",
    re.DOTALL,
)

# The largest width or precision in a template's format specification.
MAX_FORMAT_WIDTH = 100

TRUE_WORDS = ("true", "1", "yes", "y", "t")
FALSE_WORDS = ("false", "0", "no", "n", "f")

# A model class; FieldSpec has a field named type, which hides the builtin.
ModelClass: TypeAlias = type[models.Model]

# Marks a blank optional property, which is left out of the JSON.
OMIT = object()

# Marks a model field that neither allows blank nor has a default.
_NO_BLANK = object()


@dataclass(frozen=True)
class FieldSpec:
    """The source, type and transformations of one model field or properties key."""

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
    max_digits: int | None = None
    decimal_places: int | None = None
    # The range of an integer column, so a value it cannot store rejects the
    # row instead of failing the whole batch in the database.
    stored_range: tuple[int, int] | None = None
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


def template_names(template: str) -> set[str]:
    """Return the names a str.format template uses, such as {first} and {n:03d}."""
    return {
        name for _, name, _, _ in string.Formatter().parse(template) if name is not None
    }


def reject_unknown(table: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise MappingError(
            f"{where}: unknown key {unknown[0]!r}; use one of "
            + ", ".join(sorted(allowed))
        )


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


def parse_field(
    target: Target, name: str, raw: Any, where: str, variables: set[str]
) -> FieldSpec:
    where = f"{where} field {name}"
    if isinstance(raw, str):
        raw = {"column": raw}
    if not isinstance(raw, dict):
        raise MappingError(f'{where}: write a table such as {{ column = "COLUMN" }}')
    reject_unknown(raw, FIELD_KEYS, where)

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
    present = [key for key in SOURCE_KEYS if key in raw]
    if len(present) != 1:
        raise MappingError(
            f"{where}: give exactly one of column, columns, template or value "
            f"(found {', '.join(present) or 'none'})"
        )
    key = present[0]
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
    _check_format_specs(value, where)
    return {"template": value}


def _check_format_specs(template: str, where: str) -> None:
    # A width or precision such as {company:>999999999} would build a string
    # of a gigabyte for every row, so both are bounded.
    for _, name, format_spec, _ in string.Formatter().parse(template):
        if name is None or not format_spec:
            continue
        match = FORMAT_SPEC.fullmatch(format_spec)
        if match is None:
            raise MappingError(
                f"{where}: template {template!r} has the format specification "
                f"{format_spec!r} for {{{name}}}, which templates do not take; write "
                "[[fill]align][sign][0][width][,][.precision][type], such as "
                "{n:03d} or {name:>10}"
            )
        for part in ("width", "precision"):
            number = match.group(part)
            if number is not None and int(number) > MAX_FORMAT_WIDTH:
                raise MappingError(
                    f"{where}: template {template!r} gives {{{name}}} the {part} "
                    f"{int(number)}; a template allows at most {MAX_FORMAT_WIDTH}"
                )


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
                bound = Decimal(str(raw[key]))
            except InvalidOperation:
                bound = Decimal("NaN")
            # A NaN bound would make every comparison raise InvalidOperation.
            if not bound.is_finite():
                raise MappingError(
                    f"{where}: {key} = {raw[key]!r} is invalid; {key} must be a "
                    "finite number, such as 0"
                )
            options[option] = bound
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
        "max_digits": getattr(model_field, "max_digits", None),
        "decimal_places": getattr(model_field, "decimal_places", None),
        "stored_range": _integer_range(model_field),
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


def _integer_range(model_field: models.Field[Any, Any]) -> tuple[int, int] | None:
    # Django's ranges per internal type, which PostgreSQL enforces. SQLite
    # would store 64-bit values in any integer column.
    ranges = BaseDatabaseOperations.integer_field_ranges
    return ranges.get(model_field.get_internal_type())


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
