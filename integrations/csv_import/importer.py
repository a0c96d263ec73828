"""Running a CSV mapping: read, convert, compare with the database, write.

The whole run is one transaction. Targets are imported in the order the
mapping lists them, so a later target can refer to rows an earlier one
wrote. Each file is read a row at a time and written in batches, so a large
file is never held in memory whole. A row that fails is rejected with its
file, line, column, value and reason. With on_error = "abort" (the default)
any rejected row rolls the whole run back, so nothing is half-written; with
"skip" the valid rows are written and the others reported. A dry run does
all of the same work, writes inside the transaction so that later targets
see earlier ones, and always rolls back.
"""

import contextlib
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from django.db import DatabaseError, models, transaction

from integrations.bulk import BATCH_SIZE, upsert
from integrations.csv_import.errors import CellError, CsvImportError
from integrations.csv_import.fields import OMIT, FieldSpec
from integrations.csv_import.mapping import (
    MAX_REPEAT,
    ON_ERROR_CHOICES,
    Mapping,
    TargetSpec,
)
from integrations.csv_import.reader import (
    SourceRow,
    find_files,
    read_header,
    read_rows,
    require_columns,
)
from integrations.csv_import.report import (
    CHANGE_SAMPLES_PER_TARGET,
    Change,
    CsvImportReport,
    Rejection,
    TargetReport,
)
from integrations.csv_import.targets import PROPERTIES
from integrations.csv_import.values import convert

logger = logging.getLogger(__name__)


@dataclass
class PendingRow:
    file: str
    line: int
    key: str
    values: dict[str, Any]
    properties: dict[str, Any]


@dataclass
class TargetRun:
    """The state of one target while its files are read."""

    spec: TargetSpec
    report: TargetReport
    # The file and line of the first row of each key, to name it in duplicates.
    first_lines: dict[str, str] = field(default_factory=dict)
    # Values of unique fields other than the key, with the key that has them.
    unique_values: dict[str, dict[Any, str]] = field(default_factory=dict)
    pending: list[PendingRow] = field(default_factory=list)
    # Keys of this model's rejected rows, shared by the targets that write it.
    rejected: set[str] = field(default_factory=set)


def run_import(
    mapping: Mapping,
    data_dir: Path,
    *,
    dry_run: bool = False,
    on_error: str | None = None,
    data_label: str | None = None,
) -> CsvImportReport:
    """Import the CSV files in data_dir as mapping describes; return the report.

    data_label names data_dir in errors in place of its path.

    Raises CsvImportError, with nothing written, for a missing file or
    column, a file that is not UTF-8, an unreadable quote, or a batch the
    database rejects.
    """
    started = time.monotonic()
    on_error = on_error or mapping.on_error
    if on_error not in ON_ERROR_CHOICES:
        raise CsvImportError(
            f"on_error {on_error!r} is invalid; use "
            + " or ".join(repr(choice) for choice in ON_ERROR_CHOICES)
        )
    report = CsvImportReport(mapping.name, dry_run, on_error)
    files = _check_files(mapping, Path(data_dir), data_label)
    logger.info(
        "CSV import with mapping %s from %s started (dry run: %s, on error: %s)",
        mapping.path,
        data_dir,
        dry_run,
        on_error,
    )

    rejected_keys: dict[type[models.Model], set[str]] = {}
    with transaction.atomic():
        for spec in mapping.targets:
            target_report = TargetReport(
                spec.target.name, [path.name for path in files[spec.index]]
            )
            report.targets.append(target_report)
            rejected = rejected_keys.setdefault(spec.target.model, set())
            run = TargetRun(spec, target_report, rejected=rejected)
            _import_target(run, files[spec.index], report, rejected_keys)
        report.committed = not dry_run and (
            on_error == "skip" or report.rejected_total == 0
        )
        if not report.committed:
            transaction.set_rollback(True)

    # Rows are rejected when they are read and, for references and unique
    # values, when their batch is written, so the list is sorted afterwards.
    report.rejections.sort(key=lambda rejection: (rejection.file, rejection.line))
    report.seconds = time.monotonic() - started
    logger.info(
        "CSV import with mapping %s finished in %d ms: %d rows read, %d rejected, %s",
        mapping.path,
        report.seconds * 1000,
        report.rows_read,
        report.rejected_total,
        "committed" if report.committed else "rolled back",
    )
    return report


def _check_files(
    mapping: Mapping, data_dir: Path, data_label: str | None
) -> dict[int, list[Path]]:
    # Every header is checked before the first write, so a missing column in
    # the last file stops the run before the first file is written.
    files = {}
    for spec in mapping.targets:
        files[spec.index] = find_files(data_dir, spec.file_pattern, data_label)
        for path in files[spec.index]:
            require_columns(path, read_header(path), spec.columns())
    return files


def _import_target(
    run: TargetRun,
    paths: list[Path],
    report: CsvImportReport,
    rejected_keys: dict[type[models.Model], set[str]],
) -> None:
    for path in paths:
        for source in read_rows(path):
            run.report.rows_read += 1
            _take_row(run, path.name, source, report)
            if len(run.pending) >= BATCH_SIZE:
                _write_batch(run, report, rejected_keys)
    if run.pending:
        _write_batch(run, report, rejected_keys)


