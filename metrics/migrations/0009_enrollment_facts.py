"""Add the per-enrollment facts that the engagement report counts.

The table is empty until the next refresh, so the last refresh is
forgotten and the dashboard reads the source tables until the periodic
task refreshes the facts again. Like the other fact tables it is unlogged
on PostgreSQL, because each refresh rewrites it in full.
"""

import django.db.models.deletion
from django.db import migrations, models


def set_unlogged(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("ALTER TABLE metrics_enrollmentfact SET UNLOGGED")


def forget_last_refresh(apps, schema_editor):
    apps.get_model("metrics", "FactRefresh").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("courses", "0014_courseversion_snapshot"),
        ("customers", "0007_usage_day_contact_window"),
        ("metrics", "0008_trained_windows"),
    ]

    operations = [
        migrations.CreateModel(
            name="EnrollmentFact",
            fields=[
                (
                    "enrollment",
                    models.OneToOneField(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        primary_key=True,
                        related_name="+",
                        serialize=False,
                        to="courses.enrollment",
                    ),
                ),
                ("enrolled_at", models.DateTimeField()),
                ("status", models.CharField(max_length=20)),
                ("score_bin", models.SmallIntegerField(null=True)),
                (
                    "account",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="customers.account",
                    ),
                ),
                (
                    "course",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="+",
                        to="courses.course",
                    ),
                ),
                (
                    "furthest_module",
                    models.ForeignKey(
                        db_constraint=False,
                        null=True,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="+",
                        to="courses.module",
                    ),
                ),
            ],
        ),
        migrations.RunPython(set_unlogged, migrations.RunPython.noop),
        migrations.RunPython(forget_last_refresh, migrations.RunPython.noop),
    ]
