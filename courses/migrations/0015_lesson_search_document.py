"""A stored full-text search document for each lesson (PostgreSQL only).

Lessons get a search_document tsvector column: the title weighted A and
the text weighted B, the vector the portal search matches and ranks by.
Before, the search computed to_tsvector for every lesson it matched and
again to rank it. A trigger sets the column on every insert and on every
update of the title or the text, so each write path keeps it current:
save(), bulk_create(), QuerySet.update(), the admin, imports and raw
SQL. The column is no model field, and SQLite, where the portal matches
substrings, gets nothing. The GIN index on the column replaces the
expression index of migration 0012, which nothing reads any more.
"""

from django.db import migrations

DOCUMENT_INDEX = "courses_lesson_document_gin"
FUNCTION = "courses_lesson_search_document"
TRIGGER = "courses_lesson_search_document"

# Must equal courses.search.weighted_document("body") compiled for a lesson,
# so that ranking by the column gives the same figures as before.
CREATE_FUNCTION = f"""
CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.search_document :=
        setweight(to_tsvector('english'::regconfig, COALESCE(NEW.title, '')), 'A')
        || setweight(to_tsvector('english'::regconfig, COALESCE(NEW.body, '')), 'B');
    RETURN NEW;
END
$$
"""
# The document depends on the title and the text only, so updates of other
# columns skip the work. A write to the column itself is replaced too, so
# the column cannot drift from the text.
CREATE_TRIGGER = (
    f"CREATE TRIGGER {TRIGGER} BEFORE INSERT OR UPDATE OF title, body, "
    f"search_document ON courses_lesson FOR EACH ROW EXECUTE FUNCTION {FUNCTION}()"
)
# Fills the existing rows: the trigger replaces the NULL with the document.
FILL = "UPDATE courses_lesson SET search_document = NULL"
FORWARD = [
    # Dropped first, so filling the new column does not also update the old index.
    "DROP INDEX IF EXISTS courses_lesson_search_gin",
    "ALTER TABLE courses_lesson ADD COLUMN search_document tsvector",
    CREATE_FUNCTION,
    CREATE_TRIGGER,
    FILL,
    f"CREATE INDEX {DOCUMENT_INDEX} ON courses_lesson USING gin (search_document)",
]
# The reverse restores migration 0012's expression index.
BACKWARD = [
    "CREATE INDEX IF NOT EXISTS courses_lesson_search_gin ON courses_lesson "
    "USING gin (to_tsvector('english'::regconfig, "
    "COALESCE(title, '') || ' ' || COALESCE(body, '')))",
    f"DROP TRIGGER IF EXISTS {TRIGGER} ON courses_lesson",
    f"DROP FUNCTION IF EXISTS {FUNCTION}()",
    "ALTER TABLE courses_lesson DROP COLUMN IF EXISTS search_document",
]


def add_document(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in FORWARD:
            schema_editor.execute(statement)


def remove_document(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for statement in BACKWARD:
            schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [("courses", "0014_courseversion_snapshot")]

    operations = [migrations.RunPython(add_document, remove_document)]
