"""Add lesson snapshots to course versions, and record them for existing courses.

A course published before versions existed is at version 1 with no version
row, so its first new version could not list what changed. This records
version 1 of each such published course from its current lessons. A
course whose latest version row has no snapshot gets one when its lessons
still match that version's fingerprint. Otherwise its changes since then
are unknown, and the code treats the version as having no snapshot.
"""

import hashlib
import json

from django.db import migrations, models
from django.utils import timezone

from courses.snapshots import SnapshotModels, snapshot_fingerprint, snapshot_of

# The note on the version 1 rows this migration records, by which the
# reverse finds them.
RECORDED_NOTE = "Lessons as found when version snapshots were added."

# The lesson columns of the fingerprint that versions stored before they
# had snapshots, in this order, with the completion rule before them.
OLD_FINGERPRINT_FIELDS = (
    "id",
    "kind",
    "is_required",
    "title",
    "body",
    "url",
    "file",
    "pass_mark",
)


def _models(apps):
    return SnapshotModels(
        lesson=apps.get_model("courses", "Lesson"),
        checklist_item=apps.get_model("courses", "ChecklistItem"),
        question=apps.get_model("courses", "Question"),
        choice=apps.get_model("courses", "Choice"),
    )


def _old_fingerprint(lesson_model, course):
    rows = list(
        lesson_model.objects.filter(module__course_id=course.pk)
        .order_by("id")
        .values_list(*OLD_FINGERPRINT_FIELDS)
    )
    payload = json.dumps(
        [course.completion_rule, rows], default=str, separators=(",", ":")
    )
    return hashlib.sha256(payload.encode()).hexdigest()


def record_snapshots(apps, schema_editor):
    Course = apps.get_model("courses", "Course")
    CourseVersion = apps.get_model("courses", "CourseVersion")
    snapshot_models = _models(apps)
    now = timezone.now()

    unversioned = Course.objects.filter(is_published=True, version=1).exclude(
        pk__in=CourseVersion.objects.values("course_id")
    )
    for course in unversioned.order_by("pk"):
        snapshot = snapshot_of(course.pk, course.completion_rule, snapshot_models)
        CourseVersion.objects.create(
            course=course,
            number=1,
            fingerprint=snapshot_fingerprint(snapshot),
            snapshot=snapshot,
            lesson_count=len(snapshot["lessons"]),
            note=RECORDED_NOTE,
            published_at=now,
        )

    for course in Course.objects.filter(versions__isnull=False).distinct():
        latest = CourseVersion.objects.filter(course=course).order_by("-number")[0]
        if latest.snapshot is not None:
            continue
        if latest.fingerprint != _old_fingerprint(snapshot_models.lesson, course):
            continue
        snapshot = snapshot_of(course.pk, course.completion_rule, snapshot_models)
        latest.snapshot = snapshot
        latest.fingerprint = snapshot_fingerprint(snapshot)
        latest.save(update_fields=["snapshot", "fingerprint"])


def remove_snapshots(apps, schema_editor):
    # Versions published from the admin are kept. NOTE: a row whose snapshot
    # was filled keeps the new fingerprint, so before this migration the
    # admin reports its course as changed until the next version.
    CourseVersion = apps.get_model("courses", "CourseVersion")
    CourseVersion.objects.filter(
        number=1, published_by__isnull=True, note=RECORDED_NOTE
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("courses", "0013_video_watch_columns"),
    ]

    operations = [
        migrations.AddField(
            model_name="courseversion",
            name="snapshot",
            field=models.JSONField(blank=True, null=True),
        ),
        migrations.RunPython(record_snapshots, remove_snapshots),
    ]
