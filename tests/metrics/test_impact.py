"""Internal impact: hours saved, onboarding before and after, accounts per CSM."""

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from scipy import stats as scipy_stats

from courses.models import EnrollmentSource, EnrollmentStatus
from customers.models import Plan
from lifecycle.models import AccountStage, Stage, StageChange, StageChangeSource
from metrics.facts import refresh_facts
from metrics.impact import impact_report
from metrics.models import ImpactSettings
from metrics.scope import Scope
from tests.factories import make_account, make_contact
from tests.metrics.builders import make_course, make_enrollment

pytestmark = pytest.mark.django_db


def at(day: date, hour: int = 12) -> datetime:
    return datetime(day.year, day.month, day.day, hour, tzinfo=UTC)


@dataclass
class PlantedEnrollment:
    source: str
    plan: str
    enrolled_on: date
    completed_on: date | None


ENROLLMENTS = [
    PlantedEnrollment(EnrollmentSource.AUTOMATIC, Plan.PRO, date(2024, 3, 1), None),
    PlantedEnrollment(
        EnrollmentSource.AUTOMATIC, Plan.PRO, date(2024, 3, 5), date(2024, 3, 20)
    ),
    PlantedEnrollment(
        EnrollmentSource.AUTOMATIC, Plan.BASIC, date(2024, 2, 20), date(2024, 3, 2)
    ),
    PlantedEnrollment(
        EnrollmentSource.AUTOMATIC, Plan.PRO, date(2024, 3, 25), date(2024, 4, 2)
    ),
    PlantedEnrollment(
        EnrollmentSource.MANUAL, Plan.PRO, date(2024, 3, 3), date(2024, 3, 4)
    ),
    PlantedEnrollment(EnrollmentSource.IMPORT, Plan.BASIC, date(2024, 3, 3), None),
]


def plant_enrollments():
    course = make_course((1,))
    for planted in ENROLLMENTS:
        completed_at = None
        status = EnrollmentStatus.ACTIVE
        if planted.completed_on is not None:
            completed_at = at(planted.completed_on)
            status = EnrollmentStatus.COMPLETED
        make_enrollment(
            make_contact(make_account(plan=planted.plan)),
            course,
            status,
            completed_at=completed_at,
            source=planted.source,
            enrolled_at=at(planted.enrolled_on),
        )


def in_period(day: date | None, scope: Scope) -> bool:
    if day is None:
        return False
    return (scope.start is None or day >= scope.start) and (
        scope.end is None or day <= scope.end
    )


@pytest.mark.parametrize(
    "scope",
    [
        Scope(),
        Scope(start=date(2024, 3, 1), end=date(2024, 3, 31)),
        Scope(start=date(2024, 3, 1), end=date(2024, 3, 31), plan=Plan.PRO),
    ],
)
def test_hours_saved_counts_automated_sessions(scope):
    settings = ImpactSettings.load()
    settings.minutes_per_manual_session = 45
    settings.save()
    plant_enrollments()
    automated = [
        planted
        for planted in ENROLLMENTS
        if planted.source == EnrollmentSource.AUTOMATIC
        and (not scope.plan or planted.plan == scope.plan)
    ]
    enrolled = sum(in_period(p.enrolled_on, scope) for p in automated)
    completed = sum(in_period(p.completed_on, scope) for p in automated)

    saved = impact_report(scope).hours_saved

    assert saved.automated_enrollments == enrolled
    assert saved.automated_completions == completed
    assert saved.hours == pytest.approx(45 * (enrolled + completed) / 60)


def test_impact_settings_single_row():
    first = ImpactSettings.load()
    second = ImpactSettings()
    second.minutes_per_manual_session = 12
    second.save()

    assert ImpactSettings.objects.count() == 1
    assert ImpactSettings.load().minutes_per_manual_session == 12
    assert first.pk == second.pk


@dataclass
class PlantedOnboarding:
    signup: date
    kickoff: date | None
    left_after_days: int | None
    plan: str = Plan.PRO


PROGRAM_START = date(2024, 3, 1)
ONBOARDINGS = [
    PlantedOnboarding(date(2024, 1, 1), date(2024, 1, 5), 40),
    PlantedOnboarding(date(2024, 1, 10), None, 35),
    PlantedOnboarding(date(2024, 2, 1), date(2024, 2, 3), 50),
    PlantedOnboarding(date(2024, 2, 10), date(2024, 3, 2), 20, Plan.BASIC),
    PlantedOnboarding(date(2024, 3, 5), None, 18),
    PlantedOnboarding(date(2024, 3, 10), date(2024, 3, 12), 25),
    PlantedOnboarding(date(2024, 4, 1), None, 22),
    PlantedOnboarding(date(2024, 4, 2), None, None),
    PlantedOnboarding(date(2024, 1, 20), None, None),
]


def plant_onboarding():
    onboarding = Stage.objects.get(slug="onboarding")
    adoption = Stage.objects.get(slug="adoption")
    for planted in ONBOARDINGS:
        account = make_account(
            plan=planted.plan, signup_date=planted.signup, kickoff_date=planted.kickoff
        )
        began = planted.kickoff or planted.signup
        if planted.left_after_days is None:
            AccountStage.objects.create(
                account=account, stage=onboarding, entered_at=at(began)
            )
            continue
        AccountStage.objects.create(
            account=account, stage=adoption, entered_at=at(began)
        )
        # Two moves out of onboarding: only the first one ends it.
        for extra_days in (0, 30):
            StageChange.objects.create(
                account=account,
                from_stage=onboarding,
                to_stage=adoption,
                changed_at=at(began + timedelta(planted.left_after_days + extra_days))
                - timedelta(hours=11),
                source=StageChangeSource.CRITERIA,
            )


