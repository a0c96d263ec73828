"""Internal impact: CSM hours saved, onboarding time and accounts per CSM.

Each figure is one aggregate query. ImpactSettings stores the minutes per
manual session and the program start, and docs/dashboards.md lists what
each figure does not prove.
"""

from dataclasses import dataclass
from datetime import UTC, date

from django.db.models import (
    Aggregate,
    Count,
    F,
    FloatField,
    Min,
    OuterRef,
    Q,
    Subquery,
    Sum,
)
from django.db.models.functions import Cast, Coalesce, TruncDate
from django.utils import timezone

from courses.models import Enrollment, EnrollmentSource, EnrollmentStatus
from customers.models import Account
from lifecycle.models import StageChange
from metrics.facts import ONBOARDING_STAGE
from metrics.models import FactRefresh, ImpactSettings
from metrics.scope import EVERYTHING, Scope
from metrics.services import DaysBetween
from metrics.stats import (
    Difference,
    MeanEstimate,
    Summary,
    difference_of_means,
    estimate_mean,
)

# The name shown for the accounts that no CSM owns.
NO_CSM = "No CSM"


@dataclass(frozen=True)
class HoursSaved:
    """Manual sessions that automated enrollments replaced, and their CSM hours."""

    minutes_per_session: int
    automated_enrollments: int
    automated_completions: int

    @property
    def sessions(self) -> int:
        return self.automated_enrollments + self.automated_completions

    @property
    def hours(self) -> float:
        return self.minutes_per_session * self.sessions / 60


@dataclass(frozen=True)
class OnboardingGroup:
    """Days from kickoff (or signup) to leaving onboarding, for one group of accounts.

    ``still_onboarding`` counts accounts of the group that have not left the
    onboarding stage; they are not in ``mean``.
    """

    mean: MeanEstimate
    still_onboarding: int


@dataclass(frozen=True)
class OnboardingComparison:
    """Onboarding that began before the program start against on or after it."""

    program_started_on: date | None
    before: OnboardingGroup
    after: OnboardingGroup
    difference: Difference


@dataclass(frozen=True)
class CsmLoad:
    """Accounts that one CSM owns; ``owner_id`` None is the unowned accounts."""

    owner_id: int | None
    name: str
    accounts: int


@dataclass(frozen=True)
class ImpactReport:
    hours_saved: HoursSaved
    onboarding: OnboardingComparison
    accounts_per_csm: list[CsmLoad]

    @property
    def owned_accounts(self) -> int:
        return sum(load.accounts for load in self.accounts_per_csm if load.owner_id)

    @property
    def csm_count(self) -> int:
        return sum(1 for load in self.accounts_per_csm if load.owner_id)

    @property
    def mean_accounts_per_csm(self) -> float | None:
        if not self.csm_count:
            return None
        return self.owned_accounts / self.csm_count


def hours_saved(scope: Scope, minutes_per_session: int) -> HoursSaved:
    """Count automated enrollments made in the period and their completions in it.

    An enrollment made by a trigger and completed in the same period counts
    twice, once per session it replaced.
    """
    counts = Enrollment.objects.filter(
        scope.accounts("contact__account__"), source=EnrollmentSource.AUTOMATIC
    ).aggregate(
        enrolled=Count("pk", filter=scope.in_period("enrolled_at")),
        completed=Count(
            "pk",
            filter=Q(status=EnrollmentStatus.COMPLETED, completed_at__isnull=False)
            & scope.in_period("completed_at"),
        ),
    )
    return HoursSaved(
        minutes_per_session=minutes_per_session,
        automated_enrollments=counts["enrolled"],
        automated_completions=counts["completed"],
    )


def _group_summary(totals: dict, prefix: str) -> Summary:
    return Summary.from_sums(
        totals.get(f"{prefix}_n", 0),
        float(totals.get(f"{prefix}_sum") or 0),
        float(totals.get(f"{prefix}_squares") or 0),
    )


