"""The migration that moves video progress out of the PDF columns."""

import importlib

import pytest
from django.apps import apps

from courses.models import LessonKind, LessonProgress
from courses.services import record_lesson_view
from tests.factories import NOW, make_contact
from tests.portal.helpers import enroll_contact, make_course

pytestmark = pytest.mark.django_db

migration = importlib.import_module("courses.migrations.0013_video_watch_columns")


@pytest.fixture
def rows():
    """A video and a PDF progress row as stored before the migration."""
    contact = make_contact()
    course, lessons = make_course(2)
    video, pdf = lessons
    video.kind = LessonKind.VIDEO
    video.save(update_fields=["kind"])
    pdf.kind = LessonKind.PDF
    pdf.save(update_fields=["kind"])
    enrollment = enroll_contact(contact, course)
    for lesson in lessons:
        record_lesson_view(enrollment, lesson, at=NOW)
    LessonProgress.objects.filter(lesson=video).update(
        pages_viewed=[[0, 30], [45, 60]], page_count=120
    )
    LessonProgress.objects.filter(lesson=pdf).update(pages_viewed=[1, 3], page_count=4)
    return video, pdf


def test_video_values_move_to_own_columns(rows):
    video, _pdf = rows

    migration.move_to_video_columns(apps, None)

    progress = LessonProgress.objects.get(lesson=video)
    assert progress.watched_intervals == [[0, 30], [45, 60]]
    assert progress.duration_seconds == 120
    assert progress.pages_viewed == []
    assert progress.page_count is None


def test_pdf_pages_stay(rows):
    _video, pdf = rows

    migration.move_to_video_columns(apps, None)

    progress = LessonProgress.objects.get(lesson=pdf)
    assert progress.pages_viewed == [1, 3]
    assert progress.page_count == 4
    assert progress.watched_intervals == []
    assert progress.duration_seconds is None


def test_reverse_moves_values_back(rows):
    video, _pdf = rows
    migration.move_to_video_columns(apps, None)

    migration.move_to_pdf_columns(apps, None)

    progress = LessonProgress.objects.get(lesson=video)
    assert progress.pages_viewed == [[0, 30], [45, 60]]
    assert progress.page_count == 120
