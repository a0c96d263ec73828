"""Include first_at in the cohort index of the training facts.

The untrained are then counted and sampled from the index alone on
PostgreSQL; SQLite ignores the included column.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('courses', '0014_courseversion_snapshot'),
        ('customers', '0007_usage_day_contact_window'),
        ('metrics', '0009_enrollment_facts'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='trainingfact',
            name='training_fact_cohort',
        ),
        migrations.AddIndex(
            model_name='trainingfact',
            index=models.Index(fields=['rule', 'course', 'path', 'level', 'subject_id'], include=('first_at',), name='training_fact_cohort'),
        ),
    ]
