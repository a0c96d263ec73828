"""Time trigger evaluation and stage evaluation over a synthetic population."""

import random
import statistics
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta

from django.db import connection

from conditions import EvaluationContext, compile_condition
from customers.models import Account, Contact, UsageEvent
from customers.services import subjects_as_of
from lifecycle.services import evaluate_stages
from triggers.demo import TRIGGERS

ACCOUNTS = 500
CONTACTS_PER_ACCOUNT = 20
EVENTS = 200_000
AS_OF = datetime(2024, 6, 15, 12, 0, tzinfo=UTC)
REPEATS = 7

# Targets: a trigger's evaluation query over every contact, and one stage
# evaluation over every account, as seen by a sweep on a 2-core machine.
TRIGGER_LIMIT_SECONDS = 1.0
STAGES_LIMIT_SECONDS = 5.0


def build_population(seed: int = 7) -> None:
    generator = random.Random(seed)
    accounts = Account.objects.bulk_create(
        Account(
            external_id=f"B-{number}",
            name=f"Bench account {number}",
            signup_date=date(2023, 1, 1) + timedelta(days=generator.randrange(400)),
            renewal_date=date(2024, 6, 1) + timedelta(days=generator.randrange(200)),
            seats=CONTACTS_PER_ACCOUNT,
        )
        for number in range(ACCOUNTS)
    )
    contacts = Contact.objects.bulk_create(
        Contact(
            account=account,
            external_id=f"{account.external_id}-{number}",
            email=f"u{number}@{account.external_id.lower()}.example",
            first_name="Bench",
            added_at=datetime(2023, 1, 1, tzinfo=UTC)
            + timedelta(days=generator.randrange(520)),
        )
        for account in accounts
        for number in range(CONTACTS_PER_ACCOUNT)
    )
    UsageEvent.objects.bulk_create(
        (
            _event(generator, contacts[generator.randrange(len(contacts))])
            for _ in range(EVENTS)
        ),
        batch_size=5_000,
    )
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE")


def _event(generator: random.Random, contact: Contact) -> UsageEvent:
    return UsageEvent(
        account_id=contact.account_id,
        contact=contact,
        name="Feature Used",
        feature=f"feature_{generator.randrange(40)}",
        occurred_at=AS_OF - timedelta(minutes=generator.randrange(60 * 24 * 540)),
    )


def p95(action: Callable[[], object]) -> float:
    timings = []
    for _ in range(REPEATS):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.quantiles(timings, n=20)[-1]


def trigger_query(condition: dict, subject: str) -> Callable[[], int]:
    context = EvaluationContext(subject, AS_OF)  # type: ignore[arg-type]

    def evaluate() -> int:
        return (
            subjects_as_of(subject, AS_OF)
            .filter(compile_condition(condition, context))
            .count()
        )

    return evaluate


def run() -> int:
    started = time.perf_counter()
    build_population()
    print(
        f"Population: {ACCOUNTS} accounts, {ACCOUNTS * CONTACTS_PER_ACCOUNT} contacts, "
        f"{EVENTS} usage events (built in {time.perf_counter() - started:.1f} s)"
    )
    print(f"{'measure':<44} {'p95 s':>8} {'limit s':>8} {'ratio':>6}")

    worst = 0.0
    for spec in TRIGGERS:
        seconds = p95(trigger_query(spec["condition"], spec["subject_type"]))
        worst = max(
            worst, _report(f"trigger {spec['slug']}", seconds, TRIGGER_LIMIT_SECONDS)
        )

    seconds = p95(lambda: evaluate_stages(AS_OF))
    worst = max(
        worst, _report("evaluate_stages (all accounts)", seconds, STAGES_LIMIT_SECONDS)
    )
    return 0 if worst <= 1.0 else 1


def _report(name: str, seconds: float, limit: float) -> float:
    ratio = seconds / limit
    print(f"{name:<44} {seconds:>8.3f} {limit:>8.1f} {ratio:>6.2f}")
    return ratio
