"""The Celery application that runs trigger sweeps and sends the email outbox."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("nudgepath")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
# Journey and webhook tasks live beside the sweep tasks, in triggers.journey_tasks.
app.autodiscover_tasks(related_name="journey_tasks")
# The task that computes backtests requested in the admin.
app.autodiscover_tasks(related_name="backtest_tasks")
# The HubSpot sync's tasks live in the integrations.hubspot package.
app.autodiscover_tasks(["integrations.hubspot"])
