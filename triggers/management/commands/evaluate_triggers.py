"""Run one sweep of the active triggers, or replay sweeps over a past period."""

from datetime import UTC, date, datetime, timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.utils import timezone

from triggers.evaluation import (
    EARLIEST_INSTANT,
    MAX_REPLAY_SWEEPS,
    replay_sweep_count,
)
from triggers.services import SweepReport, replay, run_sweep

DATETIME_FORMAT_HELP = (
    "an ISO 8601 date-time such as 2024-06-15T12:00:00+00:00 or 2024-06-15"
)


class Command(BaseCommand):
    help = (
        "Evaluate the active triggers once (as of now or --at), or replay daily "
        "sweeps over a past period, and print what fired."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--at",
            help=(
                "Evaluate as of this instant instead of now: "
                f"{DATETIME_FORMAT_HELP}. A value without a time zone is taken as UTC."
            ),
        )
        parser.add_argument(
            "--replay-from",
            help="First day of a replay, as YYYY-MM-DD; sweeps run at 00:00 UTC.",
        )
        parser.add_argument(
            "--replay-to", help="Last day of a replay, as YYYY-MM-DD, included."
        )
        parser.add_argument(
            "--step-days",
            type=int,
            default=1,
            help="Days between the sweeps of a replay (default 1).",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["replay_from"] or options["replay_to"]:
            report = self._replay(options)
        else:
            report = self._sweep(options["at"])
        self._print_report(report)
        if report.failures:
            raise CommandError(
                f"{len(report.failures)} trigger evaluations failed; "
                "see the errors above and the sweep in the admin."
            )

    def _sweep(self, at: str | None) -> SweepReport:
        as_of = self._parse_at(at) if at is not None else timezone.now()
        self.stdout.write(f"Evaluating active triggers as of {as_of.isoformat()}")
        return run_sweep(as_of)

    def _replay(self, options: dict[str, Any]) -> SweepReport:
        if options["at"]:
            raise CommandError(
                "--at cannot be combined with --replay-from/--replay-to."
            )
        if not (options["replay_from"] and options["replay_to"]):
            raise CommandError("A replay needs both --replay-from and --replay-to.")
        if options["step_days"] < 1:
            raise CommandError(
                f"--step-days {options['step_days']} is invalid; use 1 or more."
            )
        first = self._parse_day("--replay-from", options["replay_from"])
        last = self._parse_day("--replay-to", options["replay_to"])
        if last < first:
            raise CommandError(
                f"--replay-to {last} is before --replay-from {first}; swap them."
            )
        start = datetime(first.year, first.month, first.day, tzinfo=UTC)
        end = datetime(last.year, last.month, last.day, tzinfo=UTC)
        self._check_period(start, end, options["step_days"])
        self.stdout.write(
            f"Replaying sweeps from {start.isoformat()} to {end.isoformat()} "
            f"every {options['step_days']} day(s)"
        )
        return replay(
            start,
            end,
            step=timedelta(days=options["step_days"]),
            progress=options["verbosity"] >= 1,
        )

    def _parse_at(self, value: str) -> datetime:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise CommandError(
                f"--at {value!r} is not a valid date-time; use {DATETIME_FORMAT_HELP}."
            ) from None
        if timezone.is_naive(parsed):
            parsed = parsed.replace(tzinfo=UTC)
            self.stdout.write(
                f"--at {value!r} has no time zone; taking it as UTC "
                f"({parsed.isoformat()})."
            )
        # A sweep dated in the future would act now on what has not happened.
        if parsed > timezone.now():
            raise CommandError(
                f"--at {value!r} is in the future; sweeps evaluate the past or now. "
                "Leave --at out to evaluate as of now."
            )
        if parsed < EARLIEST_INSTANT:
            raise CommandError(
                f"--at {value!r} is before {EARLIEST_INSTANT.date().isoformat()}; "
                f"sweeps evaluate instants from {EARLIEST_INSTANT.isoformat()} on."
            )
        return parsed

    def _check_period(self, start: datetime, end: datetime, step_days: int) -> None:
        """Reject a replay that starts too early, ends in the future or is too long.

        Checked here, before any sweep runs, so a rejected replay writes
        nothing. replay() checks the same rules with ValueError.
        """
        if start < EARLIEST_INSTANT:
            raise CommandError(
                f"--replay-from {start.date().isoformat()} is before "
                f"{EARLIEST_INSTANT.date().isoformat()}; start the replay on "
                f"{EARLIEST_INSTANT.date().isoformat()} or later."
            )
        if end > timezone.now():
            raise CommandError(
                f"--replay-to {end.date().isoformat()} is in the future; a replay "
                "evaluates past days only, so end it today "
                f"({timezone.now().astimezone(UTC).date().isoformat()}) or earlier."
            )
        sweeps = replay_sweep_count(start, end, timedelta(days=step_days))
        if sweeps > MAX_REPLAY_SWEEPS:
            raise CommandError(
                f"A replay from {start.date().isoformat()} to "
                f"{end.date().isoformat()} every {step_days} day(s) plans "
                f"{sweeps:,} sweeps, more than the limit of {MAX_REPLAY_SWEEPS:,}; "
                "split the period into several replays of at most "
                f"{MAX_REPLAY_SWEEPS:,} sweeps each, or raise --step-days."
            )

    def _parse_day(self, option: str, value: str) -> date:
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise CommandError(
                f"{option} {value!r} is not a valid date; use YYYY-MM-DD, "
                "for example 2024-01-31."
            ) from None

    def _print_report(self, report: SweepReport) -> None:
        self.stdout.write(f"Sweeps run: {report.sweeps}")
        self.stdout.write(f"Triggers evaluated: {report.triggers_evaluated}")
        self.stdout.write(f"Subjects matched: {report.matched}")
        self.stdout.write(f"New firings: {report.fired}")
        self.stdout.write(f"New enrollments: {report.enrollments}")
        self.stdout.write(f"Emails queued: {report.emails_queued}")
        for slug, error in report.failures:
            self.stderr.write(f"Trigger {slug} failed: {error}")
