"""Import the RavenStack SaaS dataset into the customer record.

All five files are read and checked first, so a missing file or column, a
file that is not UTF-8 or an unclosed quote stops the import before anything
is written. Each file is then written in its own transaction: a crash
part-way through a file leaves none of its rows, while the files before it
stay imported. Every row is keyed by its source id, so
importing again updates rows in place instead of adding copies.
"""

import logging
import time
from collections import defaultdict
from datetime import date
from pathlib import Path

from django.db import transaction

from customers.models import (
    Account,
    ChurnEvent,
    Contact,
    Subscription,
    SupportTicket,
    SurveyKind,
    SurveyResponse,
    UsageEvent,
)
from integrations.bulk import progress_bar, upsert
from integrations.contacts import (
    contact_number,
    generate_contacts,
    stable_index,
    unique_domains,
)
from integrations.csvfiles import DatasetFiles, read_csv, require_folder
from integrations.ravenstack_rows import (
    ACCOUNTS,
    CHURN_EVENTS,
    COLUMNS,
    SUBSCRIPTIONS,
    TICKETS,
    USAGE,
    RavenStackRows,
    latest_subscriptions,
    parse_all,
)
from integrations.report import ImportReport

logger = logging.getLogger(__name__)

WHAT_TO_DO = (
    "Pass the folder that holds the ravenstack_*.csv files of the Kaggle dataset "
    '"SaaS Subscription & Churn Analytics" (see docs/data.md), or make a small '
    "sample with: python manage.py generate_sample FOLDER"
)


def import_ravenstack(folder: Path, progress: bool = False) -> ImportReport:
    """Import accounts, contacts, subscriptions, usage, tickets and churn events."""
    return write_ravenstack(read_ravenstack(folder), progress)


def read_ravenstack(folder: Path) -> DatasetFiles:
    """Read every RavenStack file; raise ImportDataError if one cannot be imported."""
    started = time.monotonic()
    folder = require_folder(Path(folder), COLUMNS, WHAT_TO_DO)
    report = ImportReport(source="RavenStack", folder=folder)
    logger.info("RavenStack import from %s started", folder)

    tables = {
        name: read_csv(folder / name, columns, report)
        for name, columns in COLUMNS.items()
    }
    report.seconds = time.monotonic() - started
    return DatasetFiles(report, tables)


def write_ravenstack(files: DatasetFiles, progress: bool = False) -> ImportReport:
    """Check the rows that read_ravenstack read and write the valid ones."""
    started = time.monotonic()
    report = files.report
    rows = parse_all(files.tables, report)
    set_account_terms(rows, report)

    write_accounts(rows, report, progress)
    write_subscriptions(rows, report, progress)
    write_usage(rows, report, progress)
    write_tickets(rows, report, progress)
    write_churn_events(rows, report, progress)

    report.seconds += time.monotonic() - started
    logger.info(
        "RavenStack import from %s finished in %d ms with %d rows skipped",
        report.folder,
        report.seconds * 1000,
        len(report.errors),
    )
    return report


def set_account_terms(rows: RavenStackRows, report: ImportReport) -> None:
    """Fill in money, renewal and churn dates, which other files hold.

    The latest subscription by start_date gives MRR and ARR. Its end_date is
    the renewal date; an open subscription renews a year after it started.
    An account flagged as churned takes the date of its latest churn event.
    """
    latest = latest_subscriptions(rows)
    last_churn: dict[str, date] = {}
    for item in rows.churn_events:
        churned_on = item.row.churned_on
        last_churn[item.parent] = max(
            churned_on, last_churn.get(item.parent, churned_on)
        )

    for account_id, parsed in rows.accounts.items():
        account = parsed.account
        subscription = latest.get(account_id)
        if subscription is not None:
            account.mrr = subscription.mrr
            account.arr = subscription.arr
            account.renewal_date = subscription.ended_on or add_year(
                subscription.started_on
            )
        account.churned_on = last_churn.get(account_id) if parsed.churn_flag else None
        if parsed.churn_flag and account.churned_on is None:
            report.warn(
                ACCOUNTS,
                parsed.line,
                f"churn_flag is TRUE but {CHURN_EVENTS} has no event for "
                f"{account_id}; churned_on is left blank",
            )


