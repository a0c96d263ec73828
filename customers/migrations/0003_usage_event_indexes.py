from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("customers", "0002_contact_reach_and_properties"),
    ]

    operations = [
        migrations.AddIndex(
            model_name="usageevent",
            index=models.Index(
                fields=["contact", "name", "occurred_at"],
                name="usage_contact_name_time",
            ),
        ),
    ]
