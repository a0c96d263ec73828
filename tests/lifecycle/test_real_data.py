"""Criterion states, stage progression and checklist ticks on the RavenStack data.

The expectations come from the CSV files with plain Python and the rules
that docs/data.md gives for the import (contacts from seats, usage at
12:00 UTC, kickoff on the signup date) and docs/lifecycle.md gives for
evaluation. The stages are set up so that every step can be computed that
way: onboarding needs both criteria, adoption advances on its feature
criterion alone, and expansion advances on none, so it keeps its accounts.

Run only this with `pytest -m real_data tests/lifecycle`.
"""

import csv
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import pytest
from django.db import transaction

from conditions import EvaluationContext, compile_condition
from customers.models import Account, UsageEvent
from integrations.services import import_ravenstack
from lifecycle.checklists import tick_checklists
from lifecycle.models import (
    AccountStage,
    Advancement,
    ChecklistItem,
    ChecklistTick,
    CriterionMet,
    Stage,
    StageChange,
    SuccessCriterion,
)
from lifecycle.services import evaluate_stages, set_stage, stage_history
from lifecycle.status import CriterionState, account_criteria
from tests.conftest import DATA_DIR

pytestmark = [pytest.mark.real_data, pytest.mark.django_db]

FOLDER = DATA_DIR / "ravenstack"
# Two evaluations a month apart. Signups run from January 2023 to December
# 2024, so at both instants some accounts are new and some placed long ago.
FIRST = datetime(2024, 4, 1, tzinfo=UTC)
SECOND = datetime(2024, 5, 2, tzinfo=UTC)
# The seeded criteria: onboarding's two and adoption's feature criterion.
TEAM, FIRST_USAGE, FEATURES = "onboarding:1", "onboarding:2", "adoption:1"
TARGET_DAYS = {TEAM: 14, FIRST_USAGE: 14, FEATURES: 30}
MOVED_BACK = FIRST + timedelta(days=1)
DAY = timedelta(days=1)


# -- the CSV files, read without the importer ------------------------------------


@dataclass
class SourceAccount:
    signup: date
    seats: int
    usage_rows: int = 0
    # Dates of the account's usage rows, and the features used on each date.
    usage_dates: set[date] = field(default_factory=set)
    features_on: dict[date, set[str]] = field(default_factory=lambda: defaultdict(set))


def read_rows(name: str) -> list[dict[str, str]]:
    with (FOLDER / name).open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_source() -> dict[str, SourceAccount]:
    """Read accounts and their usage as the import keeps them (docs/data.md).

    A usage row belongs to its subscription's account. Rows with a
    duration of 0 are skipped, and of rows that repeat a usage_id only the
    first valid one is kept.
    """
    accounts = {
        row["account_id"]: SourceAccount(
            signup=date.fromisoformat(row["signup_date"]), seats=int(row["seats"])
        )
        for row in read_rows("ravenstack_accounts.csv")
    }
    owner = {
        row["subscription_id"]: row["account_id"]
        for row in read_rows("ravenstack_subscriptions.csv")
    }
    seen: set[str] = set()
    for row in read_rows("ravenstack_feature_usage.csv"):
        if int(row["usage_duration_secs"]) <= 0 or row["usage_id"] in seen:
            continue
        seen.add(row["usage_id"])
        account = accounts[owner[row["subscription_id"]]]
        day = date.fromisoformat(row["usage_date"])
        account.usage_rows += 1
        account.usage_dates.add(day)
        account.features_on[day].add(row["feature_name"])
    return accounts


# -- the criteria, computed from the files ----------------------------------------


def midnight(day: date) -> datetime:
    return datetime.combine(day, time.min, tzinfo=UTC)


