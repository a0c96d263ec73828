"""Give video progress its own columns: watched intervals and duration.

Video lessons kept their watched intervals in LessonProgress.pages_viewed
and the duration in page_count, the PDF columns. This moves the values of
every video lesson's progress row into the new columns and clears the PDF
columns on those rows. Rows of other lesson kinds keep their pages.
Reversing moves the values back.
"""

from django.db import migrations, models
from django.db.models import F


def move_to_video_columns(apps, schema_editor):
    LessonProgress = apps.get_model("courses", "LessonProgress")
    LessonProgress.objects.filter(lesson__kind="video").update(
        watched_intervals=F("pages_viewed"),
        duration_seconds=F("page_count"),
        pages_viewed=[],
        page_count=None,
    )


def move_to_pdf_columns(apps, schema_editor):
    LessonProgress = apps.get_model("courses", "LessonProgress")
    LessonProgress.objects.filter(lesson__kind="video").update(
        pages_viewed=F("watched_intervals"),
        page_count=F("duration_seconds"),
    )


class Migration(migrations.Migration):
    dependencies = [("courses", "0012_lesson_search_index")]

    operations = [
        migrations.AddField(
            model_name="lessonprogress",
            name="watched_intervals",
            field=models.JSONField(blank=True, default=list),
        ),
        migrations.AddField(
            model_name="lessonprogress",
            name="duration_seconds",
            field=models.PositiveIntegerField(blank=True, null=True),
        ),
        migrations.RunPython(move_to_video_columns, move_to_pdf_columns),
    ]
