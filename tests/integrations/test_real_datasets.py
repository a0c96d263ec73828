"""The whole import on the public datasets, checked against counts from pandas.

Every expected number is computed here from the CSV files with the rules in
docs/data.md, independently of the importer's code.
"""

from pathlib import Path

import pandas as pd
import pytest
from django.db.models import Count

from courses.models import Enrollment, LessonProgress
from customers.models import (
    Account,
    ChurnEvent,
    Contact,
    SupportTicket,
    SurveyResponse,
    UsageEvent,
)
from integrations.services import import_all

pytestmark = [pytest.mark.django_db, pytest.mark.real_data]

OULAD_STATUS = {
    "Pass": "completed",
    "Distinction": "completed",
    "Fail": "failed",
    "Withdrawn": "withdrawn",
}


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, dtype=str, keep_default_na=False)


def expected_renewals(subscriptions: pd.DataFrame) -> dict[str, str]:
    """Pick the latest start_date; ties go to open, then later end, then later row."""
    frame = subscriptions.assign(
        row=range(len(subscriptions)),
        is_open=subscriptions.end_date == "",
        end_or_min=subscriptions.end_date.replace("", "0000-00-00"),
    ).sort_values(["start_date", "is_open", "end_or_min", "row"])
    latest = frame.groupby("account_id").tail(1)
    next_year = (
        pd.to_datetime(latest.start_date) + pd.DateOffset(years=1)
    ).dt.strftime("%Y-%m-%d")
    renewal = latest.end_date.where(latest.end_date != "", next_year)
    return dict(zip(latest.account_id, renewal, strict=True))


def kept_registrations(folder: Path, contact_count: int) -> pd.DataFrame:
    """Registrations that become enrollments, with their course id and status."""
    registrations = read(folder, "studentRegistration_2013.csv")
    info = read(folder, "studentInfo_2013.csv")
    keys = ["code_module", "code_presentation", "id_student"]
    merged = registrations.merge(info[[*keys, "final_result"]], on=keys)
    learners = sorted(registrations.id_student.astype(int).unique())
    slot = {learner: index % contact_count for index, learner in enumerate(learners)}
    valid = merged[merged.date_registration != ""].assign(
        student=lambda frame: frame.id_student.astype(int),
        course=lambda frame: frame.code_module + "-" + frame.code_presentation,
    )
    valid = valid.assign(slot=valid.student.map(slot)).sort_values("student")
    # Learners sharing a contact in one course: the lowest id_student stays.
    kept = valid.drop_duplicates(["course", "slot"], keep="first")
    return kept.assign(status=kept.final_result.map(OULAD_STATUS))


def test_real_datasets_import_counts(data_dir):
    raven = data_dir / "ravenstack"
    oulad = data_dir / "oulad_2013"
    accounts = read(raven, "ravenstack_accounts.csv")
    subscriptions = read(raven, "ravenstack_subscriptions.csv")
    usage = read(raven, "ravenstack_feature_usage.csv")
    tickets = read(raven, "ravenstack_support_tickets.csv")
    churn = read(raven, "ravenstack_churn_events.csv")

    reports = import_all(data_dir)

    # RavenStack.
    assert Account.objects.count() == len(accounts) == 500
    seats = accounts.seats.astype(int).sum()
    assert Contact.objects.count() == seats
    valid_usage = usage[
        (usage.usage_duration_secs.astype(int) > 0)
        & usage.subscription_id.isin(subscriptions.subscription_id)
    ]
    assert UsageEvent.objects.count() == valid_usage.usage_id.nunique()
    opened = pd.to_datetime(tickets.submitted_at)
    closed = pd.to_datetime(tickets.closed_at, format="%Y-%m-%d %H:%M")
    valid_tickets = tickets[closed >= opened]
    assert SupportTicket.objects.count() == len(valid_tickets)
    assert SurveyResponse.objects.filter(kind="csat").count() == (
        (valid_tickets.satisfaction_score != "").sum()
    )
    assert ChurnEvent.objects.count() == len(churn)
    flagged = accounts[accounts.churn_flag == "TRUE"]
    last_churn = churn.groupby("account_id").churn_date.max()
    expected_churned = {
        account_id: last_churn[account_id]
        for account_id in flagged.account_id
        if account_id in last_churn.index
    }
    churned = Account.objects.filter(churned_on__isnull=False)
    assert {
        external_id: str(churned_on)
        for external_id, churned_on in churned.values_list("external_id", "churned_on")
    } == expected_churned
    assert len(reports[0].warnings) == len(flagged) - len(expected_churned)
    renewals = {
        external_id: str(renewal)
        for external_id, renewal in Account.objects.values_list(
            "external_id", "renewal_date"
        )
    }
    assert renewals == expected_renewals(subscriptions)

    # OULAD.
    kept = kept_registrations(oulad, seats)
    expected_status = kept.groupby(["course", "status"]).size().to_dict()
    imported_status = {
        (row["course__external_id"], row["status"]): row["count"]
        for row in Enrollment.objects.values("course__external_id", "status").annotate(
            count=Count("id")
        )
    }
    assert imported_status == expected_status
    expected_completed = kept[kept.status == "completed"].groupby("course").size()
    completed = Enrollment.objects.filter(completed_at__isnull=False)
    assert (
        dict(completed.values_list("course__external_id").annotate(Count("id")))
        == expected_completed.to_dict()
    )

    assessments = read(oulad, "assessments_2013.csv")
    results = read(oulad, "studentAssessment_subset_2013.csv").merge(
        assessments[["id_assessment", "code_module", "code_presentation"]],
        on="id_assessment",
    )
    results_course = results.code_module + "-" + results.code_presentation
    enrolled = set(zip(kept.course, kept.student, strict=True))
    results_kept = results[
        [
            (course, int(student)) in enrolled
            for course, student in zip(results_course, results.id_student, strict=True)
        ]
    ]
    assert LessonProgress.objects.filter(
        lesson__external_id__startswith="oulad-assessment-"
    ).count() == len(results_kept.drop_duplicates(["id_assessment", "id_student"]))
