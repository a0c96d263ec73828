from pathlib import Path

from integrations.management.importing import ImportCommand
from integrations.services import ImportReport, import_all


class Command(ImportCommand):
    help = "Import RavenStack and then OULAD from one folder."
    folder_help = "Folder that contains ravenstack/ and oulad_2013/."

    def run_import(self, folder: Path, progress: bool) -> list[ImportReport]:
        return import_all(folder, progress)
