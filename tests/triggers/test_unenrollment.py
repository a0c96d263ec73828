"""Unenrolling a trigger's own enrollments when its subjects stop matching."""

from datetime import timedelta

import pytest

from courses.models import Enrollment
from courses.services import enroll
from tests.factories import NOW, make_account, make_contact, make_event
from tests.triggers.factories import make_course, make_trigger
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

INACTIVE = {"kind": "inactivity", "days": 10}
DAY = timedelta(days=1)


def status_of(contact, course):
    return Enrollment.objects.get(contact=contact, course=course).status


def test_unenrolls_only_own_active_enrollments():
    course = make_course()
    other_course = make_course()
    stops = make_contact()
    keeps_matching = make_contact()
    manual = make_contact()
    completed = make_contact()
    trigger = make_trigger(
        INACTIVE, slug="quiet", enroll_course=course, unenroll_when_unmatched=True
    )
    other = make_trigger(INACTIVE, slug="other", enroll_course=other_course)
    # Enrolled by hand before the trigger fired, so the trigger adds nothing.
    enroll(manual, course, source="manual", at=NOW - DAY)
    run_sweep(NOW, triggers=[trigger, other])
    Enrollment.objects.filter(contact=completed, course=course).update(
        status="completed", completed_at=NOW + DAY
    )

    for contact in (stops, manual, completed):
        make_event(contact, NOW + DAY)
    run_sweep(NOW + 2 * DAY, triggers=[trigger, other])

    ended = Enrollment.objects.get(contact=stops, course=course)
    assert ended.status == "unenrolled"
    assert ended.ended_at == NOW + 2 * DAY
    assert status_of(keeps_matching, course) == "active"
    assert Enrollment.objects.get(contact=manual, course=course).source == "manual"
    assert status_of(manual, course) == "active"
    assert status_of(completed, course) == "completed"
    # The other trigger does not unenroll, and its enrollment is not ours.
    assert status_of(stops, other_course) == "active"


def test_unenrollment_off_by_default():
    course = make_course()
    contact = make_contact()
    trigger = make_trigger(INACTIVE, enroll_course=course)
    run_sweep(NOW, triggers=[trigger])
    make_event(contact, NOW + DAY)

    run_sweep(NOW + 2 * DAY, triggers=[trigger])

    assert status_of(contact, course) == "active"


def test_account_trigger_keeps_contacts_of_matching_accounts():
    course = make_course()
    quiet = make_account()
    busy = make_account()
    quiet_champion = make_contact(quiet, is_champion=True)
    busy_champion = make_contact(busy, is_champion=True)
    trigger = make_trigger(
        INACTIVE,
        subject_type="account",
        enroll_course=course,
        unenroll_when_unmatched=True,
    )
    run_sweep(NOW, triggers=[trigger])
    make_event(busy_champion, NOW + DAY)

    run_sweep(NOW + 2 * DAY, triggers=[trigger])

    assert status_of(quiet_champion, course) == "active"
    assert status_of(busy_champion, course) == "unenrolled"


def test_firing_again_restores_enrollment():
    course = make_course()
    contact = make_contact()
    trigger = make_trigger(
        INACTIVE,
        occurrence="each_new_match",
        enroll_course=course,
        unenroll_when_unmatched=True,
    )
    run_sweep(NOW, triggers=[trigger])
    make_event(contact, NOW + DAY)
    run_sweep(NOW + 2 * DAY, triggers=[trigger])
    assert status_of(contact, course) == "unenrolled"

    run_sweep(NOW + 12 * DAY, triggers=[trigger])

    enrollment = Enrollment.objects.get(contact=contact, course=course)
    assert enrollment.status == "active"
    assert enrollment.ended_at is None
    assert enrollment.enrolled_at == NOW + 12 * DAY


def test_portal_hides_unenrolled():
    from courses.services import enrollments_for

    course = make_course()
    contact = make_contact()
    trigger = make_trigger(INACTIVE, enroll_course=course, unenroll_when_unmatched=True)
    run_sweep(NOW, triggers=[trigger])
    assert list(enrollments_for(contact).values_list("course_id", flat=True)) == [
        course.pk
    ]
    make_event(contact, NOW + DAY)

    run_sweep(NOW + 2 * DAY, triggers=[trigger])

    assert not enrollments_for(contact).exists()
