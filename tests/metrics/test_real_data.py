"""The dashboard's numbers on the imported RavenStack and OULAD data.

Run only this with `pytest -m real_data tests/metrics`. It imports both
datasets first, so it needs the data folder and the integrations importer.
"""

import importlib

import numpy as np
import pandas as pd
import pytest
from scipy.stats import binom

from courses.models import Course
from customers.models import Contact, SupportTicket, UsageDay
from metrics.changes import outcome_changes
from metrics.cohorts import Cohort
from metrics.models import CourseTopic
from metrics.services import learning_engagement, outcome_comparison
from metrics.stats import Verdict

pytestmark = [pytest.mark.real_data, pytest.mark.django_db]

COMPLETED_RESULTS = ("Pass", "Distinction")


def import_all_or_skip():
    try:
        services = importlib.import_module("integrations.services")
    except ModuleNotFoundError:
        services = None
    if services is None or not hasattr(services, "import_all"):
        pytest.skip(
            "integrations.services.import_all is missing, so the datasets "
            "cannot be imported; this test runs once the importer provides it"
        )
    return services.import_all


def completion_by_presentation(learners: pd.DataFrame) -> pd.DataFrame:
    """Return the size and share of Pass or Distinction of each presentation."""
    completed = learners["final_result"].isin(COMPLETED_RESULTS)
    shares = completed.groupby(
        [learners["code_module"], learners["code_presentation"]]
    ).agg(["mean", "size"])
    shares.index = [f"{module}-{presentation}" for module, presentation in shares.index]
    return shares


def learners_the_import_keeps(
    learners: pd.DataFrame, registrations: pd.DataFrame, contact_count: int
) -> pd.DataFrame:
    """Apply the OULAD import's two documented reasons to skip a learner.

    A registration with a blank date_registration is skipped. Learners sorted
    by id_student take contacts in turn (learner k gets contact k modulo the
    number of contacts), and when two learners of one course share a contact
    only the one with the lower id_student is enrolled.
    """
    merged = learners.merge(
        registrations, on=["code_module", "code_presentation", "id_student"]
    )
    merged = merged[merged["date_registration"].notna()]
    ordered_ids = sorted(registrations["id_student"].unique())
    position = {student: index for index, student in enumerate(ordered_ids)}
    merged["contact_slot"] = merged["id_student"].map(position) % contact_count
    return merged.sort_values("id_student").drop_duplicates(
        ["code_module", "code_presentation", "contact_slot"]
    )


def lesson_score_bins(data_dir, kept: pd.DataFrame) -> dict[str, list[int]]:
    """Count each course's assessment scores in ten-point bins, from the CSV files.

    The import keeps a result when its learner is enrolled, its score is
    present and at most 100, and it is the first result of that learner for
    that assessment. numpy's last bin includes 100, as the report's does.
    """
    folder = data_dir / "oulad_2013"
    assessments = pd.read_csv(folder / "assessments_2013.csv")
    results = pd.read_csv(folder / "studentAssessment_subset_2013.csv")
    results = results.drop_duplicates(["id_assessment", "id_student"])
    merged = results.merge(
        assessments[["id_assessment", "code_module", "code_presentation"]],
        on="id_assessment",
    ).merge(
        kept[["code_module", "code_presentation", "id_student"]],
        on=["code_module", "code_presentation", "id_student"],
    )
    merged = merged[merged["score"].notna() & (merged["score"] <= 100)]
    bins = {}
    for (module, presentation), group in merged.groupby(
        ["code_module", "code_presentation"]
    ):
        counts, _ = np.histogram(group["score"], bins=np.arange(0, 101, 10))
        bins[f"{module}-{presentation}"] = [int(count) for count in counts]
    return bins


