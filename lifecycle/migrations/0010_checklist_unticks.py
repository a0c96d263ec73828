"""Record ticks by hand that a CSM takes back, and grant the role groups their rows.

Running the role groups' migration function again gives Nudgepath admins
every permission of the new model and CS managers the view permission.
CSMs may view the unticks of their accounts in the admin; they untick
on the account page, which checks that they may edit the account.
"""

import importlib

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


def grant_untick_permissions(apps, schema_editor):
    roles = importlib.import_module("customers.migrations.0006_role_groups")
    roles.create_role_groups(apps, schema_editor)
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    csms = Group.objects.filter(name="CSMs").first()
    if csms is None:
        return
    csms.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="lifecycle", codename="view_checklistuntick"
        )
    )


class Migration(migrations.Migration):

    dependencies = [
        ('customers', '0007_usage_day_contact_window'),
        ('lifecycle', '0009_csm_stage_permissions'),
        ('customers', '0006_role_groups'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='ChecklistUntick',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('ticked_at', models.DateTimeField()),
                ('unticked_at', models.DateTimeField()),
                ('reason', models.TextField()),
                ('created_at', models.DateTimeField(auto_now_add=True)),
                ('account', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='checklist_unticks', to='customers.account')),
                ('item', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='unticks', to='lifecycle.checklistitem')),
                ('ticked_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('unticked_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'account checklist untick',
                'ordering': ['account', 'unticked_at'],
            },
        ),
        migrations.RunPython(grant_untick_permissions, migrations.RunPython.noop),
    ]
