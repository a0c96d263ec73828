"""Import reports: rows read, imported and skipped per file, and the reasons."""

from dataclasses import dataclass, field
from pathlib import Path


class ImportDataError(Exception):
    """A folder, file or header that makes the whole import impossible.

    The message names the path and what to do; management commands turn it
    into a CommandError.
    """


@dataclass(frozen=True)
class RowIssue:
    """One row of a CSV file; `line` counts the header as line 1."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class FileCounts:
    """Rows of one file. Every row read is either imported or skipped."""

    read: int = 0
    imported: int = 0
    skipped: int = 0


@dataclass
class ImportReport:
    """The outcome of importing one dataset folder."""

    source: str
    folder: Path
    files: dict[str, FileCounts] = field(default_factory=dict)
    # Rows that were not imported, with the reason.
    errors: list[RowIssue] = field(default_factory=list)
    # Rows that were imported but lack something, such as a churn date.
    warnings: list[RowIssue] = field(default_factory=list)
    # Rows written that no file contains directly, such as generated contacts.
    derived: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    def counts(self, file: str) -> FileCounts:
        return self.files.setdefault(file, FileCounts())

    def skip(self, file: str, line: int, reason: str) -> None:
        """Record a row that is not imported."""
        self.errors.append(RowIssue(file, line, reason))
        self.counts(file).skipped += 1

    def warn(self, file: str, line: int, reason: str) -> None:
        """Record a caveat about a row that is imported."""
        self.warnings.append(RowIssue(file, line, reason))

    def finish_file(self, file: str) -> None:
        """Count every row of the file that was not skipped as imported."""
        counts = self.counts(file)
        counts.imported = counts.read - counts.skipped

    def format(self) -> str:
        """Render the summary that the import commands print."""
        width = max([len(name) for name in self.files] + [4])
        lines = [
            f"{self.source} import from {self.folder} ({self.seconds:.1f} s)",
            f"  {'file':<{width}}  {'read':>7}  {'imported':>8}  {'skipped':>7}",
        ]
        for name, counts in self.files.items():
            lines.append(
                f"  {name:<{width}}  {counts.read:>7}  {counts.imported:>8}"
                f"  {counts.skipped:>7}"
            )
        if self.derived:
            written = ", ".join(
                f"{count} {what}" for what, count in self.derived.items()
            )
            lines.append(f"  Also written: {written}")
        lines.append(f"Errors ({rows(len(self.errors))} skipped):")
        lines.extend(f"  {issue}" for issue in self.in_file_order(self.errors))
        if self.warnings:
            lines.append(
                f"Warnings ({rows(len(self.warnings))} imported with a caveat):"
            )
            lines.extend(f"  {issue}" for issue in self.in_file_order(self.warnings))
        return "\n".join(lines)

    def in_file_order(self, issues: list[RowIssue]) -> list[RowIssue]:
        """Order issues by file, in the order the files were read, then by line."""
        position = {name: index for index, name in enumerate(self.files)}
        return sorted(
            issues,
            key=lambda issue: (position.get(issue.file, len(position)), issue.line),
        )


def rows(count: int) -> str:
    return f"{count} row" if count == 1 else f"{count} rows"
