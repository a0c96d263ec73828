"""Create the three role groups and the permission to see every account.

- CSMs see and edit the accounts they own, with their contacts and
  customer record. customers.roles narrows every view and admin page to
  the owner's accounts unless the user also has view_all_accounts.
- CS managers see every account and every app's rows, read-only.
- Nudgepath admins manage the configuration: every permission of lifecycle,
  courses, triggers, metrics, integrations and the periodic task schedule,
  and may edit every account. User accounts stay with superusers, because
  whoever may change users may make themselves superuser.

Permissions of models added after this migration are not in the groups;
a later migration or a superuser in the admin adds them.
"""

from django.contrib.auth.management import create_permissions
from django.db import migrations

CUSTOMER_MODELS = (
    "account",
    "contact",
    "subscription",
    "usageevent",
    "supportticket",
    "surveyresponse",
    "healthscore",
    "churnevent",
)
CONFIGURATION_APPS = (
    "lifecycle",
    "courses",
    "triggers",
    "metrics",
    "integrations",
    "django_celery_beat",
)
VIEW_ALL_ACCOUNTS = "view_all_accounts"


def _ensure_permissions(apps):
    # On a new database the permissions are created only after every
    # migration has run, so they are created here first. create_permissions
    # skips an app without a models module, which historical app configs
    # lack; the original value is put back, because called with the real
    # app registry (as tests do) this must leave it unchanged.
    for label in ("customers", *CONFIGURATION_APPS):
        app_config = apps.get_app_config(label)
        original = getattr(app_config, "models_module", None)
        app_config.models_module = original or True
        try:
            create_permissions(app_config, apps=apps, verbosity=0)
        finally:
            app_config.models_module = original


def create_role_groups(apps, schema_editor):
    """Create or complete the groups; safe to run again."""
    ContentType = apps.get_model("contenttypes", "ContentType")
    Permission = apps.get_model("auth", "Permission")
    Group = apps.get_model("auth", "Group")
    _ensure_permissions(apps)

    account_type, _ = ContentType.objects.get_or_create(
        app_label="customers", model="account"
    )
    view_all, _ = Permission.objects.get_or_create(
        content_type=account_type,
        codename=VIEW_ALL_ACCOUNTS,
        defaults={"name": "Can view and, with change, edit every account"},
    )
    customer_views = Permission.objects.filter(
        content_type__app_label="customers",
        codename__in=[f"view_{model}" for model in CUSTOMER_MODELS],
    )
    csm_changes = Permission.objects.filter(
        content_type__app_label="customers",
        codename__in=["change_account", "change_contact"],
    )
    configuration = Permission.objects.filter(
        content_type__app_label__in=CONFIGURATION_APPS
    )

    csms, _ = Group.objects.get_or_create(name="CSMs")
    csms.permissions.add(*customer_views, *csm_changes)

    managers, _ = Group.objects.get_or_create(name="CS managers")
    managers.permissions.add(
        *customer_views,
        view_all,
        *configuration.filter(codename__startswith="view_"),
    )

    admins, _ = Group.objects.get_or_create(name="Nudgepath admins")
    admins.permissions.add(
        *customer_views,
        *csm_changes,
        view_all,
        *configuration,
    )


def remove_role_groups(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    Group.objects.filter(name__in=["CSMs", "CS managers", "Nudgepath admins"]).delete()
    Permission.objects.filter(
        content_type__app_label="customers", codename=VIEW_ALL_ACCOUNTS
    ).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0005_usage_event_time_index"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
        # The permissions granted to the groups must exist.
        ("lifecycle", "0004_health_weights"),
        ("courses", "0005_question_pools"),
        ("triggers", "0006_backtest_runs"),
        ("metrics", "0003_report_schedule_task"),
        ("integrations", "0001_event_sources"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_role_groups, remove_role_groups)]
