"""Parsing and checking the RavenStack CSV files before anything is written.

Each parser turns valid rows into unsaved model rows and reports the others
with their file, line and reason. Foreign keys are filled in when writing,
once the referenced rows have primary keys.
"""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Generic, Protocol, TypeVar

from customers.models import (
    Account,
    ChurnEvent,
    Plan,
    Subscription,
    SupportTicket,
    TicketPriority,
    UsageEvent,
)
from integrations.csvfiles import CsvRow, Fields, RowError, at_utc
from integrations.report import ImportReport

ACCOUNTS = "ravenstack_accounts.csv"
SUBSCRIPTIONS = "ravenstack_subscriptions.csv"
USAGE = "ravenstack_feature_usage.csv"
TICKETS = "ravenstack_support_tickets.csv"
CHURN_EVENTS = "ravenstack_churn_events.csv"

# The columns the importer reads from each file; others are ignored.
COLUMNS = {
    ACCOUNTS: (
        "account_id", "account_name", "industry", "country", "signup_date",
        "plan_tier", "seats", "is_trial", "churn_flag",
    ),
    SUBSCRIPTIONS: (
        "subscription_id", "account_id", "start_date", "end_date", "plan_tier",
        "seats", "mrr_amount", "arr_amount", "is_trial", "upgrade_flag",
        "downgrade_flag", "churn_flag", "billing_frequency", "auto_renew_flag",
    ),
    USAGE: (
        "usage_id", "subscription_id", "usage_date", "feature_name", "usage_count",
        "usage_duration_secs", "error_count", "is_beta_feature",
    ),
    TICKETS: (
        "ticket_id", "account_id", "submitted_at", "closed_at", "priority",
        "first_response_time_minutes", "satisfaction_score", "escalation_flag",
    ),
    CHURN_EVENTS: (
        "churn_event_id", "account_id", "churn_date", "reason_code",
        "refund_amount_usd", "is_reactivation", "feedback_text",
    ),
}  # fmt: skip

# Usage rows have a date only; noon UTC keeps them on that date in most time zones.
USAGE_HOUR_UTC = 12

RowModel = TypeVar("RowModel")


@dataclass
class Parsed(Generic[RowModel]):
    line: int
    row: RowModel
    # The external id of the account or subscription the row belongs to.
    parent: str = ""


@dataclass
class ParsedAccount:
    line: int
    account: Account
    churn_flag: bool


@dataclass
class RavenStackRows:
    accounts: dict[str, ParsedAccount] = field(default_factory=dict)
    subscriptions: dict[str, Parsed[Subscription]] = field(default_factory=dict)
    usage: list[Parsed[UsageEvent]] = field(default_factory=list)
    tickets: list[Parsed[SupportTicket]] = field(default_factory=list)
    churn_events: list[Parsed[ChurnEvent]] = field(default_factory=list)


def parse_all(tables: dict[str, list[CsvRow]], report: ImportReport) -> RavenStackRows:
    """Check every file; a row that references a skipped row is skipped too."""
    parsed = RavenStackRows()
    parsed.accounts = {
        item.account.external_id: item
        for item in keep_first(
            parse_rows(ACCOUNTS, tables[ACCOUNTS], report, parse_account),
            lambda item: item.account.external_id,
            ACCOUNTS,
            "account_id",
            report,
        )
    }
    accounts = set(parsed.accounts)
    subscriptions = parse_rows(
        SUBSCRIPTIONS, tables[SUBSCRIPTIONS], report,
        lambda fields: parse_subscription(fields, accounts),
    )  # fmt: skip
    parsed.subscriptions = {
        item.row.external_id: item
        for item in keep_first(
            subscriptions, external_id, SUBSCRIPTIONS, "subscription_id", report
        )
    }
    known_subscriptions = set(parsed.subscriptions)
    parsed.usage = keep_first(
        parse_rows(USAGE, tables[USAGE], report,
                   lambda fields: parse_usage(fields, known_subscriptions)),
        external_id, USAGE, "usage_id", report,
    )  # fmt: skip
    parsed.tickets = keep_first(
        parse_rows(TICKETS, tables[TICKETS], report,
                   lambda fields: parse_ticket(fields, accounts)),
        external_id, TICKETS, "ticket_id", report,
    )  # fmt: skip
    parsed.churn_events = keep_first(
        parse_rows(CHURN_EVENTS, tables[CHURN_EVENTS], report,
                   lambda fields: parse_churn_event(fields, accounts)),
        external_id, CHURN_EVENTS, "churn_event_id", report,
    )  # fmt: skip
    return parsed


class HasLine(Protocol):
    line: int


Item = TypeVar("Item", bound=HasLine)


def parse_rows(
    file: str,
    rows: list[CsvRow],
    report: ImportReport,
    parse: Callable[[Fields], Item],
) -> list[Item]:
    """Parse each row, reporting the rows that raise RowError."""
    parsed = []
    for row in rows:
        try:
            item = parse(Fields(row.values))
        except RowError as exc:
            report.skip(file, row.line, str(exc))
            continue
        item.line = row.line
        parsed.append(item)
    return parsed


def keep_first(
    items: Iterable[Item],
    key: Callable[[Item], str],
    file: str,
    column: str,
    report: ImportReport,
) -> list[Item]:
    """Keep the first valid row for each id and report the later ones."""
    first_line: dict[str, int] = {}
    kept = []
    for item in items:
        item_id = key(item)
        if item_id in first_line:
            report.skip(
                file,
                item.line,
                f"duplicate {column} {item_id}; line {first_line[item_id]} "
                "has the same id and is imported instead",
            )
            continue
        first_line[item_id] = item.line
        kept.append(item)
    return kept


