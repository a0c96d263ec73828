"""Let CSMs read the firings and emails of their accounts and work their tasks.

The role groups were created before these rows had a place on a CSM's
desk. The admin narrows each of these pages to the accounts the user may
see (customers.roles.OwnedAccountsAdmin), so the permissions granted here
reach no other CSM's rows. Safe to run again.
"""

from django.db import migrations

CSM_GROUP = "CSMs"
CSM_PERMISSIONS = (
    "view_csmtask",
    "change_csmtask",
    "view_firing",
    "view_outboxemail",
)


def grant_csm_rows(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    csms = Group.objects.filter(name=CSM_GROUP).first()
    if csms is None:
        # The group was deleted on purpose; do not bring it back.
        return
    csms.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="triggers", codename__in=CSM_PERMISSIONS
        )
    )


def revoke_csm_rows(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for csms in Group.objects.filter(name=CSM_GROUP):
        csms.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label="triggers", codename__in=CSM_PERMISSIONS
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("triggers", "0007_trigger_learning_path"),
        # The group and the permissions exist after the role migration.
        ("customers", "0006_role_groups"),
    ]

    operations = [migrations.RunPython(grant_csm_rows, revoke_csm_rows)]
