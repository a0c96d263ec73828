from pathlib import Path

from integrations.management.importing import ImportCommand
from integrations.services import ImportReport, import_oulad


class Command(ImportCommand):
    help = (
        "Import the OULAD 2013 presentations as courses, enrollments and lesson "
        "progress. Run import_ravenstack first: learners are enrolled as its contacts."
    )
    folder_help = "Folder that contains the *_2013.csv files of OULAD."

    def run_import(self, folder: Path, progress: bool) -> list[ImportReport]:
        return [import_oulad(folder, progress)]
