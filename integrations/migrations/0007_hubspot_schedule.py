"""Add the sync run heartbeat and put the HubSpot tasks in beat's schedule.

The entries come from NUDGEPATH_HUBSPOT_PERIODIC_TASKS, and each is
created only when no entry of that name exists. So an interval that an
operator changed in the admin stays as it is.
"""

from django.conf import settings
from django.db import migrations, models
from django.utils import timezone

DESCRIPTIONS = {
    "hubspot-sync": "Queues an incremental sync of each active HubSpot connection.",
    "hubspot-write-back": "Pushes pending CRM write-backs to HubSpot.",
    "hubspot-release-stuck-runs": (
        "Fails HubSpot sync runs whose worker stopped and resumes them."
    ),
}


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    created = False
    for name, description in DESCRIPTIONS.items():
        entry = settings.NUDGEPATH_HUBSPOT_PERIODIC_TASKS[name]
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        interval = IntervalSchedule.objects.filter(
            every=entry["seconds"], period="seconds"
        ).first() or IntervalSchedule.objects.create(
            every=entry["seconds"], period="seconds"
        )
        PeriodicTask.objects.create(
            name=name, task=entry["task"], interval=interval, description=description
        )
        created = True
    if created:
        # A running beat reloads its schedule when this timestamp moves.
        PeriodicTasks.objects.update_or_create(
            ident=1, defaults={"last_update": timezone.now()}
        )


def delete_schedule(apps, schema_editor):
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTask.objects.filter(name__in=DESCRIPTIONS).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("integrations", "0006_hubspot_contact_moves"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.AddField(
            model_name="syncrun",
            name="heartbeat_at",
            field=models.DateTimeField(
                blank=True,
                help_text=(
                    "When the worker last saved the run's progress; a running "
                    "run without one for long is released and resumed."
                ),
                null=True,
            ),
        ),
        migrations.RunPython(create_schedule, delete_schedule),
    ]
