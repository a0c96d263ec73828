"""The dashboard page and its CSV downloads: access, filters, content, queries."""

import csv
import html
import io
from datetime import UTC, date, datetime
from pathlib import Path

import numpy as np
import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

import metrics
from courses.models import EnrollmentStatus
from customers.models import Plan
from metrics.facts import refresh_facts
from metrics.models import ImpactSettings
from metrics.services import learning_engagement, outcome_comparison
from tests.factories import make_account, make_contact
from tests.metrics.builders import (
    lessons_by_module,
    make_course,
    make_enrollment,
    planted_cohort,
    save_cohort,
)

pytestmark = pytest.mark.django_db

AS_OF = date(2024, 6, 30)

DASHBOARD = reverse("metrics:dashboard")
IMPACT_CSV = reverse("metrics:impact-csv")
OUTCOMES_CSV = reverse("metrics:outcomes-csv")
ENGAGEMENT_CSV = reverse("metrics:engagement-csv")
ALL_PAGES = [DASHBOARD, OUTCOMES_CSV, ENGAGEMENT_CSV]


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user(username="manager", is_staff=True)
    client.force_login(user)
    return client


@pytest.fixture
def learner_client(client, django_user_model):
    user = django_user_model.objects.create_user(username="learner")
    client.force_login(user)
    return client


def read_csv(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def add_cohort(size: int, seed: int):
    """Add size trained and size untrained accounts, plus size learners who withdrew.

    The withdrawn learners belong to accounts of their own, which are untrained.
    """
    course = make_course((1, 2))
    rng = np.random.default_rng(seed)
    planted = planted_cohort(rng, size, True, 0.2, 5.0, AS_OF) + planted_cohort(
        rng, size, False, 0.3, 9.0, AS_OF
    )
    save_cohort(planted, course, AS_OF)
    lesson = lessons_by_module(course)[1][0]
    for _ in range(size):
        make_enrollment(
            make_contact(), course, EnrollmentStatus.WITHDRAWN, furthest_lesson=lesson
        )
    return course


@pytest.mark.parametrize("url", ALL_PAGES)
def test_anonymous_redirected_to_admin_login(client, url):
    response = client.get(url)

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert "next=" in response["Location"]


@pytest.mark.parametrize("url", ALL_PAGES)
def test_non_staff_user_forbidden(learner_client, url):
    response = learner_client.get(url)

    assert response.status_code == 403


@pytest.mark.parametrize("url", ALL_PAGES)
def test_post_not_allowed(staff_client, url):
    response = staff_client.post(url)

    assert response.status_code == 405


def test_staff_sees_dashboard_tables(staff_client):
    course = add_cohort(40, seed=1)

    response = staff_client.get(DASHBOARD, {"as_of": AS_OF.isoformat()})

    content = response.content.decode()
    assert response.status_code == 200
    assert "This comparison is observational" in content
    assert "randomised holdout" in content
    assert "link between OULAD learners and RavenStack accounts is made up" in content
    for label in ("Churn rate", "Renewal rate", "Time-to-value", "Support tickets"):
        assert label in content
    assert course.title in content
    assert 'class="funnel-bar"' in content
    assert "metrics/dashboard.css" in content


def test_small_sample_shows_warning(staff_client):
    add_cohort(10, seed=2)

    response = staff_client.get(DASHBOARD, {"as_of": AS_OF.isoformat()})

    assert "Too few accounts for a verdict" in response.content.decode()


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"course": "abc"}, 404, "Invalid course id"),
        ({"course": "999999"}, 404, "Course 999999 was not found"),
        ({"as_of": "30/06/2024"}, 400, "Invalid date"),
    ],
)
def test_invalid_filter_gets_clear_message(staff_client, query, status, message):
    page = staff_client.get(DASHBOARD, query)
    download = staff_client.get(OUTCOMES_CSV, query)

    assert page.status_code == status
    assert message in page.content.decode()
    assert download.status_code == status
    assert message in download.content.decode()


def test_invalid_course_rejected_by_engagement_csv(staff_client):
    response = staff_client.get(ENGAGEMENT_CSV, {"course": "abc"})

    assert response.status_code == 404
    assert "Invalid course id" in response.content.decode()