def _take_row(
    run: TargetRun,
    file: str,
    source: SourceRow,
    report: CsvImportReport,
) -> None:
    """Convert one CSV row into pending rows, or reject it."""
    spec = run.spec
    if source.values is None:
        report.reject(run.report, Rejection(file, source.line, "", "", source.problem))
        return
    if any(not source.values[column].strip() for column in spec.only_if_present):
        run.report.filtered += 1
        return

    try:
        rows = [
            _convert_row(spec, file, source, variables)
            for variables in _repeats(spec, source.values)
        ]
    except CellError as error:
        _reject_cell(run, file, source, error, report)
        return

    keys = [row.key for row in rows]
    duplicate = _duplicate_key(run, keys)
    if duplicate is not None:
        key, reason = duplicate
        report.reject(
            run.report,
            Rejection(file, source.line, spec.key_field.source_label(), key, reason),
        )
        return

    for key in keys:
        run.first_lines[key] = f"{file}:{source.line}"
    run.pending.extend(rows)


def _duplicate_key(run: TargetRun, keys: list[str]) -> tuple[str, str] | None:
    """Return a key of one source row that is not new, with the reason."""
    key_name = run.spec.key
    seen: set[str] = set()
    for key in keys:
        if key in seen:
            # A repeat whose key template ignores the number makes one key twice.
            return key, (
                f"{key_name} {key} is made twice from this row; put the repeat "
                "variable into the key's template"
            )
        seen.add(key)
        first = run.first_lines.get(key)
        if first is not None and key in run.rejected:
            return key, (
                f"{key_name} {key} appears twice; {first} has the same key and was "
                "rejected, so this row is rejected too; fix the first row and "
                "remove this one"
            )
        if first is not None:
            return key, (
                f"{key_name} {key} appears twice; {first} has the same key and "
                "comes first, so this row is not imported; remove or correct it"
            )
    return None


def _reject_cell(
    run: TargetRun,
    file: str,
    source: SourceRow,
    error: CellError,
    report: CsvImportReport,
) -> None:
    report.reject(
        run.report,
        Rejection(file, source.line, error.column, error.value, error.reason),
    )
    # Rows of later targets that refer to this row then get a reason that
    # names the rejection instead of a plain "not found".
    assert source.values is not None
    with contextlib.suppress(CellError, KeyError):
        run.rejected.add(str(convert(run.spec.key_field, source.values, {})))


def _repeats(spec: TargetSpec, values: dict[str, str]) -> Iterator[dict[str, Any]]:
    if spec.repeat is None:
        yield {}
        return
    column = spec.repeat.column
    text = values[column].strip()
    # str.isdigit() accepts digits such as "\u0663" and "\u00b2" too.
    if not text.isascii() or not text.isdigit() or int(text) > MAX_REPEAT:
        raise CellError(
            column,
            text,
            f"repeat needs a whole number from 0 to {MAX_REPEAT} in {column}; fix "
            "the value",
        )
    for number in range(1, int(text) + 1):
        yield {spec.repeat.variable: number}


def _convert_row(
    spec: TargetSpec, file: str, source: SourceRow, variables: dict[str, Any]
) -> PendingRow:
    assert source.values is not None
    values: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    for field_spec in spec.fields:
        value = convert(field_spec, source.values, variables)
        if field_spec.is_property:
            if value is not OMIT:
                properties[field_spec.name.removeprefix(f"{PROPERTIES}.")] = value
        else:
            values[field_spec.attname] = value
    key = str(values[spec.key_field.attname])
    return PendingRow(file, source.line, key, values, properties)


def _write_batch(
    run: TargetRun,
    report: CsvImportReport,
    rejected_keys: dict[type[models.Model], set[str]],
) -> None:
    """Resolve references, check rows, compare with stored rows and write changes."""
    rows, run.pending = run.pending, []
    rows = _resolve_refs(run, rows, report, rejected_keys)
    rows = _check_rows(run, rows, report)
    rows = _check_unique(run, rows, report)
    if not rows:
        return

    changed = _compare(run, rows)
    if not changed:
        return
    model = run.spec.target.model
    objects = [model(**row.values) for row in changed]
    try:
        with transaction.atomic():
            upsert(
                model,
                objects,
                unique_fields=[run.spec.key],
                update_fields=_update_fields(run.spec),
            )
    except DatabaseError as error:
        # The database's first line states the problem. Later lines can quote
        # the SQL statement, which only the log gets.
        logger.warning(
            "Writing %s rows from %s failed: %s",
            run.spec.target.label,
            changed[0].file,
            error,
        )
        summary = str(error).strip().splitlines()[0] if str(error).strip() else ""
        raise CsvImportError(
            f"Writing {run.spec.target.label} rows from {changed[0].file} lines "
            f"{changed[0].line}-{changed[-1].line} failed: "
            f"{summary or type(error).__name__}. Nothing was written; fix the rows "
            "and import again"
        ) from error


