"""Reports of CSV imports and dry runs: counts per target, rejected and changed rows."""

import json
from dataclasses import asdict, dataclass, field
from typing import Any

# Rejected rows and changed rows kept in the report; the counts stay exact.
MAX_REJECTIONS = 1000
CHANGE_SAMPLES_PER_TARGET = 5


@dataclass(frozen=True)
class Rejection:
    """One row that was not imported, with the reason and what to do."""

    file: str
    line: int
    column: str
    value: str
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}"
        if self.column:
            where += f": column {self.column} = {self.value!r}"
        return f"{where}: {self.reason}"


@dataclass(frozen=True)
class Change:
    """A row that would be updated, with each changed field's old and new value."""

    key: str
    fields: dict[str, tuple[str, str]]


@dataclass
class TargetReport:
    target: str
    files: list[str] = field(default_factory=list)
    rows_read: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    # Rows left out by only_if_present, which are not errors.
    filtered: int = 0
    changes: list[Change] = field(default_factory=list)


@dataclass
class CsvImportReport:
    mapping: str
    dry_run: bool
    on_error: str
    targets: list[TargetReport] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)
    rejected_total: int = 0
    committed: bool = False
    seconds: float = 0.0

    def reject(self, target: TargetReport, rejection: Rejection) -> None:
        target.rejected += 1
        self.rejected_total += 1
        if len(self.rejections) < MAX_REJECTIONS:
            self.rejections.append(rejection)

    @property
    def rows_read(self) -> int:
        return sum(target.rows_read for target in self.targets)

    @property
    def rows_per_second(self) -> float:
        return self.rows_read / self.seconds if self.seconds else 0.0

    def outcome(self) -> str:
        if self.dry_run:
            return "Dry run: nothing was written."
        if self.committed:
            return "Imported."
        return (
            f"Nothing was written because {self.rejected_total} rows were rejected. "
            "Fix them and import again, or pass --skip-invalid to import the "
            "valid rows and report the others."
        )

    def as_dict(self) -> dict[str, Any]:
        document = asdict(self)
        document["rejections_left_out"] = self.rejected_total - len(self.rejections)
        document["outcome"] = self.outcome()
        return document

    def to_json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, default=str)

    def format(self) -> str:
        """Return the report as text, one line per target, then the details."""
        lines = [f"CSV import with mapping {self.mapping}"]
        for target in self.targets:
            lines.append(
                f"  {target.target} from {', '.join(target.files)}: "
                f"{target.rows_read} rows read, {target.created} created, "
                f"{target.updated} updated, {target.unchanged} unchanged, "
                f"{target.rejected} rejected, {target.filtered} left out by "
                "only_if_present"
            )
        lines.append(
            f"{self.rows_read} rows in {self.seconds:.1f} s "
            f"({self.rows_per_second:.0f} rows/s)"
        )
        for target in self.targets:
            for change in target.changes:
                lines.append(f"Changes to {target.target} {change.key}:")
                lines.extend(
                    f"  {name}: {old!r} -> {new!r}"
                    for name, (old, new) in change.fields.items()
                )
        if self.rejections:
            lines.append("Rejected rows:")
            lines.extend(f"  {rejection}" for rejection in self.rejections)
            left_out = self.rejected_total - len(self.rejections)
            if left_out:
                lines.append(f"  ... and {left_out} more")
        lines.append(self.outcome())
        return "\n".join(lines)
