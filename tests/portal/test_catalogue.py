"""The course catalogue: stages, audiences and tags decide who sees a course."""

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from courses.catalogue import (
    CATALOGUE_ORIGIN,
    catalogue_for,
    clean_stage_slugs,
    enroll_from_catalogue,
)
from courses.forms import CourseAdminForm
from courses.models import Course, Enrollment, EnrollmentStatus
from courses.services import end_trigger_enrollments, enroll
from lifecycle.models import Stage
from lifecycle.services import set_stage
from tests.factories import NOW, make_account, make_contact
from tests.portal.helpers import make_course, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def csm():
    return User.objects.create_user("csm", password="a long password", is_staff=True)


def in_stage(slug: str, csm, **contact_fields):
    """Return a contact whose account a CSM moved to the stage."""
    account = make_account()
    set_stage(account, Stage.objects.get(slug=slug), by=csm, reason="test", at=NOW)
    return make_contact(account=account, **contact_fields)


def listed(title: str, **fields) -> Course:
    course, _lessons = make_course(1)
    course.title = title
    course.in_catalogue = True
    for name, value in fields.items():
        setattr(course, name, value)
    course.save()
    return course


def titles(contact, tag: str = "") -> list[str]:
    return [entry.course.title for entry in catalogue_for(contact, tag=tag)]


def test_catalogue_filters_by_stage(csm):
    listed("For everyone")
    listed("Onboarding only", lifecycle_stages=["onboarding"])
    listed("Adoption or expansion", lifecycle_stages=["adoption", "expansion"])
    onboarding = in_stage("onboarding", csm)
    adoption = in_stage("adoption", csm)

    assert titles(onboarding) == ["For everyone", "Onboarding only"]
    assert titles(adoption) == ["Adoption or expansion", "For everyone"]


def test_catalogue_filters_by_audience(csm):
    listed(
        "Admins on Enterprise",
        audience={
            "all": [
                {
                    "kind": "attribute",
                    "field": "contact.role",
                    "op": "==",
                    "value": "admin",
                },
                {
                    "kind": "attribute",
                    "field": "account.plan",
                    "op": "==",
                    "value": "Enterprise",
                },
            ]
        },
    )
    admin = make_contact(account=make_account(plan="Enterprise"), role="admin")
    viewer = make_contact(account=make_account(plan="Enterprise"), role="viewer")
    small_admin = make_contact(account=make_account(plan="Basic"), role="admin")

    assert titles(admin) == ["Admins on Enterprise"]
    assert titles(viewer) == []
    assert titles(small_admin) == []


def test_stage_and_audience_both_apply(csm):
    listed(
        "Onboarding admins",
        lifecycle_stages=["onboarding"],
        audience={
            "kind": "attribute",
            "field": "contact.role",
            "op": "==",
            "value": "admin",
        },
    )

    assert titles(in_stage("onboarding", csm, role="admin")) == ["Onboarding admins"]
    assert titles(in_stage("onboarding", csm, role="viewer")) == []
    assert titles(in_stage("adoption", csm, role="admin")) == []


def test_unlisted_and_unpublished_hidden():
    listed("Listed")
    listed("Draft", is_published=False)
    make_course(1)

    assert titles(make_contact()) == ["Listed"]


def test_catalogue_filters_by_tag():
    listed("Reports", tags=["reports"])
    listed("Billing", tags=["billing", "admin"])

    assert titles(make_contact(), tag="billing") == ["Billing"]
    assert titles(make_contact(), tag="nothing") == []


def test_invalid_audience_hides_course(caplog):
    broken = listed("Broken", audience={"kind": "no_such_kind"})
    listed("Fine")

    assert titles(make_contact()) == ["Fine"]
    assert f"Course {broken.pk} left out of the catalogue" in caplog.text


def test_stage_slugs_checked_against_stages():
    assert clean_stage_slugs([" Adoption", "onboarding", "adoption", ""]) == [
        "adoption",
        "onboarding",
    ]
    with pytest.raises(ValueError, match="'trial' does not exist") as raised:
        clean_stage_slugs(["adoption", "trial"])

    assert "onboarding" in str(raised.value)


def test_enroll_from_catalogue():
    course = listed("Reports")
    contact = make_contact()

    first = enroll_from_catalogue(contact, course.slug, at=NOW)
    again = enroll_from_catalogue(contact, course.slug, at=NOW)

    assert first.pk == again.pk
    assert first.origin == CATALOGUE_ORIGIN
    assert first.source == "manual"
    assert Enrollment.objects.filter(contact=contact).count() == 1


def test_enroll_outside_catalogue_rejected(csm):
    course = listed("Onboarding only", lifecycle_stages=["onboarding"])
    contact = in_stage("adoption", csm)

    with pytest.raises(LookupError):
        enroll_from_catalogue(contact, course.slug)

    assert not Enrollment.objects.exists()


