"""Set up the demo: data, program, replayed history and an admin user."""

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations import demo
from integrations.services import ImportDataError


class Command(BaseCommand):
    help = (
        "Import data (a folder with ravenstack/ and oulad_2013/, or a generated "
        "sample), seed the demo lifecycle program, replay health scores, stages "
        "and trigger sweeps over the data's history, and create an admin user."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data",
            type=Path,
            help="Folder holding ravenstack/ and oulad_2013/; a sample is generated "
            "when omitted.",
        )
        parser.add_argument(
            "--step-days",
            type=int,
            default=1,
            help="Days between replayed evaluations (default 1).",
        )
        parser.add_argument(
            "--no-replay",
            action="store_true",
            help="Skip replaying the data's history.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._import(options["data"])

        programs = demo.seed_program()
        self.stdout.write(f"Demo program: {programs} triggers active.")

        if not options["no_replay"]:
            self._replay(options["step_days"])

        password = demo.reset_admin_password()
        self.stdout.write(self.style.SUCCESS("\nThe demo is ready."))
        self.stdout.write(f"  Admin:      {settings.SITE_URL}/admin/")
        self.stdout.write(f"  Username:   {demo.ADMIN_USERNAME}")
        self.stdout.write(f"  Password:   {password}")
        self.stdout.write(f"  Dashboard:  {settings.SITE_URL}/dashboard/")
        self.stdout.write(f"  Emails:     {settings.EMAIL_FILE_PATH}")
        link = demo.sample_learner_link()
        if link:
            self.stdout.write(f"  A learner's sign-in link: {link}")

    def _import(self, data: Path | None) -> None:
        if data is not None and not data.is_dir():
            raise CommandError(
                f"DATA={data} is not a folder; pass the folder that holds "
                "ravenstack/ and oulad_2013/, or leave DATA unset for a sample."
            )
        try:
            reports = demo.import_demo_data(data, Path(settings.VAR_DIR))
        except ImportDataError as exc:
            raise CommandError(str(exc)) from exc
        for report in reports:
            self.stdout.write(report.format())

    def _replay(self, step_days: int) -> None:
        bounds = demo.history_bounds()
        if bounds is None:
            self.stdout.write("No accounts or usage to replay.")
            return
        start, end = bounds
        self.stdout.write(f"Replaying {start} to {end}, every {step_days} day(s).")
        try:
            report = demo.replay_history(start, end, step_days, progress=True)
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        sweeps = report.sweeps
        self.stdout.write(
            f"Replayed {report.steps} days: {report.health_scores} health scores, "
            f"{report.stage_changes} stage changes, {sweeps.fired} firings, "
            f"{sweeps.enrollments} enrollments, {sweeps.emails_queued} emails queued."
        )
