"""Store each trained subject's outcomes around training on its training facts.

The new columns are empty until the next refresh, so the last refresh is
forgotten: the dashboard reads the source tables until the periodic task
refreshes the facts again. The table stays unlogged on PostgreSQL.
"""

from django.db import migrations, models


def forget_last_refresh(apps, schema_editor):
    apps.get_model("metrics", "FactRefresh").objects.all().delete()


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0007_dashboard_facts"),
    ]

    operations = [
        migrations.AddField(
            model_name="trainingfact",
            name="expanded_after",
            field=models.BooleanField(null=True),
        ),
        migrations.AddField(
            model_name="trainingfact",
            name="expanded_before",
            field=models.BooleanField(null=True),
        ),
        migrations.AddField(
            model_name="trainingfact",
            name="health_after",
            field=models.PositiveSmallIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="trainingfact",
            name="health_before",
            field=models.PositiveSmallIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="trainingfact",
            name="measured",
            field=models.BooleanField(db_default=False),
        ),
        migrations.AddField(
            model_name="trainingfact",
            name="topic_tickets",
            field=models.JSONField(null=True),
        ),
        migrations.AddField(
            model_name="trainingfact",
            name="usage_after",
            field=models.PositiveIntegerField(null=True),
        ),
        migrations.AddField(
            model_name="trainingfact",
            name="usage_before",
            field=models.PositiveIntegerField(null=True),
        ),
        migrations.RunPython(forget_last_refresh, migrations.RunPython.noop),
    ]
