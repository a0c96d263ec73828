from pathlib import Path

from integrations.management.importing import ImportCommand
from integrations.services import ImportReport, import_ravenstack


class Command(ImportCommand):
    help = (
        "Import the RavenStack SaaS dataset (accounts, subscriptions, usage, "
        "tickets, churn events) and make one contact per seat."
    )
    folder_help = "Folder that contains the ravenstack_*.csv files."

    def run_import(self, folder: Path, progress: bool) -> list[ImportReport]:
        return [import_ravenstack(folder, progress)]
