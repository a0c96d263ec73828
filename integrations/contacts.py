"""Contacts made up from an account's seats, because RavenStack has no contacts table.

Every choice is a function of the account id and the contact's number, so
the same data always yields the same people, on any machine and any run.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from django.utils.text import slugify

from integrations.csvfiles import at_utc

FIRST_NAMES = (
    "Ada", "Amir", "Ana", "Ben", "Carla", "Chen", "Dana", "David", "Elena", "Emeka",
    "Fatima", "Felix", "Grace", "Hana", "Ivan", "Jade", "Jonas", "Kai", "Laura",
    "Leila", "Marco", "Maya", "Nadia", "Noah", "Olga", "Omar", "Priya", "Rafael",
    "Rosa", "Sam", "Sara", "Tariq", "Tom", "Una", "Victor", "Wen", "Yara", "Zoe",
)  # fmt: skip

LAST_NAMES = (
    "Adams", "Baker", "Costa", "Dubois", "Eriksen", "Fischer", "Garcia", "Haddad",
    "Ito", "Jansen", "Kowalski", "Lopez", "Moreau", "Nakamura", "Novak", "Okafor",
    "Patel", "Quinn", "Rossi", "Schmidt", "Singh", "Tanaka", "Usman", "Varga",
    "Walsh", "Xu", "Young", "Zimmermann",
)  # fmt: skip

ROLES = (
    "Administrator",
    "Analyst",
    "Customer success lead",
    "Developer",
    "Engineering manager",
    "Finance manager",
    "Marketing manager",
    "Operations manager",
    "Product manager",
    "Support agent",
)

# Contacts join over the account's first 90 days; contact 1 joins at signup.
ONBOARDING_DAYS = 90


@dataclass(frozen=True)
class ContactSpec:
    external_id: str
    email: str
    first_name: str
    last_name: str
    role: str
    is_champion: bool
    added_at: datetime


def stable_index(key: str, count: int) -> int:
    """Map a key to 0..count-1 by SHA-256, the same on every machine and run."""
    return int(hashlib.sha256(key.encode()).hexdigest(), 16) % count


def contact_external_id(account_id: str, number: int) -> str:
    return f"{account_id}-C{number:03d}"


def contact_number(account_id: str, external_id: str) -> int | None:
    """Return the number of a generated contact of this account, None for others."""
    match = re.fullmatch(re.escape(account_id) + r"-C(\d+)", external_id)
    return int(match.group(1)) if match else None


def email_domain(account_name: str) -> str:
    """Make a host name from an account name: "Company_0" becomes "company-0"."""
    return slugify(account_name).replace("_", "-").strip("-") or "account"


def unique_domains(accounts: list[tuple[str, str]]) -> dict[str, str]:
    """Give each (account id, name) a domain no other account has.

    Names that make the same domain keep it for the first account in the
    given order; the others append their account id.
    """
    domains: dict[str, str] = {}
    used: set[str] = set()
    for account_id, name in accounts:
        domain = email_domain(name)
        if domain in used:
            domain = f"{domain}-{email_domain(account_id)}"
        used.add(domain)
        domains[account_id] = domain
    return domains


def generate_contacts(
    account_id: str, domain: str, seats: int, signup_date: date
) -> list[ContactSpec]:
    """Describe one contact per seat; contact 1 is the champion."""
    return [
        ContactSpec(
            external_id=contact_external_id(account_id, number),
            email=f"user{number:03d}@{domain}.example",
            first_name=FIRST_NAMES[
                stable_index(f"{account_id}:{number}:first", len(FIRST_NAMES))
            ],
            last_name=LAST_NAMES[
                stable_index(f"{account_id}:{number}:last", len(LAST_NAMES))
            ],
            role=ROLES[stable_index(f"{account_id}:{number}:role", len(ROLES))],
            is_champion=number == 1,
            added_at=at_utc(signup_date + timedelta(days=join_day(number, seats))),
        )
        for number in range(1, seats + 1)
    ]


def join_day(number: int, seats: int) -> int:
    """Spread contacts 1..seats evenly over days 0..89 after signup."""
    return (number - 1) * ONBOARDING_DAYS // seats
