"""Add the dashboard's precomputed facts and the periodic task that refreshes them.

The facts are not computed here: until the first refresh the dashboard
reads the source tables, so a database loaded after migrating shows its
data either way. The fact tables have no foreign-key constraints in the
database and are unlogged on PostgreSQL, because a refresh rewrites them
in full (docs/decisions/0026-dashboard-facts.md). The beat entry is added as metrics.beat_schedule describes.
"""

import django.db.models.deletion
from django.db import migrations, models

from metrics import beat_schedule

TASK_NAME = "refresh-dashboard-facts"
TASK = "metrics.tasks.refresh_dashboard_facts"
# Every ten minutes: a refresh at 5,000 accounts takes seconds, and the
# dashboard's outcome figures are then at most ten minutes behind.
EVERY_SECONDS = 10 * 60
DESCRIPTION = (
    "Recomputes the per-account facts that the dashboard's outcome comparison "
    "reads, and records when."
)


# Derived rows that a refresh rewrites in full, so they skip the write-ahead
# log on PostgreSQL. After a crash PostgreSQL empties them, FactRefresh
# included, and the dashboard reads the source tables until the next refresh.
UNLOGGED_TABLES = [
    "metrics_accountfact",
    "metrics_coursecompletionfact",
    "metrics_moduleactivityfact",
    "metrics_lessonscorefact",
    "metrics_trainingfact",
    "metrics_factrefresh",
]


def set_unlogged(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for table in UNLOGGED_TABLES:
        schema_editor.execute(f"ALTER TABLE {table} SET UNLOGGED")


def create_schedule(apps, schema_editor):
    beat_schedule.add_interval_task(apps, TASK_NAME, TASK, EVERY_SECONDS, DESCRIPTION)


def delete_schedule(apps, schema_editor):
    beat_schedule.remove_task(apps, TASK_NAME)


class Migration(migrations.Migration):
    dependencies = [
        ("courses", "0013_video_watch_columns"),
        ("customers", "0007_usage_day_contact_window"),
        ("metrics", "0006_report_changes_section"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.CreateModel(
            name="AccountFact",
            fields=[
                (
                    "account",
                    models.OneToOneField(
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        db_constraint=False, related_name="dashboard_fact",
                        serialize=False,
                        to="customers.account",
                    ),
                ),
                ("first_usage_day", models.DateField(null=True)),
                ("first_churn_event_day", models.DateField(null=True)),
                ("first_completed_at", models.DateTimeField(null=True)),
                ("has_undated_completion", models.BooleanField(default=False)),
            ],
        ),
        migrations.CreateModel(
            name="FactRefresh",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("refreshed_at", models.DateTimeField()),
                ("accounts", models.PositiveIntegerField()),
                ("duration_ms", models.PositiveIntegerField()),
            ],
            options={
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("pk", 1)), name="fact_refresh_single_row"
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="CourseCompletionFact",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("first_completed_at", models.DateTimeField(null=True)),
                ("has_undated_completion", models.BooleanField(default=False)),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        db_constraint=False, related_name="course_completion_facts",
                        to="customers.account",
                    ),
                ),
                (
                    "course",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        db_constraint=False, related_name="+",
                        to="courses.course",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("course", "account"), name="course_completion_fact_once"
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="accountfact",
            name="left_onboarding_day",
            field=models.DateField(null=True),
        ),
        migrations.CreateModel(
            name="LessonScoreFact",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("enrolled_at", models.DateTimeField()),
                ("score_bin", models.SmallIntegerField()),
                ("scores", models.PositiveIntegerField()),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        db_constraint=False, related_name="+",
                        to="customers.account",
                    ),
                ),
                (
                    "course",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        db_constraint=False, related_name="+",
                        to="courses.course",
                    ),
                ),
                (
                    "enrollment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        db_constraint=False, related_name="+",
                        to="courses.enrollment",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("enrollment", "score_bin"),
                        name="lesson_score_fact_once",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="ModuleActivityFact",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("enrolled_at", models.DateTimeField()),
                ("views", models.PositiveIntegerField()),
                ("repeat_views", models.PositiveIntegerField()),
                ("seconds", models.PositiveIntegerField()),
                ("viewed", models.BooleanField()),
                ("repeated", models.BooleanField()),
                ("timed", models.BooleanField()),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        db_constraint=False, related_name="+",
                        to="customers.account",
                    ),
                ),
                (
                    "course",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        db_constraint=False, related_name="+",
                        to="courses.course",
                    ),
                ),
                (
                    "enrollment",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        db_constraint=False, related_name="+",
                        to="courses.enrollment",
                    ),
                ),
                (
                    "module",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        db_constraint=False, related_name="+",
                        to="courses.module",
                    ),
                ),
            ],
            options={
                "constraints": [
                    models.UniqueConstraint(
                        fields=("enrollment", "module"),
                        name="module_activity_fact_once",
                    )
                ],
            },
        ),
        migrations.CreateModel(
            name="TrainingFact",
            fields=[
                (
                    "id",
                    models.BigAutoField(
                        auto_created=True,
                        primary_key=True,
                        serialize=False,
                        verbose_name="ID",
                    ),
                ),
                ("level", models.CharField(max_length=7)),
                ("subject_id", models.BigIntegerField()),
                ("rule", models.CharField(max_length=10)),
                ("first_at", models.DateTimeField()),
                (
                    "account",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        db_constraint=False, related_name="+",
                        to="customers.account",
                    ),
                ),
                (
                    "course",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        db_constraint=False, related_name="+",
                        to="courses.course",
                    ),
                ),
                (
                    "path",
                    models.ForeignKey(
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        db_constraint=False, related_name="+",
                        to="courses.learningpath",
                    ),
                ),
            ],
            options={
                "indexes": [
                    models.Index(
                        fields=["rule", "course", "path", "level", "subject_id"],
                        name="training_fact_cohort",
                    )
                ],
            },
        ),
        migrations.RunPython(set_unlogged, migrations.RunPython.noop),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
