"""Where lesson files (videos, PDFs, downloads) are stored.

They live outside STATIC_ROOT and MEDIA_ROOT because no web server may
serve them directly: the portal serves each file only to learners enrolled
in its course (courses.content_views.lesson_file).
"""

import secrets
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.utils.text import get_valid_filename


def lesson_file_root() -> Path:
    """Return the folder of lesson files: LESSON_FILE_ROOT, or var/lesson-files."""
    configured = getattr(settings, "LESSON_FILE_ROOT", None)
    return Path(configured) if configured else settings.VAR_DIR / "lesson-files"


class LessonFileStorage(FileSystemStorage):
    """File storage that reads its folder from the settings on every call.

    FileSystemStorage caches its location, and the model field keeps one
    storage for the life of the process, so a changed setting (in tests)
    would otherwise go unnoticed.
    """

    @property  # type: ignore[override]
    def base_location(self) -> str:
        return str(lesson_file_root())

    @property  # type: ignore[override]
    def location(self) -> str:
        return str(lesson_file_root().resolve())


_storage = LessonFileStorage()


def lesson_file_storage() -> LessonFileStorage:
    """Return the storage of Lesson.file; a function, so migrations name no folder."""
    return _storage


def lesson_file_path(instance: Any, filename: str) -> str:
    """Return lessons/<random>/<name>: the uploaded name kept, never guessable."""
    return f"lessons/{secrets.token_hex(8)}/{get_valid_filename(Path(filename).name)}"