def onboarding_comparison(
    scope: Scope, program_started_on: date | None, precomputed: bool = False
) -> OnboardingComparison:
    """Compare days to leave onboarding for accounts that began before and after.

    An account's onboarding begins on its kickoff date, or its signup date
    when it has no kickoff, and ends on the UTC day of its first stage change
    out of the onboarding stage. The plan and stage of ``scope`` apply; its
    period does not, because the program start splits the accounts. With
    ``precomputed`` the day onboarding ended is read from the refreshed
    per-account facts.
    """
    left_onboarding = (
        StageChange.objects.filter(
            account=OuterRef("pk"), from_stage__slug=ONBOARDING_STAGE
        )
        .order_by()
        .values("account")
        .annotate(day=Min(TruncDate("changed_at")))
        .values("day")
    )
    # Days are UTC calendar days, as everywhere in the customer record.
    with timezone.override(UTC):
        ended_on = (
            F("dashboard_fact__left_onboarding_day")
            if precomputed
            else Subquery(left_onboarding)
        )
        accounts = Account.objects.filter(scope.accounts()).annotate(
            began_on=Coalesce("kickoff_date", "signup_date"),
            onboarding_days=DaysBetween(ended_on, F("began_on")),
        )
        totals = accounts.aggregate(**_onboarding_aggregates(program_started_on))

    before = _group_summary(totals, "before")
    after = _group_summary(totals, "after")
    return OnboardingComparison(
        program_started_on=program_started_on,
        before=OnboardingGroup(estimate_mean(before), totals.get("before_open", 0)),
        after=OnboardingGroup(estimate_mean(after), totals.get("after_open", 0)),
        difference=difference_of_means(after, before),
    )


def _onboarding_aggregates(program_started_on: date | None) -> dict[str, Aggregate]:
    """Return count, sum, sum of squares and open count per group as aggregates.

    Without a program start every account is "after" and the before group
    gets no aggregates, so it reads as empty.
    """
    if program_started_on is None:
        groups = {"after": Q()}
    else:
        groups = {
            "before": Q(began_on__lt=program_started_on),
            "after": Q(began_on__gte=program_started_on),
        }
    done = Q(onboarding_days__isnull=False)
    days = Cast("onboarding_days", FloatField())
    aggregates: dict[str, Aggregate] = {}
    for name, group in groups.items():
        aggregates[f"{name}_n"] = Count("pk", filter=group & done)
        aggregates[f"{name}_sum"] = Sum(days, filter=group & done)
        aggregates[f"{name}_squares"] = Sum(days * days, filter=group & done)
        aggregates[f"{name}_open"] = Count(
            "pk",
            filter=group & ~done & Q(lifecycle__stage__slug=ONBOARDING_STAGE),
        )
    return aggregates


def accounts_per_csm(scope: Scope) -> list[CsmLoad]:
    """Count the accounts each CSM owns, leaving out accounts marked churned."""
    rows = (
        Account.objects.filter(scope.accounts(), churned_on__isnull=True)
        .values("owner_id", "owner__username", "owner__first_name", "owner__last_name")
        .annotate(accounts=Count("pk"))
        .order_by("-accounts", "owner__username")
    )
    loads = []
    for row in rows:
        # The owner columns are all NULL on the row of unowned accounts.
        parts = (row["owner__first_name"], row["owner__last_name"])
        full_name = " ".join(part for part in parts if part)
        name = full_name or row["owner__username"] or NO_CSM
        loads.append(CsmLoad(row["owner_id"], name, row["accounts"]))
    return loads


def impact_report(
    scope: Scope = EVERYTHING, precomputed: bool | None = None
) -> ImpactReport:
    """Compute every internal-impact figure with the saved settings.

    Runs four queries (five when the settings row is created on first use,
    one more when ``precomputed`` is None and the last refresh is looked up).
    """
    if precomputed is None:
        precomputed = FactRefresh.last() is not None
    settings = ImpactSettings.load()
    return ImpactReport(
        hours_saved=hours_saved(scope, settings.minutes_per_manual_session),
        onboarding=onboarding_comparison(
            scope, settings.program_started_on, precomputed
        ),
        accounts_per_csm=accounts_per_csm(scope),
    )
