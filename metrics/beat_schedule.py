"""Entries of beat's schedule that metrics migrations add and remove.

django-celery-beat's DatabaseScheduler reads the schedule from its tables,
as triggers/migrations/0004_periodic_schedule.py explains. An entry is
created only when no entry of that name exists, so an interval an operator
changed in the admin is kept. Migrations pass their historical ``apps``.
"""

from typing import Any

from django.utils import timezone


def add_interval_task(
    apps: Any, name: str, task: str, every_seconds: int, description: str
) -> None:
    """Create the periodic task ``name`` running ``task`` every so many seconds."""
    interval_model = apps.get_model("django_celery_beat", "IntervalSchedule")
    task_model = apps.get_model("django_celery_beat", "PeriodicTask")
    if task_model.objects.filter(name=name).exists():
        return
    # IntervalSchedule has no unique constraint; any equal row will do.
    interval = interval_model.objects.filter(
        every=every_seconds, period="seconds"
    ).first() or interval_model.objects.create(every=every_seconds, period="seconds")
    task_model.objects.create(
        name=name, task=task, interval=interval, description=description
    )
    _tell_beat(apps)


def remove_task(apps: Any, name: str) -> None:
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(
        name=name
    ).delete()
    _tell_beat(apps)


def _tell_beat(apps: Any) -> None:
    # A running beat reloads its schedule when this timestamp moves.
    apps.get_model("django_celery_beat", "PeriodicTasks").objects.update_or_create(
        ident=1, defaults={"last_update": timezone.now()}
    )
