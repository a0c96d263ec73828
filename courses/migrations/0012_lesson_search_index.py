"""A GIN index for full-text search over lesson titles and text (PostgreSQL only).

The expression equals the one courses.search filters on, so the planner
can use the index. SQLite has no text search, and the portal matches
substrings there, so nothing is created on it.
"""

from django.db import migrations

INDEX_NAME = "courses_lesson_search_gin"

CREATE = (
    f"CREATE INDEX IF NOT EXISTS {INDEX_NAME} ON courses_lesson USING gin "
    "(to_tsvector('english'::regconfig, "
    "COALESCE(title, '') || ' ' || COALESCE(body, '')))"
)
DROP = f"DROP INDEX IF EXISTS {INDEX_NAME}"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(CREATE)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(DROP)


class Migration(migrations.Migration):
    dependencies = [("courses", "0011_course_versions")]

    operations = [migrations.RunPython(create_index, drop_index)]
