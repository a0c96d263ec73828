"""A sweep switches off a trigger whose condition names a deleted course."""

import pytest

from courses.models import Course
from tests.factories import NOW, make_contact
from tests.triggers.factories import make_course, make_trigger
from triggers.models import Firing, Trigger
from triggers.services import run_sweep

pytestmark = pytest.mark.django_db


def test_deleted_course_disables_trigger_only():
    make_contact()
    course = make_course(slug="course-x")
    broken = make_trigger({"kind": "course_completed", "course": "course-x"})
    healthy = make_trigger({"kind": "inactivity", "days": 10})
    Course.objects.filter(pk=course.pk).delete()

    report = run_sweep(NOW)

    broken.refresh_from_db()
    assert broken.is_active is False
    assert "course 'course-x' does not exist" in broken.disabled_reason
    assert report.failures == ()
    assert report.fired == 1
    assert Firing.objects.filter(trigger=healthy).count() == 1
    assert not Firing.objects.filter(trigger=broken).exists()


def test_disabled_trigger_skipped_next_sweep():
    make_contact()
    course = make_course(slug="course-y")
    make_trigger({"kind": "course_started", "course": "course-y"})
    Course.objects.filter(pk=course.pk).delete()
    run_sweep(NOW)

    report = run_sweep(NOW)

    assert report.triggers_evaluated == 0
    assert Trigger.objects.get().is_active is False


def test_invalid_condition_still_fails_without_disabling():
    make_contact()
    trigger = make_trigger({"kind": "inactivity", "days": 10})
    Trigger.objects.filter(pk=trigger.pk).update(condition={"kind": "no_such_kind"})

    report = run_sweep(NOW)

    trigger.refresh_from_db()
    assert trigger.is_active is True
    assert trigger.disabled_reason == ""
    assert report.failures[0][0] == trigger.slug
