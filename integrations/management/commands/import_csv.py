from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.csv_import import CsvImportError, load_mapping, run_import


class Command(BaseCommand):
    help = (
        "Import CSV files into accounts, contacts, usage events, tickets and "
        "survey responses as a TOML column mapping describes (docs/csv-import.md)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--mapping", type=Path, required=True, help="The TOML mapping file."
        )
        parser.add_argument(
            "--data-dir",
            type=Path,
            default=Path("."),
            help="Folder that contains the CSV files the mapping names (default: the "
            "current folder).",
        )
        parser.add_argument(
            "--dry-run",
            action="store_true",
            help="Report what would be created, updated, unchanged and rejected, "
            "and write nothing.",
        )
        errors = parser.add_mutually_exclusive_group()
        errors.add_argument(
            "--skip-invalid",
            dest="on_error",
            action="store_const",
            const="skip",
            help="Import the valid rows and report the rejected ones.",
        )
        errors.add_argument(
            "--on-error",
            dest="on_error",
            choices=["abort", "skip"],
            help="abort: write nothing if any row is rejected; skip: write the "
            "valid rows. Default: the mapping's on_error, else abort.",
        )
        parser.add_argument(
            "--json", action="store_true", help="Print the report as JSON."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        on_error = options["on_error"]
        # call_command(skip_invalid=True) sets the shared destination to True
        # instead of the flag's constant.
        if on_error is True:
            on_error = "skip"
        try:
            mapping = load_mapping(options["mapping"])
            report = run_import(
                mapping,
                options["data_dir"],
                dry_run=options["dry_run"],
                on_error=on_error,
            )
        except CsvImportError as error:
            raise CommandError(str(error)) from error

        self.stdout.write(report.to_json() if options["json"] else report.format())
        if not report.dry_run and not report.committed:
            # A non-zero exit status lets scripts see that nothing was imported.
            raise CommandError(
                f"{report.rejected_total} rows were rejected, so nothing was written"
            )
