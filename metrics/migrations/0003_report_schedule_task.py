"""Add the periodic task that sends scheduled reports to beat's schedule.

django-celery-beat's DatabaseScheduler reads the schedule from its tables,
as triggers/migrations/0004_periodic_schedule.py explains. The entry is
created only when no entry of that name exists, so an interval an operator
changed in the admin is kept.
"""

from django.db import migrations
from django.utils import timezone

TASK_NAME = "send-scheduled-reports"
TASK = "metrics.tasks.send_scheduled_reports"
# Hourly: a report goes out within an hour after its period ends, and a
# run that finds every report of the period sent does nothing.
EVERY_SECONDS = 60 * 60
DESCRIPTION = (
    "Creates each active report schedule's delivery for its last full period "
    "and queues the sending of new, retried and stuck deliveries."
)


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    if PeriodicTask.objects.filter(name=TASK_NAME).exists():
        return
    # IntervalSchedule has no unique constraint; any equal row will do.
    interval = IntervalSchedule.objects.filter(
        every=EVERY_SECONDS, period="seconds"
    ).first() or IntervalSchedule.objects.create(
        every=EVERY_SECONDS, period="seconds"
    )
    PeriodicTask.objects.create(
        name=TASK_NAME, task=TASK, interval=interval, description=DESCRIPTION
    )
    # A running beat reloads its schedule when this timestamp moves.
    PeriodicTasks.objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


def delete_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTask.objects.filter(name=TASK_NAME).delete()
    PeriodicTasks.objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("metrics", "0002_report_schedules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(create_schedule, delete_schedule),
    ]
