"""Let CSMs move the accounts they own to another stage and tick their checklists.

The role groups gave CSMs no lifecycle permission, so only Nudgepath
admins could override a stage or tick a checklist item by hand. The admin
pages of these rows are narrowed to the accounts the user may see
(customers.roles.OwnedAccountsAdmin), and the account page's forms check
that the user may edit the account, so the permissions granted here reach
no other CSM's accounts. Safe to run again.
"""

from django.db import migrations

CSM_GROUP = "CSMs"
CSM_PERMISSIONS = (
    "view_accountstage",
    "change_accountstage",
    "view_stagechange",
    "view_criterionmet",
    "view_checklisttick",
    "add_checklisttick",
)


def grant_csm_stage_permissions(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    csms = Group.objects.filter(name=CSM_GROUP).first()
    if csms is None:
        # The group was deleted on purpose; do not bring it back.
        return
    csms.permissions.add(
        *Permission.objects.filter(
            content_type__app_label="lifecycle", codename__in=CSM_PERMISSIONS
        )
    )


def revoke_csm_stage_permissions(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for csms in Group.objects.filter(name=CSM_GROUP):
        csms.permissions.remove(
            *Permission.objects.filter(
                content_type__app_label="lifecycle", codename__in=CSM_PERMISSIONS
            )
        )


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0008_checklist_names"),
        # The group exists after the role migration, and the checklist
        # permissions after 0007 created them.
        ("customers", "0006_role_groups"),
    ]

    operations = [
        migrations.RunPython(grant_csm_stage_permissions, revoke_csm_stage_permissions)
    ]