def test_course_filter_limits_trained_accounts(staff_client):
    first = add_cohort(5, seed=3)
    add_cohort(7, seed=4)

    response = staff_client.get(
        OUTCOMES_CSV, {"course": first.pk, "as_of": AS_OF.isoformat()}
    )

    churn = next(row for row in read_csv(response) if row["metric"] == "churn_rate")
    assert churn["course_id"] == str(first.pk)
    assert int(churn["trained_n"]) == 5
    # add_cohort(size) makes 3 * size accounts, of which size are trained.
    assert int(churn["untrained_n"]) == (3 * 5 - 5) + 3 * 7


def test_outcomes_csv_matches_service(staff_client):
    add_cohort(40, seed=5)
    expected = outcome_comparison(as_of=AS_OF)

    response = staff_client.get(OUTCOMES_CSV, {"as_of": AS_OF.isoformat()})

    rows = read_csv(response)
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "outcomes.csv" in response["Content-Disposition"]
    assert [row["metric"] for row in rows] == [m.key for m in expected.metrics]
    for row, metric in zip(rows, expected.metrics, strict=True):
        assert row["as_of"] == AS_OF.isoformat()
        assert int(row["trained_n"]) == metric.trained.n
        assert int(row["untrained_n"]) == metric.untrained.n
        assert row["verdict"] == metric.verdict.value
        if metric.difference.estimate is None:
            assert row["difference"] == ""
        else:
            assert float(row["difference"]) == pytest.approx(metric.difference.estimate)
        if metric.difference.p_value is None:
            assert row["p_value"] == ""
        else:
            assert float(row["p_value"]) == pytest.approx(metric.difference.p_value)


def test_engagement_csv_has_row_per_module(staff_client):
    course = add_cohort(6, seed=6)
    make_course((), slug="no-modules")
    expected = {item.course_id: item for item in learning_engagement()}

    response = staff_client.get(ENGAGEMENT_CSV)

    rows = read_csv(response)
    course_rows = [row for row in rows if row["course_id"] == str(course.pk)]
    assert response.status_code == 200
    assert "engagement.csv" in response["Content-Disposition"]
    assert len(rows) == 2 + 1
    assert [row["module_order"] for row in course_rows] == ["1", "2"]
    assert [int(row["reached"]) for row in course_rows] == [
        module.reached for module in expected[course.pk].modules
    ]
    assert int(course_rows[0]["enrolled"]) == expected[course.pk].enrolled
    assert int(course_rows[0]["completed"]) == expected[course.pk].completed


def test_csv_escapes_formula_titles(staff_client):
    course = make_course((1,))
    course.title = "=HYPERLINK(0)"
    course.save(update_fields=["title"])

    response = staff_client.get(ENGAGEMENT_CSV, {"course": course.pk})

    assert read_csv(response)[0]["course"] == "'=HYPERLINK(0)"


def dashboard_queries(client) -> int:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(DASHBOARD, {"as_of": AS_OF.isoformat()})
    assert response.status_code == 200
    return len(queries)


def test_dashboard_query_count_constant(staff_client):
    # The first visit creates the impact settings row; later ones only read it.
    ImpactSettings.load()
    add_cohort(5, seed=7)
    few = dashboard_queries(staff_client)
    for seed in range(8, 11):
        add_cohort(30, seed=seed)

    many = dashboard_queries(staff_client)

    assert many == few


SCORES_CSV = reverse("metrics:scores-csv")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"plan": "Gold"}, "Invalid plan 'Gold'"),
        ({"stage": "nowhere"}, "Lifecycle stage 'nowhere' was not found"),
        ({"start": "2024-13-01"}, "Invalid date '2024-13-01' for start"),
        ({"start": "2024-05-02", "end": "2024-05-01"}, "is after its end"),
    ],
)
def test_invalid_scope_rejected_everywhere(staff_client, query, message):
    for url in (DASHBOARD, OUTCOMES_CSV, ENGAGEMENT_CSV, SCORES_CSV):
        response = staff_client.get(url, query)

        assert response.status_code == 400, url
        assert message in html.unescape(response.content.decode()), url


def test_dashboard_draws_charts_with_bundled_library(staff_client):
    course = make_course((1, 3, 1))
    lessons = lessons_by_module(course)
    for _ in range(4):
        make_enrollment(
            make_contact(),
            course,
            EnrollmentStatus.WITHDRAWN,
            furthest_lesson=lessons[1][-1],
        )
    make_enrollment(
        make_contact(), course, EnrollmentStatus.FAILED, furthest_lesson=lessons[0][0]
    )

    response = staff_client.get(DASHBOARD, {"course": course.pk})

    content = response.content.decode()
    charts = response.context["charts"]
    assert "metrics/vendor/chartjs/chart.umd.min.js" in content
    assert "metrics/charts.js" in content
    assert "https://" not in content.split("<main")[0]
    assert 'id="dashboard-charts"' in content
    assert f'data-chart="funnel-{course.pk}"' in content
    assert charts[f"funnel-{course.pk}"]["highlight"] == 1
    assert "most who stopped, stopped here" in content
    assert "Time per module is not shown" in content


