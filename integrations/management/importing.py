"""The options and output that the import commands share."""

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations.services import ImportDataError, ImportReport


class ImportCommand(BaseCommand):
    """Run an importer on a folder and print its summary."""

    folder_help = "Folder that contains the dataset files."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("folder", type=Path, help=self.folder_help)
        parser.add_argument(
            "--no-progress",
            action="store_true",
            help="Do not show progress bars (they are off anyway when stderr "
            "is not a terminal).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        progress = not options["no_progress"] and sys.stderr.isatty()
        try:
            reports = self.run_import(options["folder"], progress)
        except ImportDataError as exc:
            raise CommandError(str(exc)) from exc
        for report in reports:
            self.stdout.write(report.format())

    def run_import(self, folder: Path, progress: bool) -> list[ImportReport]:
        raise NotImplementedError
