"""Triggers on recertification and certificate expiry email the right learners."""

from datetime import timedelta

import pytest

from courses.models import Certificate, Lesson
from courses.services import complete_lesson
from courses.versions import publish_version
from tests.factories import NOW, make_contact
from tests.portal.helpers import enroll_contact, make_course
from tests.triggers.factories import make_template, make_trigger
from triggers.models import Firing, OutboxEmail
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

PUBLISHED = NOW + timedelta(days=1)
SWEPT = NOW + timedelta(days=2)


def completed_learner(course, lessons):
    contact = make_contact()
    enrollment = enroll_contact(contact, course)
    for lesson in lessons:
        complete_lesson(enrollment, lesson, at=NOW)
    return contact, enrollment


def test_sweep_emails_learners_due_for_recertification():
    course, lessons = make_course(2)
    due, enrollment = completed_learner(course, lessons)
    # A learner who has not completed is not asked to recertify.
    enroll_contact(make_contact(), course)
    new_lesson = Lesson.objects.create(
        module=lessons[0].module, title="Security update", order=99
    )
    publish_version(course, requires_recertification=True, at=PUBLISHED)
    trigger = make_trigger(
        {"kind": "recertification_due", "course": course.slug},
        email_template=make_template(),
        is_active=True,
    )

    run_sweep(SWEPT, triggers=[trigger])

    assert list(Firing.objects.values_list("contact_id", flat=True)) == [due.pk]
    assert list(OutboxEmail.objects.values_list("contact_id", flat=True)) == [due.pk]

    # Once the learner completes the new lesson, they are recertified and a
    # later sweep finds nobody left to remind.
    complete_lesson(enrollment, new_lesson, at=SWEPT)
    second = run_sweep(SWEPT + timedelta(days=1), triggers=[trigger])

    assert second.fired == 0
    assert OutboxEmail.objects.count() == 1


def test_sweep_before_publication_fires_for_nobody():
    course, lessons = make_course(1)
    completed_learner(course, lessons)
    Lesson.objects.create(module=lessons[0].module, title="Security update", order=99)
    publish_version(course, requires_recertification=True, at=PUBLISHED)
    trigger = make_trigger(
        {"kind": "recertification_due", "course": course.slug}, is_active=True
    )

    report = run_sweep(PUBLISHED - timedelta(seconds=1), triggers=[trigger])

    assert report.fired == 0


def test_version_without_recertification_fires_for_nobody():
    course, lessons = make_course(1)
    completed_learner(course, lessons)
    Lesson.objects.create(module=lessons[0].module, title="Optional extra", order=99)
    publish_version(course, requires_recertification=False, at=PUBLISHED)
    trigger = make_trigger(
        {"kind": "recertification_due", "course": course.slug}, is_active=True
    )

    report = run_sweep(SWEPT, triggers=[trigger])

    assert report.fired == 0


def test_sweep_reminds_before_certificate_expires():
    course, lessons = make_course(1)
    expiring, enrollment = completed_learner(course, lessons)
    Certificate.objects.filter(enrollment=enrollment).update(
        expires_at=SWEPT + timedelta(days=20)
    )
    _lasting, _enrollment = completed_learner(course, lessons)
    trigger = make_trigger(
        {"kind": "certificate_expires_within", "course": course.slug, "days": 30},
        email_template=make_template(),
        is_active=True,
    )

    run_sweep(SWEPT, triggers=[trigger])

    assert list(OutboxEmail.objects.values_list("contact_id", flat=True)) == [
        expiring.pk
    ]
