"""Store each training fact's place in the hashed sample, with indexes in that order.

The stored facts get their keys here, computed as metrics.cohorts.hashed_sql
computes them, so reports read the same samples before the next refresh.
"""

from django.db import migrations, models

# metrics.cohorts.hashed_sql("subject_id"), written out because a migration
# must not change with the code.
SAMPLE_KEY_SQL = (
    "((subject_id % 4294967296) * 31153"
    " + (((subject_id % 4294967296) * 40503) % 65536) * 65536) % 4294967296"
)


class Migration(migrations.Migration):

    dependencies = [
        ('metrics', '0010_training_fact_index_first_at'),
    ]

    operations = [
        migrations.AddField(
            model_name='trainingfact',
            name='sample_key',
            field=models.BigIntegerField(default=0),
            preserve_default=False,
        ),
        migrations.RunSQL(
            f"UPDATE metrics_trainingfact SET sample_key = {SAMPLE_KEY_SQL}",
            migrations.RunSQL.noop,
        ),
        migrations.AddIndex(
            model_name='trainingfact',
            index=models.Index(condition=models.Q(('path__isnull', True)), fields=['rule', 'level', 'course', 'sample_key', 'subject_id'], name='training_fact_course_sample'),
        ),
        migrations.AddIndex(
            model_name='trainingfact',
            index=models.Index(condition=models.Q(('course__isnull', True), ('path__isnull', True)), fields=['rule', 'level', 'sample_key', 'subject_id'], name='training_fact_any_sample'),
        ),
    ]
