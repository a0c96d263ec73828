"""certificate_expires_within: learners whose certificate in a course expires soon.

The compiled condition is checked against a plain Python reading of the
certificates, as of several instants, over learners whose certificates
expire soon, later, never, were revoked, or were renewed by recertifying.
"""

from datetime import datetime, timedelta
from typing import Any

import pytest

from conditions import (
    format_condition,
    parse_condition,
)
from courses.models import Certificate, Course, Enrollment, EnrollmentStatus
from customers.models import Contact
from tests.conditions.helpers import matching_contacts
from tests.factories import NOW, make_contact
from tests.triggers.factories import make_course

pytestmark = pytest.mark.django_db

DAYS = 30
AS_OF_INSTANTS = [
    NOW - timedelta(days=400),
    NOW - timedelta(days=20),
    NOW,
    NOW + timedelta(days=25),
    NOW + timedelta(days=90),
]


def certify(contact: Contact, course: Course, *certificates: dict[str, Any]) -> None:
    enrollment = Enrollment.objects.create(
        contact=contact,
        course=course,
        source="manual",
        status=EnrollmentStatus.COMPLETED,
        enrolled_at=NOW - timedelta(days=400),
        completed_at=NOW - timedelta(days=350),
    )
    for version, fields in enumerate(certificates, start=1):
        Certificate.objects.create(
            enrollment=enrollment,
            course_version=version,
            code=f"{enrollment.pk:016d}{version:016d}",
            learner_name="Learner",
            course_title=course.title,
            **fields,
        )


@pytest.fixture
def population() -> dict[str, Contact]:
    security = make_course(slug="security")
    other = make_course(slug="other")
    issued = NOW - timedelta(days=350)

    soon = make_contact()
    certify(
        soon, security, {"issued_at": issued, "expires_at": NOW + timedelta(days=10)}
    )
    # Expires exactly at the end of the window, which is inside it.
    at_end = make_contact()
    certify(
        at_end,
        security,
        {"issued_at": issued, "expires_at": NOW + timedelta(days=DAYS)},
    )
    later = make_contact()
    certify(
        later, security, {"issued_at": issued, "expires_at": NOW + timedelta(days=200)}
    )
    never = make_contact()
    certify(never, security, {"issued_at": issued, "expires_at": None})
    expired = make_contact()
    certify(
        expired, security, {"issued_at": issued, "expires_at": NOW - timedelta(days=1)}
    )
    revoked = make_contact()
    certify(
        revoked,
        security,
        {
            "issued_at": issued,
            "expires_at": NOW + timedelta(days=10),
            "revoked_at": NOW - timedelta(days=5),
        },
    )
    # Recertified 3 days ago: the newer certificate outlasts the old one.
    renewed = make_contact()
    certify(
        renewed,
        security,
        {"issued_at": issued, "expires_at": NOW + timedelta(days=10)},
        {"issued_at": NOW - timedelta(days=3), "expires_at": NOW + timedelta(days=365)},
    )
    elsewhere = make_contact()
    certify(
        elsewhere, other, {"issued_at": issued, "expires_at": NOW + timedelta(days=10)}
    )
    make_contact()
    return {"soon": soon, "at_end": at_end, "renewed": renewed, "revoked": revoked}


def expected_expiring(slug: str, as_of: datetime) -> set[int]:
    """Return the contacts due a reminder as of an instant, read in Python."""
    end = as_of + timedelta(days=DAYS)
    valid: dict[int, list[Certificate]] = {}
    for certificate in Certificate.objects.select_related("enrollment__course"):
        enrollment = certificate.enrollment
        if enrollment.course.slug != slug or certificate.issued_at > as_of:
            continue
        if certificate.revoked_at is not None and certificate.revoked_at <= as_of:
            continue
        valid.setdefault(enrollment.contact_id, []).append(certificate)
    found = set()
    for contact_id, certificates in valid.items():
        expiries = [certificate.expires_at for certificate in certificates]
        expiring = any(e is not None and as_of < e <= end for e in expiries)
        lasting = any(e is None or e > end for e in expiries)
        if expiring and not lasting:
            found.add(contact_id)
    return found


@pytest.mark.parametrize("as_of", AS_OF_INSTANTS)
@pytest.mark.parametrize("slug", ["security", "other"])
def test_matches_python_reading(population, slug, as_of):
    text = f'certificate_expires_within("{slug}", next {DAYS} days)'

    assert matching_contacts(text, as_of) == expected_expiring(slug, as_of)


@pytest.mark.parametrize("as_of", AS_OF_INSTANTS)
def test_not_matches_every_other_contact(population, as_of):
    everyone = set(Contact.objects.values_list("pk", flat=True))
    text = f'not certificate_expires_within("security", next {DAYS} days)'

    expected = everyone - expected_expiring("security", as_of)

    assert matching_contacts(text, as_of) == expected


def test_expected_learners_as_of_now(population):
    found = expected_expiring("security", NOW)

    assert found == {population["soon"].pk, population["at_end"].pk}


def test_revoked_later_counts_before_revocation(population):
    text = f'certificate_expires_within("security", next {DAYS} days)'
    before_revocation = NOW - timedelta(days=6)

    # Its certificate expires 16 days after that instant, and is not yet revoked.
    assert population["revoked"].pk in matching_contacts(text, before_revocation)
    assert population["revoked"].pk not in matching_contacts(text, NOW)


def test_renewed_learner_reminded_before_recertifying(population):
    text = f'certificate_expires_within("security", next {DAYS} days)'

    assert population["renewed"].pk in matching_contacts(text, NOW - timedelta(days=4))
    assert population["renewed"].pk not in matching_contacts(text, NOW)


def test_text_form_round_trips(population):
    text = 'certificate_expires_within("security", next 30 days)'

    tree = parse_condition(text, "contact")

    assert tree == {
        "kind": "certificate_expires_within",
        "course": "security",
        "days": 30,
    }
    assert format_condition(tree) == text