def external_id(item: "Parsed[Any]") -> str:
    return str(item.row.external_id)


def require_known(fields: Fields, column: str, known: set[str], file: str) -> str:
    value = fields.text(column)
    if value not in known:
        raise RowError(f"{column} {value} is not in {file} or its row was skipped")
    return value


def parse_account(fields: Fields) -> ParsedAccount:
    signup_date = fields.date("signup_date")
    account = Account(
        external_id=fields.text("account_id", max_length=64),
        name=fields.text("account_name", max_length=200),
        industry=fields.optional_text("industry", max_length=100),
        country=fields.optional_text("country", max_length=2),
        plan=fields.choice("plan_tier", Plan.values),
        seats=fields.integer("seats", minimum=0),
        is_trial=fields.boolean("is_trial"),
        signup_date=signup_date,
        # The dataset records no kickoff meeting; onboarding counts from signup.
        kickoff_date=signup_date,
    )
    return ParsedAccount(0, account, fields.boolean("churn_flag"))


def parse_subscription(fields: Fields, accounts: set[str]) -> Parsed[Subscription]:
    account_id = require_known(fields, "account_id", accounts, ACCOUNTS)
    started_on = fields.date("start_date")
    ended_on = fields.optional_date("end_date")
    if ended_on is not None and ended_on < started_on:
        raise RowError(f"end_date {ended_on} is before start_date {started_on}")
    subscription = Subscription(
        external_id=fields.text("subscription_id", max_length=64),
        started_on=started_on,
        ended_on=ended_on,
        plan=fields.choice("plan_tier", Plan.values),
        seats=fields.integer("seats", minimum=0),
        mrr=fields.decimal("mrr_amount", minimum=0),
        arr=fields.decimal("arr_amount", minimum=0),
        is_trial=fields.boolean("is_trial"),
        is_upgrade=fields.boolean("upgrade_flag"),
        is_downgrade=fields.boolean("downgrade_flag"),
        churned=fields.boolean("churn_flag"),
        billing_frequency=fields.optional_text("billing_frequency", max_length=20),
        auto_renew=fields.boolean("auto_renew_flag"),
    )
    return Parsed(0, subscription, account_id)


def parse_usage(fields: Fields, subscriptions: set[str]) -> Parsed[UsageEvent]:
    subscription_id = require_known(
        fields, "subscription_id", subscriptions, SUBSCRIPTIONS
    )
    duration = fields.integer("usage_duration_secs")
    if duration <= 0:
        raise RowError(
            f"usage_duration_secs is {duration}; a usage row needs a positive duration"
        )
    event = UsageEvent(
        external_id=fields.text("usage_id", max_length=64),
        name="Feature Used",
        feature=fields.text("feature_name", max_length=100),
        occurred_at=at_utc(fields.date("usage_date"), USAGE_HOUR_UTC),
        quantity=fields.integer("usage_count", minimum=0),
        duration_seconds=duration,
        error_count=fields.integer("error_count", minimum=0),
        properties={"is_beta_feature": fields.boolean("is_beta_feature")},
    )
    return Parsed(0, event, subscription_id)


def parse_ticket(fields: Fields, accounts: set[str]) -> Parsed[SupportTicket]:
    account_id = require_known(fields, "account_id", accounts, ACCOUNTS)
    # Tickets carry a submission date only, taken as midnight UTC.
    opened_at = at_utc(fields.date("submitted_at"))
    closed_at = fields.optional_minute("closed_at")
    if closed_at is not None and closed_at < opened_at:
        raise RowError(
            f"closed_at {closed_at:%Y-%m-%d %H:%M} is before submitted_at "
            f"{opened_at:%Y-%m-%d}"
        )
    satisfaction = fields.optional_integer("satisfaction_score", minimum=1)
    if satisfaction is not None and satisfaction > 5:
        raise RowError(f"satisfaction_score {satisfaction} is not a CSAT score 1-5")
    ticket = SupportTicket(
        external_id=fields.text("ticket_id", max_length=64),
        opened_at=opened_at,
        closed_at=closed_at,
        priority=fields.choice("priority", TicketPriority.values),
        first_response_minutes=fields.optional_integer(
            "first_response_time_minutes", minimum=0
        ),
        satisfaction_score=satisfaction,
        escalated=fields.boolean("escalation_flag"),
    )
    return Parsed(0, ticket, account_id)


def parse_churn_event(fields: Fields, accounts: set[str]) -> Parsed[ChurnEvent]:
    account_id = require_known(fields, "account_id", accounts, ACCOUNTS)
    refund = fields.values["refund_amount_usd"]
    event = ChurnEvent(
        external_id=fields.text("churn_event_id", max_length=64),
        churned_on=fields.date("churn_date"),
        reason_code=fields.optional_text("reason_code", max_length=50),
        refund_amount=fields.decimal("refund_amount_usd", minimum=0) if refund else 0,
        is_reactivation=fields.boolean("is_reactivation"),
        feedback=fields.optional_text("feedback_text"),
    )
    return Parsed(0, event, account_id)


def latest_subscriptions(rows: RavenStackRows) -> dict[str, Subscription]:
    """Pick each account's latest subscription by start_date.

    Ties go to a subscription still open (no end_date), then to the later
    end_date, then to the row further down the file.
    """
    latest: dict[str, tuple[tuple[date, bool, date, int], Subscription]] = {}
    for item in rows.subscriptions.values():
        subscription = item.row
        ended_on = subscription.ended_on or date.min
        rank = (
            subscription.started_on,
            subscription.ended_on is None,
            ended_on,
            item.line,
        )
        current = latest.get(item.parent)
        if current is None or rank > current[0]:
            latest[item.parent] = (rank, subscription)
    return {account_id: pair[1] for account_id, pair in latest.items()}
