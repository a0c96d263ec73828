"""Include the account in the cohort index of the training facts.

The trained subjects of a plan, stage or segment are then counted from
the index on PostgreSQL; SQLite ignores the included columns.
"""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('metrics', '0011_training_fact_sample_key'),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name='trainingfact',
            name='training_fact_cohort',
        ),
        migrations.AddIndex(
            model_name='trainingfact',
            index=models.Index(fields=['rule', 'course', 'path', 'level', 'subject_id'], include=('first_at', 'account'), name='training_fact_cohort'),
        ),
    ]