def test_enroll_restores_unenrolled():
    course = listed("Reports")
    contact = make_contact()
    enroll(contact, course, source="automatic", origin="trigger:welcome", at=NOW)
    end_trigger_enrollments("trigger:welcome", at=NOW)

    enrollment = enroll_from_catalogue(contact, course.slug, at=NOW)

    assert enrollment.status == EnrollmentStatus.ACTIVE
    assert enrollment.origin == CATALOGUE_ORIGIN
    assert enrollment.ended_at is None


# --- Pages -------------------------------------------------------------------


def test_catalogue_page_enrolls(client):
    course = listed("Reports", summary="Build a report.", tags=["reports"])
    contact = make_contact()
    sign_in(client, contact)

    page = client.get("/learn/catalogue/").content.decode()
    response = client.post(f"/learn/catalogue/{course.slug}/enroll/")
    after = client.get("/learn/catalogue/").content.decode()

    assert "Build a report." in page
    assert f'action="/learn/catalogue/{course.slug}/enroll/"' in page
    assert response.status_code == 302
    assert response["Location"] == f"/learn/courses/{course.slug}/"
    assert "You are enrolled." in after
    assert Enrollment.objects.get(contact=contact).course == course


def test_enroll_post_outside_catalogue_404(client, csm):
    course = listed("Onboarding only", lifecycle_stages=["onboarding"])
    sign_in(client, in_stage("adoption", csm))

    page = client.get("/learn/catalogue/").content.decode()
    response = client.post(f"/learn/catalogue/{course.slug}/enroll/")

    assert "Onboarding only" not in page
    assert response.status_code == 404
    assert not Enrollment.objects.exists()


def test_catalogue_tag_filter_page(client):
    listed("Reports", tags=["reports"])
    listed("Billing", tags=["billing"])
    sign_in(client, make_contact())

    content = client.get("/learn/catalogue/?tag=billing").content.decode()

    assert "<h2>Billing</h2>" in content
    assert "<h2>Reports</h2>" not in content
    assert 'href="?tag=reports"' in content


def count_catalogue_queries(course_total: int, enrollment_total: int) -> int:
    contact = make_contact(role="admin")
    for number in range(course_total):
        listed(
            f"Listed {number}",
            lifecycle_stages=["onboarding"] if number % 2 else [],
            audience={
                "kind": "attribute",
                "field": "contact.role",
                "op": "==",
                "value": "admin",
            },
        )
    for _ in range(enrollment_total):
        enroll(contact, make_course(1)[0], at=NOW)
    client = sign_in(Client(), contact)

    with CaptureQueriesContext(connection) as queries:
        response = client.get("/learn/catalogue/")
    assert response.status_code == 200
    return len(queries)


def test_catalogue_query_count_constant():
    assert count_catalogue_queries(2, 1) == count_catalogue_queries(6, 8)


# --- Admin ---------------------------------------------------------------------


def course_form(**data) -> CourseAdminForm:
    fields = {
        "slug": "reports",
        "title": "Reports",
        "completion_rule": "required_lessons",
        "issues_certificates": "on",
        "is_published": "on",
    }
    fields.update(data)
    return CourseAdminForm(data=fields)


def test_admin_form_saves_catalogue_fields():
    form = course_form(
        in_catalogue="on",
        lifecycle_stages="adoption, Onboarding",
        tags="Reports, billing, reports",
        audience='contact.role == "admin"',
    )

    assert form.is_valid(), form.errors
    course = form.save()
    assert course.lifecycle_stages == ["adoption", "onboarding"]
    assert course.tags == ["reports", "billing"]
    assert course.audience == {
        "kind": "attribute",
        "field": "contact.role",
        "op": "==",
        "value": "admin",
    }


def test_admin_form_rejects_unknown_stage():
    form = course_form(lifecycle_stages="adoption, trial")

    assert not form.is_valid()
    assert "'trial' does not exist" in form.errors["lifecycle_stages"][0]


def test_admin_form_rejects_bad_audience():
    form = course_form(audience="contact.role ==")

    assert not form.is_valid()
    assert "Line 1" in form.errors["audience"][0]


def test_admin_form_blank_audience_is_none():
    form = course_form(audience="  ")

    assert form.is_valid(), form.errors
    assert form.save().audience is None


def test_admin_form_shows_lists_as_text():
    course = listed("Reports", lifecycle_stages=["adoption"], tags=["a", "b"])

    form = CourseAdminForm(instance=course)

    assert form.initial["lifecycle_stages"] == "adoption"
    assert form.initial["tags"] == "a, b"