def _update_fields(spec: TargetSpec) -> list[str]:
    names = {
        field_spec.name for field_spec in spec.fields if not field_spec.is_property
    }
    if any(field_spec.is_property for field_spec in spec.fields):
        names.add(PROPERTIES)
    names.discard(spec.key)
    if "updated_at" in {
        model_field.name for model_field in spec.target.model._meta.fields
    }:
        names.add("updated_at")
    return sorted(names)


def _ref_fields(spec: TargetSpec) -> list[FieldSpec]:
    return [field_spec for field_spec in spec.fields if field_spec.type == "ref"]


def _resolve_refs(
    run: TargetRun,
    rows: list[PendingRow],
    report: CsvImportReport,
    rejected_keys: dict[type[models.Model], set[str]],
) -> list[PendingRow]:
    for field_spec in _ref_fields(run.spec):
        model = field_spec.ref_model
        assert model is not None
        texts = {row.values[field_spec.attname] for row in rows} - {None}
        found = dict(
            model._default_manager.filter(
                **{f"{field_spec.match}__in": texts}
            ).values_list(field_spec.match, field_spec.take)
        )
        kept = []
        for row in rows:
            text = row.values[field_spec.attname]
            if text is None:
                kept.append(row)
            elif text in found:
                row.values[field_spec.attname] = found[text]
                kept.append(row)
            else:
                reason = _missing_ref_reason(
                    field_spec, model, text, rejected_keys.get(model, set())
                )
                _reject_row(run, row, field_spec.source_label(), text, reason, report)
        rows = kept
    return rows


def _missing_ref_reason(
    field_spec: FieldSpec, model: type[models.Model], text: str, rejected: set[str]
) -> str:
    name = model._meta.verbose_name
    if text in rejected:
        return (
            f"{name} {text} was rejected earlier in this import, so this row is "
            f"rejected too; fix that {name}'s row"
        )
    return (
        f"no {name} has {field_spec.match} {text}; import the {name} first (list "
        "its target earlier in the mapping) or fix the value"
    )


def _reject_row(
    run: TargetRun,
    row: PendingRow,
    column: str,
    value: str,
    reason: str,
    report: CsvImportReport,
) -> None:
    report.reject(run.report, Rejection(row.file, row.line, column, value, reason))
    run.rejected.add(row.key)


def _check_rows(
    run: TargetRun, rows: list[PendingRow], report: CsvImportReport
) -> list[PendingRow]:
    kept = []
    for row in rows:
        reason = next(
            (r for check in run.spec.target.checks if (r := check(row.values))), None
        )
        if reason is None:
            kept.append(row)
        else:
            _reject_row(run, row, "", "", f"{reason}; fix the values", report)
    return kept


def _check_unique(
    run: TargetRun, rows: list[PendingRow], report: CsvImportReport
) -> list[PendingRow]:
    """Reject rows whose unique value, such as an email, another key already has."""
    spec = run.spec
    model = spec.target.model
    for field_spec in spec.fields:
        model_field = spec.target.writable_fields().get(field_spec.name)
        if field_spec.name == spec.key or model_field is None or not model_field.unique:
            continue
        attname = field_spec.attname
        owners = run.unique_values.setdefault(attname, {})
        values = {row.values[attname] for row in rows} - {None, ""}
        stored = dict(
            model._default_manager.filter(**{f"{attname}__in": values}).values_list(
                attname, spec.key
            )
        )
        kept = []
        for row in rows:
            value = row.values[attname]
            owner = owners.get(value) or stored.get(value)
            if value in (None, "") or owner in (None, row.key):
                owners[value] = row.key
                kept.append(row)
                continue
            _reject_row(
                run,
                row,
                field_spec.source_label(),
                str(value),
                f"{field_spec.name} {value} belongs to the {spec.target.label} with "
                f"{spec.key} {owner} already; each {spec.target.label} needs its own",
                report,
            )
        rows = kept
    return rows


def _compare(run: TargetRun, rows: list[PendingRow]) -> list[PendingRow]:
    """Count created, updated and unchanged rows; return the rows to write."""
    spec = run.spec
    attnames = sorted({name for row in rows for name in row.values})
    has_properties = any(field_spec.is_property for field_spec in spec.fields)
    columns = [*attnames, PROPERTIES] if has_properties else attnames
    stored = {
        str(item[spec.key]): item
        for item in spec.target.model._default_manager.filter(
            **{f"{spec.key}__in": [row.key for row in rows]}
        ).values(*columns)
    }

    changed = []
    for row in rows:
        before = stored.get(row.key)
        if has_properties:
            stored_properties = before[PROPERTIES] if before else None
            row.values[PROPERTIES] = {**(stored_properties or {}), **row.properties}
        if before is None:
            run.report.created += 1
            changed.append(row)
            continue
        differences = {
            name: (str(before[name]), str(value))
            for name, value in row.values.items()
            if before[name] != value
        }
        if not differences:
            run.report.unchanged += 1
            continue
        run.report.updated += 1
        if len(run.report.changes) < CHANGE_SAMPLES_PER_TARGET:
            run.report.changes.append(Change(row.key, differences))
        changed.append(row)
    return changed
