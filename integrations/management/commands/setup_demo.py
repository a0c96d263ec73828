"""Set up the demo: data, program, replayed history and an admin user."""

from datetime import timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from integrations import demo
from integrations.services import ImportDataError
from metrics.facts import refresh_facts
from triggers.services import send_due_email

# Emails of firings in this many last days of the replayed history are sent.
DELIVER_DAYS = 7


class Command(BaseCommand):
    help = (
        "Import data (a folder with ravenstack/ and oulad_2013/, or a generated "
        "sample), seed the demo lifecycle program, replay health scores, stages "
        "and trigger sweeps over the data's history, send the emails of the last "
        "days, and create an admin user."
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
            "--stage-step-days",
            type=int,
            default=1,
            help="Days between lifecycle stage evaluations in the replay (default 1, "
            "every day). Larger values are faster, but criteria whose window is "
            "shorter than the step can be missed and stage dates fall on the steps.",
        )
        parser.add_argument(
            "--replay-days",
            type=int,
            help="Replay only the last N days of the data's history; all of it "
            "when omitted.",
        )
        parser.add_argument(
            "--deliver-days",
            type=int,
            default=DELIVER_DAYS,
            help=f"Send the emails of firings in the last N replayed days (default "
            f"{DELIVER_DAYS}). Older emails are written to the outbox as skipped "
            "and never sent; 0 sends none.",
        )
        parser.add_argument(
            "--no-replay",
            action="store_true",
            help="Skip replaying the data's history.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        self._check_days(options)
        self._import(options["data"])

        programs = demo.seed_program()
        self.stdout.write(f"Demo program: {programs} triggers active.")

        if not options["no_replay"]:
            self._replay(options)

        # In production the beat task refreshes the dashboard's facts every
        # ten minutes. The demo runs no beat, so it refreshes them once here.
        refresh = refresh_facts()
        self.stdout.write(f"Dashboard facts refreshed for {refresh.accounts} accounts.")

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

    def _check_days(self, options: dict[str, Any]) -> None:
        for name in ("step_days", "stage_step_days"):
            if options[name] < 1:
                option = "--" + name.replace("_", "-")
                raise CommandError(
                    f"{option} {options[name]} is invalid; give 1 or more."
                )
        if options["replay_days"] is not None and options["replay_days"] < 1:
            raise CommandError(
                f"--replay-days {options['replay_days']} is invalid; give 1 or more, "
                "or leave it out to replay the whole history."
            )
        if options["deliver_days"] < 0:
            raise CommandError(
                f"--deliver-days {options['deliver_days']} is invalid; give 0 or more."
            )

    def _import(self, data: Path | None) -> None:
        if data is not None and not data.is_dir():
            raise CommandError(
                f"--data {data} is not a folder; pass the folder that holds "
                "ravenstack/ and oulad_2013/, or leave DATA unset for a sample."
            )
        try:
            reports = demo.import_demo_data(data, Path(settings.VAR_DIR))
        except ImportDataError as exc:
            raise CommandError(str(exc)) from exc
        for report in reports:
            self.stdout.write(report.format())

    def _replay(self, options: dict[str, Any]) -> None:
        step_days = options["step_days"]
        replay_days = options["replay_days"]
        deliver_days = options["deliver_days"]
        bounds = demo.history_bounds()
        if bounds is None:
            self.stdout.write("No accounts or usage to replay.")
            return
        start, end = bounds
        if replay_days is not None:
            start = max(start, end - timedelta(days=replay_days - 1))
        # The sweeps of the last deliver_days days are at or after this instant.
        deliver_after = demo.step_instant(end - timedelta(days=deliver_days - 1))
        self.stdout.write(
            f"Replaying {start} to {end}, every {step_days} day(s); stages every "
            f"{options['stage_step_days']} day(s)."
        )
        report = demo.replay_history(
            start,
            end,
            step_days,
            progress=True,
            deliver_after=deliver_after,
            stage_step_days=options["stage_step_days"],
        )

        sweeps = report.sweeps
        self.stdout.write(
            f"Replayed {report.steps} steps: {report.health_scores} health scores, "
            f"{report.stage_evaluations} stage evaluations with "
            f"{report.stage_changes} stage changes, {sweeps.fired} firings, "
            f"{sweeps.enrollments} enrollments."
        )
        if report.steps:
            self.stdout.write(
                "Time per step: "
                f"health scores {report.health_seconds / report.steps:.3f} s, "
                f"stages {report.stages_seconds / report.steps:.3f} s, "
                f"sweeps {report.sweep_seconds / report.steps:.3f} s."
            )
        sent = send_due_email()
        self.stdout.write(
            f"Sent {sent} emails of the last {deliver_days} days to "
            f"{settings.EMAIL_FILE_PATH}; {sweeps.emails_skipped} older emails are "
            "in the outbox as skipped."
        )
