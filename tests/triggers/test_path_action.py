"""A trigger that puts the contacts it fires for on a learning path."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from courses.models import Enrollment, LearningPath, PathCourse, PathEnrollment
from tests.factories import NOW, make_account, make_contact, make_event
from tests.triggers.factories import make_course, make_trigger
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db

INACTIVE_10_DAYS = {"kind": "inactivity", "days": 10}


def make_path():
    """A path of a first course and a second that needs the first completed."""
    first, second = make_course(), make_course()
    path = LearningPath.objects.create(slug="getting-started", title="Getting started")
    PathCourse.objects.create(path=path, course=first, order=1)
    PathCourse.objects.create(path=path, course=second, order=2).prerequisites.set(
        [first]
    )
    return path, first, second


def test_path_trigger_opens_first_course():
    path, first, second = make_path()
    quiet = make_contact()
    busy = make_contact()
    make_event(busy, NOW - timedelta(days=1))
    trigger = make_trigger(INACTIVE_10_DAYS, enroll_path=path)

    run_sweep(NOW, triggers=[trigger])

    on_path = PathEnrollment.objects.get(path=path)
    assert on_path.contact_id == quiet.pk
    assert on_path.source == "automatic"
    assert on_path.origin == trigger.origin
    opened = Enrollment.objects.filter(contact=quiet)
    assert set(opened.values_list("course_id", flat=True)) == {first.pk}
    assert not Enrollment.objects.filter(contact=busy).exists()
    assert not Enrollment.objects.filter(course=second).exists()


def test_second_sweep_adds_nothing():
    path, _, _ = make_path()
    make_contact()
    trigger = make_trigger(INACTIVE_10_DAYS, enroll_path=path, occurrence="daily")
    run_sweep(NOW, triggers=[trigger])

    run_sweep(NOW + timedelta(days=1), triggers=[trigger])

    assert PathEnrollment.objects.count() == 1
    assert Enrollment.objects.count() == 1


def test_path_action_queries_independent_of_firings():
    path, _, _ = make_path()

    def queries(contact_count):
        account = make_account()
        for _ in range(contact_count):
            make_contact(account)
        trigger = make_trigger(INACTIVE_10_DAYS, enroll_path=path)
        with CaptureQueriesContext(connection) as captured:
            report = run_sweep(NOW, triggers=[trigger])
        assert report.fired == contact_count
        assert PathEnrollment.objects.filter(contact__account=account).count() == (
            contact_count
        )
        account.delete()
        return len(captured)

    assert queries(5) == queries(50)