def test_scores_csv_has_bin_rows(staff_client):
    course = make_course((1,))
    for score in (5, 15, 15, 100):
        make_enrollment(make_contact(), course, score=score)

    response = staff_client.get(SCORES_CSV, {"course": course.pk})

    rows = read_csv(response)
    course_rows = [row for row in rows if row["source"] == "course"]
    assert response.status_code == 200
    assert "scores.csv" in response["Content-Disposition"]
    assert [int(row["count"]) for row in course_rows[:10]] == [
        1, 2, 0, 0, 0, 0, 0, 0, 0, 1
    ]  # fmt: skip
    assert course_rows[10]["bin"] == "outside_0_100"
    assert len(rows) == 2 * 11


def test_plan_filter_narrows_engagement_csv(staff_client):
    course = make_course((1,))
    for plan in (Plan.PRO, Plan.PRO, Plan.BASIC):
        make_enrollment(make_contact(make_account(plan=plan)), course)

    response = staff_client.get(ENGAGEMENT_CSV, {"plan": Plan.PRO})

    (row,) = read_csv(response)
    assert int(row["enrolled"]) == 2


def test_filtered_dashboard_query_count_constant(staff_client):
    query = {"as_of": AS_OF.isoformat(), "plan": Plan.PRO, "stage": "adoption"}
    ImpactSettings.load()
    add_cohort(5, seed=12)
    with CaptureQueriesContext(connection) as few:
        staff_client.get(DASHBOARD, query)
    for seed in range(13, 15):
        add_cohort(30, seed=seed)

    with CaptureQueriesContext(connection) as many:
        staff_client.get(DASHBOARD, query)

    assert len(many) == len(few)


def test_bundled_chart_library_keeps_licence():
    vendor = Path(metrics.__file__).parent / "static/metrics/vendor/chartjs"

    header = (vendor / "chart.umd.min.js").read_text()[:200]
    licence = (vendor / "LICENSE.md").read_text()

    assert "Chart.js v4.5.1" in header
    assert "Released under the MIT License" in header
    assert licence.startswith("The MIT License (MIT)")


def test_dashboard_says_facts_not_precomputed(staff_client):
    add_cohort(5, seed=2)

    response = staff_client.get(DASHBOARD, {"as_of": AS_OF.isoformat()})

    assert "The facts are not precomputed yet" in response.content.decode()


def test_dashboard_shows_when_facts_were_refreshed(staff_client):
    add_cohort(5, seed=2)
    refresh_facts(now=datetime(2024, 7, 1, 6, 40, tzinfo=UTC))

    response = staff_client.get(DASHBOARD, {"as_of": AS_OF.isoformat()})

    content = response.content.decode()
    assert "precomputed as of\n    2024-07-01 06:40 UTC" in content
    assert "The facts are not precomputed yet" not in content


def test_outcomes_csv_same_before_and_after_refresh(staff_client):
    add_cohort(30, seed=8)
    query = {"as_of": AS_OF.isoformat()}
    live = staff_client.get(OUTCOMES_CSV, query).content

    refresh_facts()
    stored = staff_client.get(OUTCOMES_CSV, query).content

    assert stored == live


def test_impact_and_engagement_csv_same_after_refresh(staff_client):
    add_cohort(30, seed=9)
    live = [staff_client.get(url).content for url in (ENGAGEMENT_CSV, IMPACT_CSV)]

    refresh_facts()
    stored = [staff_client.get(url).content for url in (ENGAGEMENT_CSV, IMPACT_CSV)]

    assert stored == live


def test_refresh_time_shown_in_utc(staff_client, settings):
    settings.TIME_ZONE = "America/New_York"
    add_cohort(5, seed=2)
    refresh_facts(now=datetime(2024, 7, 1, 2, 40, tzinfo=UTC))

    response = staff_client.get(DASHBOARD, {"as_of": AS_OF.isoformat()})

    assert "2024-07-01 02:40 UTC" in response.content.decode()
