"""The changes around training on the dashboard page and in changes.csv."""

import csv
import html
import io
from datetime import date, timedelta

import numpy as np
import pytest
from django.urls import reverse

from courses.models import EnrollmentStatus, LearningPath
from metrics.changes import outcome_changes
from metrics.cohorts import Cohort
from metrics.exports import CHANGES_HEADER
from metrics.models import CourseTopic
from tests.factories import make_account, make_contact, make_ticket
from tests.metrics.builders import at_noon, make_course, make_enrollment
from tests.metrics.test_changes import (
    ADDED_AT,
    AS_OF,
    draw_usage,
    save_trained_account,
    save_usage,
    subscription,
)

pytestmark = pytest.mark.django_db

DASHBOARD = reverse("metrics:dashboard")
CHANGES_CSV = reverse("metrics:changes-csv")


@pytest.fixture
def staff_client(client, django_user_model):
    user = django_user_model.objects.create_user(username="manager", is_staff=True)
    client.force_login(user)
    return client


def read_csv(response) -> list[dict]:
    return list(csv.DictReader(io.StringIO(response.content.decode())))


def test_page_states_comparison_is_observational(staff_client):
    response = staff_client.get(DASHBOARD, {"as_of": AS_OF.isoformat()})
    text = html.unescape(response.content.decode())

    assert response.status_code == 200
    assert "Changes around training" in text
    assert "Trained against untrained is observational." in text
    assert "measures an effect" in text


def test_small_cohort_shows_warning_on_page(staff_client):
    course = make_course((1,))
    contact = make_contact(added_at=ADDED_AT)
    make_enrollment(
        contact,
        course,
        status=EnrollmentStatus.COMPLETED,
        completed_at=at_noon(date(2024, 4, 1)),
    )

    response = staff_client.get(
        DASHBOARD, {"as_of": AS_OF.isoformat(), "course": course.pk}
    )

    text = response.content.decode()
    section = text[text.index('id="changes-heading"') : text.index('id="engagement')]
    assert "Too few accounts for a verdict" in section


def test_changes_csv_matches_service(staff_client):
    course = make_course((1,))
    CourseTopic.objects.create(course=course, topic="Billing")
    save_usage(draw_usage(np.random.default_rng(5), 5, 5, effect=1.0), course)
    expected = outcome_changes(Cohort(course=course), as_of=AS_OF)

    response = staff_client.get(
        CHANGES_CSV, {"as_of": AS_OF.isoformat(), "course": course.pk}
    )
    rows = read_csv(response)

    assert response["Content-Disposition"] == 'attachment; filename="changes.csv"'
    assert list(rows[0]) == CHANGES_HEADER
    assert [row["metric"] for row in rows] == [
        "usage",
        "health",
        "topic_tickets",
        "expansion_change",
        "expansion",
        "topic_tickets:Billing",
    ]
    usage = rows[0]
    assert int(usage["trained_n"]) == expected.usage.trained.n
    assert float(usage["difference"]) == pytest.approx(
        expected.usage.difference.estimate
    )
    assert usage["verdict"] == "small sample"


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ({"rule": "finished"}, 400, "Invalid rule 'finished'"),
        ({"path": "999999"}, 404, "Learning path '999999' was not found"),
        ({"path": "x"}, 404, "Learning path 'x' was not found"),
    ],
)
def test_invalid_cohort_rejected(staff_client, query, status, message):
    for url in (DASHBOARD, CHANGES_CSV):
        response = staff_client.get(url, query)

        assert response.status_code == status, url
        assert message in html.unescape(response.content.decode()), url


def test_course_and_path_together_rejected(staff_client):
    course = make_course((1,))
    path = LearningPath.objects.create(slug="both", title="Both")

    response = staff_client.get(CHANGES_CSV, {"course": course.pk, "path": path.pk})

    assert response.status_code == 400
    assert "not both" in response.content.decode()


def test_passed_rule_on_path_rejected(staff_client):
    path = LearningPath.objects.create(slug="exam-only", title="Exam only")

    response = staff_client.get(DASHBOARD, {"rule": "passed", "path": path.pk})

    assert response.status_code == 400
    assert "'exam-only'" in html.unescape(response.content.decode())


def test_segment_filter_narrows_cohort(staff_client):
    course = make_course((1,))
    save_usage(draw_usage(np.random.default_rng(6), 3, 3, effect=0.0), course)

    everything = read_csv(
        staff_client.get(CHANGES_CSV, {"as_of": AS_OF.isoformat(), "course": course.pk})
    )
    nobody = read_csv(
        staff_client.get(
            CHANGES_CSV,
            {"as_of": AS_OF.isoformat(), "course": course.pk, "segment": "Mining"},
        )
    )

    assert everything[0]["trained_n"] == "3"
    assert nobody[0]["trained_n"] == "0"


def plant_expansions(course) -> None:
    """Four trained accounts and two untrained ones, expanded by hand.

    Trained: two expand after training only, one before and after, one
    never, so 1 of 4 expanded before and 3 of 4 after. Untrained, aligned
    on the same day: one expands before only, one never, so 1 of 2 before
    and 0 of 2 after.
    """
    trained_on = date(2024, 4, 1)
    before = trained_on - timedelta(days=10)
    after = trained_on + timedelta(days=10)
    expanded_in = [(after,), (after,), (before, after), ()]
    for days in expanded_in:
        account = save_trained_account(course, trained_on)
        subscription(account, date(2023, 1, 1), seats=10)
        for day in days:
            subscription(account, day, seats=10, is_upgrade=True)
    for days in [(before,), ()]:
        account = make_account(signup_date=date(2023, 1, 1))
        make_contact(account, added_at=ADDED_AT)
        subscription(account, date(2023, 1, 1), seats=10)
        for day in days:
            subscription(account, day, seats=10, is_upgrade=True)