def contacts_by(account: SourceAccount, as_of: datetime) -> int:
    """Count contacts added by as_of: contact n joins (n - 1) * 90 // seats days in."""
    return sum(
        1
        for number in range(1, account.seats + 1)
        if midnight(account.signup) + timedelta((number - 1) * 90 // account.seats)
        <= as_of
    )


def used_early(account: SourceAccount, as_of: datetime) -> bool:
    """Tell whether usage dated kickoff to kickoff + 7 days was seen by as_of.

    Kickoff is the signup date, and usage rows are placed at 12:00 UTC.
    """
    return any(
        account.signup <= day <= account.signup + timedelta(days=7)
        and midnight(day) + timedelta(hours=12) <= as_of
        for day in account.usage_dates
    )


def features_last_week(account: SourceAccount, as_of: datetime) -> int:
    """Count distinct features used in (as_of - 7 days, as_of]."""
    features: set[str] = set()
    for day, names in account.features_on.items():
        used_at = midnight(day) + timedelta(hours=12)
        if as_of - timedelta(days=7) < used_at <= as_of:
            features |= names
    return len(features)


def holds(criterion: str, account: SourceAccount, as_of: datetime) -> bool:
    if criterion == TEAM:
        return contacts_by(account, as_of) >= 3
    if criterion == FIRST_USAGE:
        return used_early(account, as_of)
    return features_last_week(account, as_of) >= 3


@dataclass
class Expected:
    """One account's stage, entry and criterion records, replayed from the files."""

    stage: str | None = None
    entered_at: datetime | None = None
    met_at: dict[str, datetime] = field(default_factory=dict)
    # The stage and entry after each evaluation, by its as_of.
    stage_at: dict[datetime, tuple[str | None, datetime | None]] = field(
        default_factory=dict
    )


def replay(
    accounts: dict[str, SourceAccount],
    moved_back: frozenset[str] = frozenset(),
) -> dict[str, Expected]:
    """Apply the evaluation rules of docs/lifecycle.md at FIRST, then at SECOND.

    The accounts in moved_back go back to onboarding by hand at MOVED_BACK,
    between the two, which clears their criterion records.
    """
    expected = {account_id: Expected() for account_id in accounts}
    for as_of in (FIRST, SECOND):
        if as_of == SECOND:
            for account_id in moved_back:
                state = expected[account_id]
                state.stage, state.entered_at = "onboarding", MOVED_BACK
                state.met_at.clear()
        for account_id, account in accounts.items():
            state = expected[account_id]
            if state.stage is None and account.signup <= as_of.date():
                state.stage, state.entered_at = "onboarding", midnight(account.signup)
            if state.stage == "onboarding":
                record(state, (TEAM, FIRST_USAGE), account, as_of)
                if TEAM in state.met_at and FIRST_USAGE in state.met_at:
                    last_met = max(state.met_at[TEAM], state.met_at[FIRST_USAGE])
                    assert state.entered_at is not None
                    state.stage = "adoption"
                    state.entered_at = max(state.entered_at, last_met)
            if state.stage == "adoption":
                record(state, (FEATURES,), account, as_of)
                if FEATURES in state.met_at:
                    assert state.entered_at is not None
                    state.entered_at = max(state.entered_at, state.met_at[FEATURES])
                    state.stage = "expansion"
            state.stage_at[as_of] = (state.stage, state.entered_at)
    return expected


def record(
    state: Expected, criteria: tuple[str, ...], account: SourceAccount, as_of: datetime
) -> None:
    for criterion in criteria:
        if criterion not in state.met_at and holds(criterion, account, as_of):
            state.met_at[criterion] = as_of


def expected_state(
    state: Expected, criterion: str, as_of: datetime
) -> tuple[CriterionState, datetime | None]:
    """Return the state and met time that account_criteria() must give at as_of."""
    met_at = state.met_at.get(criterion)
    if met_at is not None and met_at <= as_of:
        return CriterionState.MET, met_at
    stage, entered_at = state.stage_at.get(as_of, (None, None))
    if stage != criterion.split(":")[0] or entered_at is None:
        return CriterionState.NOT_APPLICABLE, None
    due_at = entered_at + timedelta(days=TARGET_DAYS[criterion])
    return (CriterionState.BEHIND if due_at < as_of else CriterionState.ON_TRACK), None


# -- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def ravenstack(django_db_setup, django_db_blocker):
    """Import RavenStack once for the module, in a transaction rolled back after it.

    Each test runs in a savepoint inside that transaction, so its
    evaluations are undone while the import stays.
    """
    if not FOLDER.is_dir():
        pytest.skip(
            f"dataset folder {FOLDER} is missing; set NUDGEPATH_DATA_DIR to the "
            "folder that holds ravenstack/"
        )
    with django_db_blocker.unblock():
        outer = transaction.atomic()
        outer.__enter__()
        try:
            import_ravenstack(Path(FOLDER))
            yield read_source()
        finally:
            transaction.set_rollback(True)
            outer.__exit__(None, None, None)


@pytest.fixture
def stages(ravenstack):
    """Advance adoption on its feature criterion alone, and expansion on none."""
    Stage.objects.filter(slug__in=["adoption", "expansion"]).update(
        advancement=Advancement.CHOSEN
    )
    SuccessCriterion.objects.filter(stage__slug__in=["adoption", "expansion"]).update(
        required_to_advance=False
    )
    SuccessCriterion.objects.filter(stage__slug="adoption", order=1).update(
        required_to_advance=True
    )
    return ravenstack


def key(criterion: SuccessCriterion) -> str:
    return f"{criterion.stage.slug}:{criterion.order}"


# -- tests --------------------------------------------------------------------------


def test_import_matches_the_files(ravenstack):
    # The replay below reads the files itself; these counts show that it
    # keeps the same accounts and usage rows as the import.
    assert Account.objects.count() == len(ravenstack)
    usage_rows = sum(account.usage_rows for account in ravenstack.values())
    assert UsageEvent.objects.count() == usage_rows


def test_progression_over_two_evaluations(stages):
    expected = replay(stages)

    first = evaluate_stages(FIRST)
    second = evaluate_stages(SECOND)

    placed_first = sum(1 for a in stages.values() if a.signup <= FIRST.date())
    placed_by_second = sum(1 for a in stages.values() if a.signup <= SECOND.date())
    assert first.placed == placed_first
    assert second.placed == placed_by_second - placed_first
    actual = {
        placement.account.external_id: (placement.stage.slug, placement.entered_at)
        for placement in AccountStage.objects.select_related("account", "stage")
    }
    wanted = {
        account_id: (state.stage, state.entered_at)
        for account_id, state in expected.items()
        if state.stage is not None
    }
    assert actual == wanted
    # Every stage is reached by some account, so the comparison is not empty.
    assert {stage for stage, _ in wanted.values()} == {
        "onboarding",
        "adoption",
        "expansion",
    }


def test_criterion_records_match(stages):
    expected = replay(stages)

    evaluate_stages(FIRST)
    evaluate_stages(SECOND)

    tracked = {TEAM, FIRST_USAGE, FEATURES}
    actual = {
        (row.account.external_id, key(row.criterion)): row.met_at
        for row in CriterionMet.objects.select_related("account", "criterion__stage")
        if key(row.criterion) in tracked
    }
    wanted = {
        (account_id, criterion): met_at
        for account_id, state in expected.items()
        for criterion, met_at in state.met_at.items()
    }
    assert actual == wanted
    assert any(met_at == FIRST for met_at in wanted.values())
    assert any(met_at == SECOND for met_at in wanted.values())


@pytest.mark.parametrize("as_of", [FIRST, SECOND], ids=["first", "second"])
def test_states_as_of_each_evaluation(stages, as_of):
    # Both evaluations run first, so the states as of the first one are
    # read back from history, not from the current stage.
    expected = replay(stages)
    evaluate_stages(FIRST)
    evaluate_stages(SECOND)
    accounts = Account.objects.order_by("external_id")

    mismatches = []
    counts: dict[CriterionState, int] = defaultdict(int)
    for account in accounts:
        state = expected[account.external_id]
        for status in account_criteria(account, as_of).statuses:
            criterion = key(status.criterion)
            if criterion not in TARGET_DAYS:
                continue
            wanted = expected_state(state, criterion, as_of)
            counts[wanted[0]] += 1
            if (status.state, status.met_at) != wanted:
                mismatches.append((account.external_id, criterion, status, wanted))

    assert mismatches == []
    # The data gives accounts in all four states at both instants.
    assert set(counts) == set(CriterionState)


def test_history_as_of_first_evaluation(stages):
    expected = replay(stages)
    evaluate_stages(FIRST)
    evaluate_stages(SECOND)

    for account in Account.objects.all():
        stage, entered_at = expected[account.external_id].stage_at[FIRST]
        visits = stage_history(account, as_of=FIRST)
        if stage is None:
            assert visits == [], account.external_id
            continue
        assert visits[-1].stage.slug == stage, account.external_id
        assert visits[-1].entered_at == entered_at, account.external_id
        assert visits[-1].left_at is None, account.external_id


def test_entered_stage_as_of_each_evaluation(stages):
    expected = replay(stages)
    evaluate_stages(FIRST)
    evaluate_stages(SECOND)

    for as_of in (FIRST, SECOND):
        # Accounts that moved into adoption at this evaluation, including
        # those that passed through it to expansion at once.
        wanted = {
            account_id
            for account_id, state in expected.items()
            if FIRST_USAGE in state.met_at
            and TEAM in state.met_at
            and max(state.met_at[FIRST_USAGE], state.met_at[TEAM]) == as_of
        }
        condition = compile_condition(
            {"kind": "entered_stage", "stage": "adoption", "days": 1},
            EvaluationContext("account", as_of),
        )
        matched = set(
            Account.objects.filter(condition).values_list("external_id", flat=True)
        )

        assert matched == wanted
        assert wanted


def test_manual_move_back_and_history(stages, admin_user):
    # Five accounts past onboarding at FIRST go back to it by hand a day
    # later; their records are cleared, and SECOND must see the criteria
    # met again before moving them on.
    first_only = replay(stages)
    moved_back = frozenset(
        sorted(
            account_id
            for account_id, state in first_only.items()
            if state.stage_at[FIRST][0] in ("adoption", "expansion")
        )[:5]
    )
    expected = replay(stages, moved_back)
    onboarding = Stage.objects.get(slug="onboarding")

    evaluate_stages(FIRST)
    for account in Account.objects.filter(external_id__in=moved_back):
        set_stage(
            account, onboarding, by=admin_user, reason="Kickoff redone", at=MOVED_BACK
        )
    evaluate_stages(SECOND)

    assert len(moved_back) == 5
    for account in Account.objects.filter(external_id__in=moved_back):
        state = expected[account.external_id]
        placement = AccountStage.objects.get(account=account)
        assert (placement.stage.slug, placement.entered_at) == (
            state.stage,
            state.entered_at,
        )
        records = {
            key(row.criterion): row.met_at
            for row in CriterionMet.objects.filter(account=account).select_related(
                "criterion__stage"
            )
            if key(row.criterion) in TARGET_DAYS
        }
        assert records == state.met_at
        manual = StageChange.objects.get(account=account, source="manual")
        assert manual.changed_at == MOVED_BACK
        assert manual.changed_by == admin_user
        assert manual.reason == "Kickoff redone"
        visits = stage_history(account, as_of=SECOND)
        back = [visit for visit in visits if visit.entered_at == MOVED_BACK]
        assert [visit.stage.slug for visit in back] == ["onboarding"]
        assert back[0].left_at == (SECOND if state.stage != "onboarding" else None)
        # As of FIRST the account was past onboarding, as before the move.
        assert (
            stage_history(account, as_of=FIRST)[-1].stage.slug
            == (first_only[account.external_id].stage_at[FIRST][0])
        )


def test_checklist_ticks_from_usage_and_team(ravenstack):
    onboarding = Stage.objects.get(slug="onboarding")
    first_usage = ChecklistItem.objects.create(
        stage=onboarding, name="Use the product", event_name="Feature Used"
    )
    team = ChecklistItem.objects.create(
        stage=onboarding,
        name="Invite 3 team members",
        condition={"kind": "contact_count", "op": ">=", "value": 3},
    )

    # Run forward, then once more as of the earlier instant: the condition
    # ticks move back to it where the team was there by then.
    tick_checklists(SECOND)
    tick_checklists(FIRST)

    wanted_usage = {
        account_id: midnight(min(account.usage_dates)) + timedelta(hours=12)
        for account_id, account in ravenstack.items()
        if account.usage_dates and min(account.usage_dates) <= SECOND.date() - DAY
    }
    wanted_team = {}
    for account_id, account in ravenstack.items():
        for as_of in (FIRST, SECOND):
            signed_up = account.signup <= as_of.date()
            if signed_up and contacts_by(account, as_of) >= 3:
                wanted_team[account_id] = as_of
                break
    assert ticked(first_usage) == wanted_usage
    assert ticked(team) == wanted_team
    assert FIRST in wanted_team.values()
    assert SECOND in wanted_team.values()


def ticked(item: ChecklistItem) -> dict[str, datetime]:
    return dict(
        ChecklistTick.objects.filter(item=item).values_list(
            "account__external_id", "ticked_at"
        )
    )
