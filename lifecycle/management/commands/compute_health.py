"""Compute health scores now, with the weights configured in the admin."""

from datetime import date
from typing import Any

from django.core.management.base import BaseCommand, CommandError, CommandParser

from customers.health import InvalidHealthConfiguration
from customers.models import Account
from lifecycle.health import compute_health


class Command(BaseCommand):
    help = (
        "Compute the health score of every account (or of --account ones) for a "
        "day, with the configured weights. Recomputing a day replaces its scores."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--date",
            help=(
                "The day to score, as YYYY-MM-DD; absent for today in the site "
                "time zone."
            ),
        )
        parser.add_argument(
            "--account",
            action="append",
            default=[],
            metavar="EXTERNAL_ID",
            help="Score only this account, by its external id; repeat for more.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        on = _parse_day(options["date"])
        account_ids = _account_ids(options["account"]) if options["account"] else None
        try:
            run = compute_health(on, account_ids)
        except InvalidHealthConfiguration as exc:
            raise CommandError(f"{exc}. Fix the weight set in the admin.") from exc

        self.stdout.write(
            f"Scored {run.scored} accounts for {run.on.isoformat()} in "
            f"{run.elapsed_ms:.0f} ms; {run.unscored} left unscored for lack of data."
        )


def _parse_day(raw: str | None) -> date | None:
    if raw is None:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise CommandError(
            f"--date {raw!r} is invalid; give a date as YYYY-MM-DD"
        ) from None


def _account_ids(external_ids: list[str]) -> list[int]:
    found = dict(
        Account.objects.filter(external_id__in=external_ids).values_list(
            "external_id", "pk"
        )
    )
    missing = [external_id for external_id in external_ids if external_id not in found]
    if missing:
        raise CommandError(
            f"account {', '.join(missing)} not found; give external ids as the "
            "CRM sync stores them"
        )
    return list(found.values())
