"""The migration that records lesson snapshots of existing courses."""

import hashlib
import importlib
import json

import pytest
from django.apps import apps
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from courses.models import Course, CourseVersion, Lesson
from courses.snapshots import snapshot_fingerprint, take_snapshot
from tests.factories import NOW
from tests.portal.helpers import make_course

pytestmark = pytest.mark.django_db

migration = importlib.import_module("courses.migrations.0014_courseversion_snapshot")
THIS_MIGRATION = ("courses", "0014_courseversion_snapshot")


def legacy_fingerprint(course):
    """The fingerprint versions stored before snapshots, as that code computed it."""
    rows = list(
        Lesson.objects.filter(module__course_id=course.pk)
        .order_by("id")
        .values_list(
            "id", "kind", "is_required", "title", "body", "url", "file", "pass_mark"
        )
    )
    payload = json.dumps(
        [course.completion_rule, rows], default=str, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def legacy_version(course, number, fingerprint):
    Course.objects.filter(pk=course.pk).update(version=number)
    return CourseVersion.objects.create(
        course=course,
        number=number,
        fingerprint=fingerprint,
        lesson_count=1,
        published_at=NOW,
    )


def test_published_course_gets_first_version():
    course, _lessons = make_course(2)
    draft, _draft_lessons = make_course(1, published=False)

    migration.record_snapshots(apps, None)

    first = CourseVersion.objects.get(course=course)
    assert first.number == 1
    assert first.snapshot == take_snapshot(course)
    assert first.fingerprint == snapshot_fingerprint(take_snapshot(course))
    assert first.lesson_count == 2
    assert not CourseVersion.objects.filter(course=draft).exists()


def test_unchanged_legacy_version_gets_snapshot():
    unchanged, _lessons = make_course(1)
    version = legacy_version(unchanged, 2, legacy_fingerprint(unchanged))
    edited, _edited_lessons = make_course(1)
    stale = legacy_version(edited, 2, "0" * 64)

    migration.record_snapshots(apps, None)

    version.refresh_from_db()
    stale.refresh_from_db()
    assert version.snapshot == take_snapshot(unchanged)
    assert version.fingerprint == snapshot_fingerprint(version.snapshot)
    assert stale.snapshot is None
    assert stale.fingerprint == "0" * 64
    # Neither course is at version 1, so neither gets a version 1 row.
    assert CourseVersion.objects.count() == 2


def test_second_run_changes_nothing():
    make_course(1)
    migration.record_snapshots(apps, None)
    before = list(
        CourseVersion.objects.values_list("pk", "fingerprint", "published_at")
    )

    migration.record_snapshots(apps, None)

    after = list(CourseVersion.objects.values_list("pk", "fingerprint", "published_at"))
    assert after == before


def test_runs_with_historical_models():
    course, _lessons = make_course(1)
    state = MigrationExecutor(connection).loader.project_state(THIS_MIGRATION)

    migration.record_snapshots(state.apps, None)

    assert CourseVersion.objects.get(course=course).snapshot == take_snapshot(course)


def test_reverse_removes_recorded_versions():
    recorded, _lessons = make_course(1)
    published, _published_lessons = make_course(1)
    kept = legacy_version(published, 2, "0" * 64)
    migration.record_snapshots(apps, None)

    migration.remove_snapshots(apps, None)

    assert not CourseVersion.objects.filter(course=recorded).exists()
    assert list(CourseVersion.objects.values_list("pk", flat=True)) == [kept.pk]
