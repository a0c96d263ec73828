from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from integrations.services import generate_sample


class Command(BaseCommand):
    help = (
        "Write a small made-up dataset in the RavenStack and OULAD formats, with a "
        "few bad rows, for demos without the public datasets."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "folder",
            type=Path,
            help="Folder to write ravenstack/ and oulad_2013/ into.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        folder = generate_sample(options["folder"])
        self.stdout.write(
            f"Wrote sample files to {folder / 'ravenstack'} and "
            f"{folder / 'oulad_2013'}. Import them with: "
            f"python manage.py import_data {folder}"
        )