def click_views(data_dir, kept: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """Sum each course's clicks and repeat clicks from the click log files.

    The import keeps a click row when its learner is enrolled in the course
    and its id_site is a material of that course (the first row of the
    material in vle_2013.csv). Each learner and material becomes one
    progress row whose views are the summed clicks, so a row's repeat views
    are its clicks beyond the first.
    """
    folder = data_dir / "oulad_2013"
    materials = pd.read_csv(folder / "vle_2013.csv").drop_duplicates("id_site")
    clicks = pd.concat(
        pd.read_csv(path) for path in sorted(folder.glob("studentVle*.csv"))
    )
    merged = clicks.merge(
        materials[["id_site", "code_module", "code_presentation"]],
        on=["id_site", "code_module", "code_presentation"],
    ).merge(
        kept[["code_module", "code_presentation", "id_student"]],
        on=["code_module", "code_presentation", "id_student"],
    )
    per_row = (
        merged.groupby(["code_module", "code_presentation", "id_student", "id_site"])[
            "sum_click"
        ]
        .sum()
        .reset_index()
    )
    totals = {}
    for (module, presentation), group in per_row.groupby(
        ["code_module", "code_presentation"]
    ):
        views = group["sum_click"]
        repeats = int((views - 1).clip(lower=0).sum())
        totals[f"{module}-{presentation}"] = (int(views.sum()), repeats)
    return totals


def test_real_data_completion_and_churn(data_dir):
    # One test, so that the slow import of both datasets runs once.
    import_all = import_all_or_skip()
    import_all(data_dir)
    learners = pd.read_csv(data_dir / "oulad_2013" / "studentInfo_2013.csv")
    registrations = pd.read_csv(
        data_dir / "oulad_2013" / "studentRegistration_2013.csv"
    )
    from_csv = completion_by_presentation(learners)
    kept_learners = learners_the_import_keeps(
        learners, registrations, Contact.objects.count()
    )
    kept = completion_by_presentation(kept_learners)
    score_bins = lesson_score_bins(data_dir, kept_learners)
    views = click_views(data_dir, kept_learners)
    external_ids = dict(Course.objects.values_list("pk", "external_id"))

    report = {
        external_ids[course.course_id]: course for course in learning_engagement()
    }
    comparison = outcome_comparison()

    assert set(from_csv.index) <= set(report)
    for external_id, row in kept.iterrows():
        course = report[str(external_id)]
        assert course.enrolled == row["size"], external_id
        assert course.completion.value == pytest.approx(row["mean"]), external_id
    # The import skips only a few learners per course, so the rate stays
    # within one percentage point of the share over every row of the file.
    for external_id, row in from_csv.iterrows():
        course = report[str(external_id)]
        assert course.completion.value == pytest.approx(row["mean"], abs=0.01)
    # Every course's lesson scores fall in the same bins as the file's results.
    assert score_bins
    for external_id, course in report.items():
        expected = score_bins.get(str(external_id), [0] * 10)
        assert course.lesson_scores.bins == expected, external_id
        assert course.lesson_scores.out_of_range == 0, external_id
    # Views and repeat views, summed over a course's modules, are the clicks.
    assert views
    for external_id, course in report.items():
        expected_views = views.get(str(external_id), (0, 0))
        total_views = sum(module.activity.views for module in course.modules)
        repeats = sum(module.activity.repeat_views for module in course.modules)
        assert (total_views, repeats) == expected_views, external_id
    # The learner-to-account link is made up, so training cannot change churn.
    churn = next(m for m in comparison.metrics if m.key == "churn_rate")
    assert comparison.trained_accounts > 0
    assert comparison.untrained_accounts > 0
    assert churn.difference.p_value is not None
    assert churn.difference.p_value > 0.01


def test_real_data_changes_claim_no_effect(data_dir):
    """The made-up learner link gives training no effect, so few are claimed.

    The OULAD learners are spread over the RavenStack contacts in turn, so
    who trained is unrelated to an account's usage, tickets and expansion.
    Every change compared, for every course and for any course, is then a
    true null, and each test rejects with probability alpha = 0.05. Row ids,
    and with them the hashed samples, differ between runs, so the test
    bounds the count of claims: more than the binomial count that chance
    exceeds once in a thousand runs means the dashboard claims effects that
    are not there.
    """
    import_all = import_all_or_skip()
    import_all(data_dir)
    # Tickets count only on a course's topics, so every course covers all.
    topics = set(
        SupportTicket.objects.exclude(topic="").values_list("topic", flat=True)
    )
    courses = list(Course.objects.order_by("pk"))
    for course in courses:
        for topic in topics:
            CourseTopic.objects.create(course=course, topic=topic)
    as_of = UsageDay.objects.order_by("-day").values_list("day", flat=True).first()

    reports = [outcome_changes(as_of=as_of)] + [
        outcome_changes(Cohort(course=course), as_of=as_of) for course in courses
    ]
    verdicts = [
        metric.verdict
        for report in reports
        for metric in (
            report.usage,
            report.health,
            report.tickets,
            report.expansion_change,
        )
    ]
    tested = sum(
        verdict in (Verdict.SIGNIFICANT, Verdict.NOT_SIGNIFICANT)
        for verdict in verdicts
    )
    claims = verdicts.count(Verdict.SIGNIFICANT)
    bound = int(binom.isf(0.001, tested, 0.05))

    assert len(courses) >= 5
    assert tested >= 2 * len(courses)
    assert claims <= bound, f"{claims} of {tested} tests claim an effect"
