"""Store the periodic schedule in the database, where beat reads it.

The entries (lifecycle refresh, trigger sweep, sending pending email) used to
be CELERY_BEAT_SCHEDULE in the settings. django-celery-beat's scheduler reads
them from its tables instead, so they can be edited in the admin. Each entry
is created only when no entry of that name exists, so running this again,
or after an operator changed an interval, changes nothing.
"""

from django.conf import settings
from django.db import migrations
from django.utils import timezone

DESCRIPTIONS = {
    "lifecycle-refresh": (
        "Scores every account's health for today, then evaluates lifecycle stages."
    ),
    "trigger-sweep": (
        "Queues one evaluation task per active trigger, all as of the same instant."
    ),
    "send-pending-email": (
        "Releases outbox emails stuck in sending, then queues the due pending ones."
    ),
}


def create_schedule(apps, schema_editor):
    """Create each missing periodic task with the interval from the settings."""
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")

    created = False
    for name, entry in settings.NUDGEPATH_PERIODIC_TASKS.items():
        if PeriodicTask.objects.filter(name=name).exists():
            continue
        # IntervalSchedule has no unique constraint, so an equal row may
        # exist more than once; any of them will do.
        interval = IntervalSchedule.objects.filter(
            every=entry["seconds"], period="seconds"
        ).first() or IntervalSchedule.objects.create(
            every=entry["seconds"], period="seconds"
        )
        PeriodicTask.objects.create(
            name=name,
            task=entry["task"],
            interval=interval,
            description=DESCRIPTIONS.get(name, ""),
        )
        created = True

    if created:
        # A running beat reloads its schedule when this timestamp moves. The
        # model's own signal does not fire for the historical models used here.
        PeriodicTasks.objects.update_or_create(
            ident=1, defaults={"last_update": timezone.now()}
        )


def delete_schedule(apps, schema_editor):
    """Delete the periodic tasks that create_schedule creates, by name."""
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    PeriodicTasks = apps.get_model("django_celery_beat", "PeriodicTasks")
    PeriodicTask.objects.filter(name__in=settings.NUDGEPATH_PERIODIC_TASKS).delete()
    PeriodicTasks.objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )


class Migration(migrations.Migration):
    dependencies = [
        ("triggers", "0003_holdouts_and_delivery_rules"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [
        migrations.RunPython(create_schedule, delete_schedule),
    ]