def test_expansion_change_chart_table_and_csv(staff_client):
    course = make_course((1,))
    plant_expansions(course)
    query = {"course": course.pk, "as_of": AS_OF.isoformat()}

    response = staff_client.get(DASHBOARD, query)
    rows = read_csv(staff_client.get(CHANGES_CSV, query))

    chart = response.context["charts"]["changes-expansion"]
    assert chart["labels"] == ["Trained", "Untrained"]
    assert chart["unit"] == "%"
    assert chart["datasets"][0]["data"] == [25.0, 50.0]
    assert chart["datasets"][1]["data"] == [75.0, 0.0]
    content = response.content.decode()
    assert 'data-chart="changes-expansion"' in content
    assert "Expansion (upgrade or more seats)" in content
    [row] = [row for row in rows if row["metric"] == "expansion_change"]
    assert row["trained_n"] == "4"
    assert row["untrained_n"] == "2"
    assert float(row["trained_before"]) == 0.25
    assert float(row["trained_after"]) == 0.75
    assert float(row["untrained_before"]) == 0.5
    assert float(row["untrained_after"]) == 0.0
    # (3/4 - 1/4) - (0/2 - 1/2): the trained change minus the untrained.
    assert float(row["difference"]) == 1.0


def plant_tickets(course) -> None:
    """Three trained accounts and two untrained ones, with tickets by hand.

    The course covers Billing and Login; a Shipping ticket is not counted.
    Trained: A has two Billing before and one Login after, B one Billing and
    one Login before, C only the Shipping ticket. Untrained, aligned on the
    same day: D has two Billing after, E one Login before.
    """
    trained_on = date(2024, 4, 1)
    tickets = {
        "A": [("Billing", -10), ("Billing", -5), ("Login", 10)],
        "B": [("Billing", -3), ("Login", -3)],
        "C": [("Shipping", 10)],
        "D": [("Billing", 10), ("Billing", 12)],
        "E": [("Login", -10)],
    }
    for name, planted in tickets.items():
        if name in "ABC":
            account = save_trained_account(course, trained_on)
        else:
            account = make_account(signup_date=date(2023, 1, 1))
            make_contact(account, added_at=ADDED_AT)
        for topic, days in planted:
            opened_at = at_noon(trained_on + timedelta(days=days))
            make_ticket(account, opened_at, topic=topic)


def test_ticket_charts_table_and_csv(staff_client):
    course = make_course((1,))
    CourseTopic.objects.create(course=course, topic="Billing")
    CourseTopic.objects.create(course=course, topic="Login")
    plant_tickets(course)
    query = {"course": course.pk, "as_of": AS_OF.isoformat()}

    response = staff_client.get(DASHBOARD, query)
    rows = {
        row["metric"]: row for row in read_csv(staff_client.get(CHANGES_CSV, query))
    }

    # Per account, trained A 2 -> 1, B 2 -> 0, C 0 -> 0; untrained D 0 -> 2,
    # E 1 -> 0. Means: trained 4/3 -> 1/3, untrained 1/2 -> 2/2.
    charts = response.context["charts"]
    per_account = charts["changes-tickets"]
    assert per_account["labels"] == ["Trained", "Untrained"]
    assert per_account["unit"] == "tickets per 30 days"
    assert per_account["datasets"][0]["data"] == [1.3, 0.5]
    assert per_account["datasets"][1]["data"] == [0.3, 1.0]
    # Billing: trained 3 before (A 2, B 1), untrained 2 after (D).
    # Login: trained 1 before (B) and 1 after (A), untrained 1 before (E).
    by_topic = charts["changes-tickets-topics"]
    assert by_topic["labels"] == [
        "Billing (Trained)",
        "Billing (Untrained)",
        "Login (Trained)",
        "Login (Untrained)",
    ]
    assert by_topic["datasets"][0]["data"] == [3, 0, 1, 1]
    assert by_topic["datasets"][1]["data"] == [0, 2, 1, 0]
    content = response.content.decode()
    assert 'data-chart="changes-tickets"' in content
    assert 'data-chart="changes-tickets-topics"' in content
    assert '<th scope="row">Login</th>' in content
    tickets = rows["topic_tickets"]
    assert (tickets["trained_n"], tickets["untrained_n"]) == ("3", "2")
    assert float(tickets["trained_before"]) == pytest.approx(4 / 3)
    assert float(tickets["untrained_after"]) == 1.0
    # (1/3 - 4/3) - (2/2 - 1/2): the trained change minus the untrained.
    assert float(tickets["difference"]) == pytest.approx(-1.5)
    login = rows["topic_tickets:Login"]
    assert [login[column] for column in ("trained_before", "trained_after")] == [
        "1",
        "1",
    ]
    assert [login[column] for column in ("untrained_before", "untrained_after")] == [
        "1",
        "0",
    ]
    assert "topic_tickets:Shipping" not in rows


def test_no_topics_no_topic_chart(staff_client):
    course = make_course((1,))
    query = {"course": course.pk, "as_of": AS_OF.isoformat()}

    response = staff_client.get(DASHBOARD, query)

    assert "changes-tickets" in response.context["charts"]
    assert "changes-tickets-topics" not in response.context["charts"]
    assert 'data-chart="changes-tickets-topics"' not in response.content.decode()