def add_year(day: date) -> date:
    """Return the same date a year later; February 29 becomes February 28."""
    try:
        return day.replace(year=day.year + 1)
    except ValueError:
        return day.replace(year=day.year + 1, day=28)


def write_accounts(rows: RavenStackRows, report: ImportReport, progress: bool) -> None:
    """Write the accounts and one generated contact per seat."""
    accounts = [parsed.account for parsed in rows.accounts.values()]
    with transaction.atomic(), progress_bar(ACCOUNTS, len(accounts), progress) as bar:
        upsert(
            Account,
            accounts,
            unique_fields=["external_id"],
            update_fields=[
                "name", "industry", "country", "plan", "seats", "mrr", "arr",
                "is_trial", "signup_date", "kickoff_date", "renewal_date",
                "churned_on", "updated_at",
            ],
            bar=bar,
        )  # fmt: skip
        contacts = build_contacts(rows, report)
        upsert(
            Contact,
            contacts,
            unique_fields=["external_id"],
            update_fields=[
                "account", "email", "first_name", "last_name", "role",
                "is_champion", "added_at", "updated_at",
            ],
        )  # fmt: skip
    report.finish_file(ACCOUNTS)
    report.derived["contacts"] = len(contacts)


def build_contacts(rows: RavenStackRows, report: ImportReport) -> list[Contact]:
    """Make one contact per seat of each account; see integrations.contacts."""
    account_pks = dict(Account.objects.values_list("external_id", "pk"))
    domains = unique_domains(
        [
            (account_id, parsed.account.name)
            for account_id, parsed in rows.accounts.items()
        ]
    )
    # An address that a contact from elsewhere already uses cannot be reused.
    email_owner = dict(Contact.objects.values_list("email", "external_id"))
    contacts = []
    for account_id, parsed in rows.accounts.items():
        account = parsed.account
        specs = generate_contacts(
            account_id, domains[account_id], account.seats, account.signup_date
        )
        for spec in specs:
            owner = email_owner.get(spec.email, spec.external_id)
            if owner != spec.external_id:
                report.warn(
                    ACCOUNTS,
                    parsed.line,
                    f"contact {spec.external_id} is not created because contact "
                    f"{owner} already has the address {spec.email}",
                )
                continue
            contacts.append(
                Contact(
                    account_id=account_pks[account_id],
                    external_id=spec.external_id,
                    email=spec.email,
                    first_name=spec.first_name,
                    last_name=spec.last_name,
                    role=spec.role,
                    is_champion=spec.is_champion,
                    added_at=spec.added_at,
                )
            )
    return contacts


def write_subscriptions(
    rows: RavenStackRows, report: ImportReport, progress: bool
) -> None:
    account_pks = dict(Account.objects.values_list("external_id", "pk"))
    subscriptions = []
    for item in rows.subscriptions.values():
        item.row.account_id = account_pks[item.parent]
        subscriptions.append(item.row)
    with (
        transaction.atomic(),
        progress_bar(SUBSCRIPTIONS, len(subscriptions), progress) as bar,
    ):
        upsert(
            Subscription,
            subscriptions,
            unique_fields=["external_id"],
            update_fields=[
                "account", "started_on", "ended_on", "plan", "seats", "mrr", "arr",
                "is_trial", "is_upgrade", "is_downgrade", "churned",
                "billing_frequency", "auto_renew",
            ],
            bar=bar,
        )  # fmt: skip
    report.finish_file(SUBSCRIPTIONS)


def contacts_by_account() -> dict[int, list[int]]:
    """Return each account's generated contacts in number order, by primary key.

    Contacts from other sources are left out, so usage and tickets spread
    over the same people on every import. So are contacts numbered above
    the account's current seats, which an earlier import with more seats
    made and which stay in the database.
    """
    accounts = {
        pk: (external_id, seats)
        for pk, external_id, seats in Account.objects.values_list(
            "pk", "external_id", "seats"
        )
    }
    numbered: dict[int, list[tuple[int, int]]] = defaultdict(list)
    for account_pk, external_id, contact_pk in Contact.objects.values_list(
        "account_id", "external_id", "pk"
    ):
        account_id, seats = accounts[account_pk]
        number = contact_number(account_id, external_id)
        if number is not None and number <= seats:
            numbered[account_pk].append((number, contact_pk))
    return {
        account: [pk for _, pk in sorted(pairs)] for account, pairs in numbered.items()
    }


