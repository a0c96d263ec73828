"""Retry webhook events that HubSpot could not return, and schedule the retries.

The beat entry comes from NUDGEPATH_HUBSPOT_PERIODIC_TASKS and is created
only when no entry of that name exists, as in 0007.
"""

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

NAME = "hubspot-retry-webhook-events"
DESCRIPTION = (
    "Queues the HubSpot webhook events that are due: new ones whose task was "
    "never queued and retries after HubSpot could not be reached."
)


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    if PeriodicTask.objects.filter(name=NAME).exists():
        return
    entry = settings.NUDGEPATH_HUBSPOT_PERIODIC_TASKS[NAME]
    interval = IntervalSchedule.objects.filter(
        every=entry["seconds"], period="seconds"
    ).first() or IntervalSchedule.objects.create(
        every=entry["seconds"], period="seconds"
    )
    PeriodicTask.objects.create(
        name=NAME, task=entry["task"], interval=interval, description=DESCRIPTION
    )
    # A running beat reloads its schedule when this timestamp moves.
    PeriodicTasks.objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


def delete_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name=NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0009_hubspot_tickets"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="webhookevent",
            name="attempts",
            field=models.PositiveSmallIntegerField(
                default=0,
                help_text="Times a worker tried to apply this event and failed.",
            ),
        ),
        migrations.AddField(
            model_name="webhookevent",
            name="next_attempt_at",
            field=models.DateTimeField(
                blank=True,
                help_text=(
                    "When a worker tries again after HubSpot could not be reached; "
                    "blank for a new event and for one that failed for good."
                ),
                null=True,
            ),
        ),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
