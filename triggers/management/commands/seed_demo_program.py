"""Create the demo triggers, their courses and email templates (idempotent)."""

from typing import Any

from django.core.management.base import BaseCommand

from triggers.services import seed_demo_program


class Command(BaseCommand):
    help = (
        "Create the demo program: six triggers with their courses and email "
        "templates. Existing rows with the same slugs are left unchanged."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        triggers = seed_demo_program()
        for trigger in triggers:
            state = "active" if trigger.is_active else "inactive"
            self.stdout.write(f"{trigger.slug}: {trigger.name} ({state})")
        self.stdout.write(f"Demo program ready: {len(triggers)} triggers.")