def pick_contact(contacts: list[int] | None, key: str) -> int | None:
    """Pick one of an account's contacts from a source id, the same on every run."""
    if not contacts:
        return None
    return contacts[stable_index(key, len(contacts))]


def write_usage(rows: RavenStackRows, report: ImportReport, progress: bool) -> None:
    """Write usage events; each belongs to its subscription's account."""
    subscription_accounts = dict(
        Subscription.objects.values_list("external_id", "account_id")
    )
    contacts = contacts_by_account()
    events = []
    for item in rows.usage:
        event = item.row
        event.account_id = subscription_accounts[item.parent]
        event.contact_id = pick_contact(
            contacts.get(event.account_id), str(event.external_id)
        )
        events.append(event)
    with transaction.atomic(), progress_bar(USAGE, len(events), progress) as bar:
        upsert(
            UsageEvent,
            events,
            unique_fields=["external_id"],
            update_fields=[
                "account", "contact", "name", "feature", "occurred_at", "quantity",
                "duration_seconds", "error_count", "properties",
            ],
            bar=bar,
        )  # fmt: skip
    report.finish_file(USAGE)


def write_tickets(rows: RavenStackRows, report: ImportReport, progress: bool) -> None:
    """Write tickets, and a CSAT survey response for each ticket with a score.

    A ticket is assigned to one of its account's contacts by its ticket id,
    so its CSAT response has a contact too.
    """
    account_pks = dict(Account.objects.values_list("external_id", "pk"))
    contacts = contacts_by_account()
    tickets = []
    responses = []
    for item in rows.tickets:
        ticket = item.row
        ticket.account_id = account_pks[item.parent]
        ticket.contact_id = pick_contact(
            contacts.get(ticket.account_id), ticket.external_id
        )
        tickets.append(ticket)
        if ticket.satisfaction_score is not None:
            responses.append(csat_response(ticket))
    unscored = [
        csat_id(ticket) for ticket in tickets if ticket.satisfaction_score is None
    ]

    with transaction.atomic(), progress_bar(TICKETS, len(tickets), progress) as bar:
        upsert(
            SupportTicket,
            tickets,
            unique_fields=["external_id"],
            update_fields=[
                "account", "contact", "opened_at", "closed_at", "priority",
                "first_response_minutes", "satisfaction_score", "escalated",
            ],
            bar=bar,
        )  # fmt: skip
        upsert(
            SurveyResponse,
            responses,
            unique_fields=["external_id"],
            update_fields=["account", "contact", "kind", "score", "submitted_at"],
        )
        # A score removed from the source removes the response made from it.
        SurveyResponse.objects.filter(external_id__in=unscored).delete()
    report.finish_file(TICKETS)
    report.derived["CSAT survey responses"] = len(responses)


def csat_id(ticket: SupportTicket) -> str:
    return f"{ticket.external_id}-csat"


def csat_response(ticket: SupportTicket) -> SurveyResponse:
    """Describe the CSAT response of a scored ticket, submitted when it closed."""
    assert ticket.satisfaction_score is not None
    return SurveyResponse(
        account_id=ticket.account_id,
        contact_id=ticket.contact_id,
        external_id=csat_id(ticket),
        kind=SurveyKind.CSAT,
        score=ticket.satisfaction_score,
        submitted_at=ticket.closed_at or ticket.opened_at,
    )


def write_churn_events(
    rows: RavenStackRows, report: ImportReport, progress: bool
) -> None:
    account_pks = dict(Account.objects.values_list("external_id", "pk"))
    events = []
    for item in rows.churn_events:
        item.row.account_id = account_pks[item.parent]
        events.append(item.row)
    with transaction.atomic(), progress_bar(CHURN_EVENTS, len(events), progress) as bar:
        upsert(
            ChurnEvent,
            events,
            unique_fields=["external_id"],
            update_fields=[
                "account", "churned_on", "reason_code", "refund_amount",
                "is_reactivation", "feedback",
            ],
            bar=bar,
        )  # fmt: skip
    report.finish_file(CHURN_EVENTS)
