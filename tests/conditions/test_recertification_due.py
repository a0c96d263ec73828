"""recertification_due: completed learners that a new course version marks.

The compiled condition is checked against a plain Python reading of the
same rows, over learners in every state an enrollment can be in after a
version is published, as of several instants.
"""

from datetime import datetime, timedelta
from typing import Any

import pytest

from conditions import (
    ConditionSyntaxError,
    format_condition,
    parse_condition,
)
from courses.models import Course, CourseVersion, Enrollment, EnrollmentStatus
from customers.models import Contact
from tests.conditions.helpers import matching_contacts
from tests.factories import NOW, make_contact
from tests.triggers.factories import make_course

pytestmark = pytest.mark.django_db

V2_PUBLISHED = NOW - timedelta(days=10)
V3_PUBLISHED = NOW + timedelta(days=5)
AS_OF_INSTANTS = [
    NOW - timedelta(days=30),
    V2_PUBLISHED - timedelta(seconds=1),
    V2_PUBLISHED,
    NOW,
    V3_PUBLISHED,
]


def publish(course: Course, number: int, at: datetime) -> None:
    CourseVersion.objects.create(
        course=course,
        number=number,
        fingerprint=f"{number:064d}",
        lesson_count=1,
        requires_recertification=True,
        published_at=at,
    )


def enroll(contact: Contact, course: Course, **fields: Any) -> Enrollment:
    defaults: dict[str, Any] = {
        "source": "manual",
        "status": EnrollmentStatus.COMPLETED,
        "enrolled_at": NOW - timedelta(days=60),
        "started_at": NOW - timedelta(days=59),
        "completed_at": NOW - timedelta(days=40),
        "completed_version": 1,
    }
    defaults.update(fields)
    return Enrollment.objects.create(contact=contact, course=course, **defaults)


@pytest.fixture
def population() -> dict[str, Any]:
    """Learners of two courses in each state, with versions published around NOW."""
    security = make_course(slug="security")
    other = make_course(slug="other")
    publish(security, 2, V2_PUBLISHED)
    publish(security, 3, V3_PUBLISHED)
    publish(other, 2, V2_PUBLISHED)

    due = make_contact()
    enroll(due, security, recertification_version=2)
    # Marked by version 3, which is published after NOW.
    marked_later = make_contact()
    enroll(marked_later, security, recertification_version=3)
    recertified = make_contact()
    enroll(
        recertified,
        security,
        completed_version=2,
        recertified_at=NOW - timedelta(days=2),
    )
    never_marked = make_contact()
    enroll(never_marked, security)
    still_learning = make_contact()
    enroll(still_learning, security, status="active", completed_at=None)
    # Completed after NOW, then marked: nothing was completed as of NOW.
    completed_later = make_contact()
    enroll(
        completed_later,
        security,
        completed_at=NOW + timedelta(days=1),
        recertification_version=2,
    )
    # Due in another course only.
    elsewhere = make_contact()
    enroll(elsewhere, other, recertification_version=2)
    enroll(elsewhere, security)
    not_enrolled = make_contact()
    return {"due": due, "not_enrolled": not_enrolled}


def expected_due(slug: str, as_of: datetime) -> set[int]:
    """Return the contacts due as of an instant, read row by row in Python."""
    published = {
        (version.course_id, version.number): version.published_at
        for version in CourseVersion.objects.all()
    }
    found = set()
    for enrollment in Enrollment.objects.select_related("course"):
        if enrollment.course.slug != slug or enrollment.recertification_version is None:
            continue
        if enrollment.completed_at is None or enrollment.completed_at > as_of:
            continue
        marked_at = published.get(
            (enrollment.course_id, enrollment.recertification_version)
        )
        if marked_at is not None and marked_at <= as_of:
            found.add(enrollment.contact_id)
    return found


@pytest.mark.parametrize("as_of", AS_OF_INSTANTS)
@pytest.mark.parametrize("slug", ["security", "other"])
def test_matches_python_reading_of_the_rows(population, slug, as_of):
    assert matching_contacts(f'recertification_due("{slug}")', as_of) == expected_due(
        slug, as_of
    )


@pytest.mark.parametrize("as_of", AS_OF_INSTANTS)
def test_not_matches_every_other_contact(population, as_of):
    everyone = set(Contact.objects.values_list("pk", flat=True))

    found = matching_contacts('not recertification_due("security")', as_of)

    assert found == everyone - expected_due("security", as_of)
    assert population["not_enrolled"].pk in found


def test_due_only_from_the_marking_version_publication(population):
    due = population["due"].pk

    assert due not in matching_contacts(
        'recertification_due("security")', V2_PUBLISHED - timedelta(seconds=1)
    )
    assert due in matching_contacts('recertification_due("security")', V2_PUBLISHED)


def test_population_has_due_and_not_due_learners(population):
    # A population where nobody or everybody matches would prove little.
    found = expected_due("security", NOW)

    assert found == {population["due"].pk}
    # Then also the learner marked by version 3 and the one who completed later.
    assert len(expected_due("security", V3_PUBLISHED)) == 3


def test_text_and_json_forms_round_trip(population):
    tree = parse_condition('recertification_due("security")', "contact")

    assert tree == {"kind": "recertification_due", "course": "security"}
    assert format_condition(tree) == 'recertification_due("security")'


def test_missing_course_is_rejected():
    with pytest.raises(ConditionSyntaxError, match="course 'gone' does not exist"):
        parse_condition('recertification_due("gone")', "contact")


def test_course_is_required():
    with pytest.raises(ConditionSyntaxError):
        parse_condition("recertification_due", "contact")


def test_account_conditions_reach_it_through_any_contact(population):
    text = 'any_contact(recertification_due("security"))'

    tree = parse_condition(text, "account")

    assert format_condition(tree) == text
