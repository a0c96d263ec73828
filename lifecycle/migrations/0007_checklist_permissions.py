"""Grant the role groups the permissions of the checklist models.

The role groups hold the permissions of the models that existed when
customers' migration 0006 made them. Its create_role_groups() can run
again and only adds, so running it here grants Nudgepath admins every
permission of ChecklistItem and ChecklistTick, and CS managers the view
permissions. CSMs get none, as with the other lifecycle configuration.
"""

import importlib

from django.db import migrations


def grant_checklist_permissions(apps, schema_editor):
    roles = importlib.import_module("customers.migrations.0006_role_groups")
    roles.create_role_groups(apps, schema_editor)


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0006_checklists"),
        ("customers", "0006_role_groups"),
    ]

    operations = [
        migrations.RunPython(grant_checklist_permissions, migrations.RunPython.noop)
    ]
