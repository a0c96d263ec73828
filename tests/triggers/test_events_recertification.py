"""Publishing a version that requires recertification reaches the event path."""

import pytest

from courses import versions
from courses.models import Enrollment, Lesson, LessonKind, Module
from courses.services import complete_lesson, enroll
from courses.versions import publish_version
from tests.factories import make_contact
from tests.triggers.factories import make_course, make_template, make_trigger
from triggers.models import Firing, OutboxEmail, Sweep

pytestmark = pytest.mark.django_db


def course_of_one_lesson():
    course = make_course()
    module = Module.objects.create(course=course, title="Basics", order=1)
    Lesson.objects.create(module=module, title="Lesson 1", kind=LessonKind.TEXT)
    return course


def add_lesson(course, title):
    return Lesson.objects.create(
        module=course.modules.get(), title=title, order=9, kind=LessonKind.TEXT
    )


def completed_by(contact, course):
    """Complete every lesson; no on_commit callback runs outside a capture."""
    enrollment, _created = enroll(contact, course)
    for lesson in Lesson.objects.filter(module__course=course):
        complete_lesson(enrollment, lesson)
    enrollment.refresh_from_db()
    assert enrollment.status == "completed"
    return enrollment


def recertification_trigger(course):
    return make_trigger(
        {"kind": "recertification_due", "course": course.slug},
        email_template=make_template(),
    )


def test_publish_announces_marked_accounts(announced):
    course = course_of_one_lesson()
    first = make_contact()
    second = make_contact(first.account)
    elsewhere = make_contact()
    for contact in (first, second, elsewhere):
        completed_by(contact, course)
    add_lesson(course, "Audit logs")
    announced.clear()

    publish_version(course, requires_recertification=True)

    # One announcement per account, however many of its learners were marked.
    expected = sorted(
        [(first.account_id, "learning"), (elsewhere.account_id, "learning")]
    )
    assert sorted(announced) == expected


def test_publish_without_recertification_announces_nothing(announced):
    course = course_of_one_lesson()
    completed_by(make_contact(), course)
    add_lesson(course, "Audit logs")
    announced.clear()

    publish_version(course, requires_recertification=False)

    assert announced == []


def test_publish_over_limit_left_to_sweep(announced, monkeypatch):
    monkeypatch.setattr(versions, "MAX_ANNOUNCED_ACCOUNTS", 1)
    course = course_of_one_lesson()
    completed_by(make_contact(), course)
    completed_by(make_contact(), course)
    add_lesson(course, "Audit logs")
    announced.clear()

    version = publish_version(course, requires_recertification=True)

    assert version.recertification_count == 2
    assert announced == []


def test_publish_fires_recertification_trigger(django_capture_on_commit_callbacks):
    course = course_of_one_lesson()
    behind = make_contact()
    completed_by(behind, course)
    # Still active: recertification does not concern them.
    active, _created = enroll(make_contact(), course)
    trigger = recertification_trigger(course)
    add_lesson(course, "Audit logs")

    with django_capture_on_commit_callbacks(execute=True):
        publish_version(course, requires_recertification=True)

    fired = list(Firing.objects.filter(trigger=trigger).values_list("contact_id"))
    assert fired == [(behind.pk,)]
    assert OutboxEmail.objects.get().contact == behind
    # Evaluated by the event path for the one account, with no sweep run.
    assert list(Sweep.objects.values_list("triggers_evaluated", flat=True)) == [1]
    assert Enrollment.objects.get(pk=active.pk).recertification_version is None


def test_second_publish_sends_no_second_email(django_capture_on_commit_callbacks):
    course = course_of_one_lesson()
    behind = make_contact()
    completed_by(behind, course)
    trigger = recertification_trigger(course)
    add_lesson(course, "Audit logs")
    with django_capture_on_commit_callbacks(execute=True):
        publish_version(course, requires_recertification=True)
    add_lesson(course, "Single sign-on")

    with django_capture_on_commit_callbacks(execute=True):
        second = publish_version(course, requires_recertification=True)

    # Marked again by version 3, and evaluated again, but it fired once.
    assert second.recertification_count == 1
    assert Sweep.objects.count() == 2
    assert Firing.objects.filter(trigger=trigger).count() == 1
    assert OutboxEmail.objects.filter(contact=behind).count() == 1