def group_days(before: bool, plan: str = "") -> list[int]:
    return [
        planted.left_after_days
        for planted in ONBOARDINGS
        if planted.left_after_days is not None
        and ((planted.kickoff or planted.signup) < PROGRAM_START) == before
        and (not plan or planted.plan == plan)
    ]


@pytest.mark.parametrize("precomputed", [False, True])
@pytest.mark.parametrize("plan", ["", Plan.PRO])
def test_onboarding_before_and_after_match_welch(plan, precomputed):
    settings = ImpactSettings.load()
    settings.program_started_on = PROGRAM_START
    settings.save()
    plant_onboarding()
    before, after = group_days(True, plan), group_days(False, plan)
    expected = scipy_stats.ttest_ind(after, before, equal_var=False)
    if precomputed:
        refresh_facts()

    onboarding = impact_report(Scope(plan=plan), precomputed).onboarding

    assert onboarding.before.mean.n == len(before)
    assert onboarding.before.mean.value == pytest.approx(sum(before) / len(before))
    assert onboarding.after.mean.n == len(after)
    assert onboarding.after.mean.value == pytest.approx(sum(after) / len(after))
    assert onboarding.difference.estimate == pytest.approx(
        sum(after) / len(after) - sum(before) / len(before)
    )
    assert onboarding.difference.p_value == pytest.approx(expected.pvalue)
    assert onboarding.before.still_onboarding == 1
    assert onboarding.after.still_onboarding == 1


def test_onboarding_without_program_start_has_one_group():
    plant_onboarding()

    onboarding = impact_report().onboarding

    assert onboarding.program_started_on is None
    assert onboarding.before.mean.n == 0
    assert onboarding.after.mean.n == len(group_days(True)) + len(group_days(False))


def test_accounts_per_csm_counts_owned_accounts(django_user_model):
    csms = [
        django_user_model.objects.create_user(username=f"csm{index}", is_staff=True)
        for index in range(3)
    ]
    csms[1].first_name, csms[1].last_name = "Casey", "Lee"
    csms[1].save()
    owners = [csms[0]] * 4 + [csms[1]] * 2 + [None] * 3 + [csms[2]]
    for index, owner in enumerate(owners):
        make_account(owner=owner, plan=Plan.PRO if index % 2 else Plan.BASIC)
    make_account(owner=csms[2], churned_on=date(2024, 1, 1))
    expected = Counter(owner.pk if owner else None for owner in owners)

    report = impact_report()

    loads = {load.owner_id: load.accounts for load in report.accounts_per_csm}
    names = {load.owner_id: load.name for load in report.accounts_per_csm}
    assert loads == dict(expected)
    assert names[None] == "No CSM"
    assert names[csms[0].pk] == "csm0"
    assert names[csms[1].pk] == "Casey Lee"
    assert [load.accounts for load in report.accounts_per_csm] == sorted(
        expected.values(), reverse=True
    )
    assert report.mean_accounts_per_csm == pytest.approx((4 + 2 + 1) / 3)


@pytest.mark.parametrize("precomputed", [False, True])
def test_impact_query_count_constant(django_user_model, precomputed):
    ImpactSettings.load()
    plant_enrollments()
    plant_onboarding()
    scope = Scope(start=date(2024, 1, 1), plan=Plan.PRO, stage="adoption")
    with CaptureQueriesContext(connection) as few:
        impact_report(scope, precomputed)
    for index in range(5):
        owner = django_user_model.objects.create_user(username=f"many{index}")
        make_account(owner=owner)
    plant_enrollments()
    plant_onboarding()

    with CaptureQueriesContext(connection) as many:
        impact_report(scope, precomputed)

    assert len(few) == 4
    assert len(many) == len(few)


@pytest.fixture
def admin_client_with_settings(client, django_user_model):
    user = django_user_model.objects.create_superuser(username="boss")
    client.force_login(user)
    return client


def test_admin_edits_impact_settings(admin_client_with_settings):
    client = admin_client_with_settings
    listing = client.get(reverse("admin:metrics_impactsettings_changelist"))
    change_url = reverse("admin:metrics_impactsettings_change", args=[1])

    response = client.post(
        change_url,
        {"minutes_per_manual_session": "20", "program_started_on": "2024-03-01"},
    )

    settings = ImpactSettings.load()
    assert listing.status_code == 302
    assert listing["Location"] == change_url
    assert response.status_code == 302
    assert settings.minutes_per_manual_session == 20
    assert settings.program_started_on == date(2024, 3, 1)


def test_impact_csv_and_section(admin_client_with_settings):
    client = admin_client_with_settings
    plant_enrollments()
    query = {"start": "2024-03-01", "end": "2024-03-31"}
    saved = impact_report(Scope(start=date(2024, 3, 1), end=date(2024, 3, 31)))

    page = client.get(reverse("metrics:dashboard"), query)
    download = client.get(reverse("metrics:impact-csv"), query)

    rows = {
        row.split(",")[1]: row.split(",")[3]
        for row in download.content.decode().splitlines()[1:]
    }
    assert page.status_code == 200
    assert "CSM hours saved" in page.content.decode()
    assert "No program start is set" in page.content.decode()
    assert 'data-chart="impact-csm"' in page.content.decode()
    assert download.status_code == 200
    assert int(rows["automated_enrollments"]) == (
        saved.hours_saved.automated_enrollments
    )
    assert float(rows["hours"]) == pytest.approx(saved.hours_saved.hours)
