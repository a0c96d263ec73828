"""Seed the five lifecycle stages and their success criteria.

The condition trees are literal JSON on purpose: a data migration must not
import app code that may change later. docs/lifecycle.md explains each one.
"""

from django.db import migrations

STAGES = [
    {
        "slug": "onboarding",
        "name": "Onboarding",
        "order": 1,
        "description": (
            "From signup and kickoff until the team is invited and has first "
            "used the product."
        ),
        "criteria": [
            {
                "name": "At least 3 team members invited",
                "description": (
                    "Three or more contacts have been added to the account."
                ),
                "condition": {"kind": "contact_count", "op": ">=", "value": 3},
                "target_days": 14,
            },
            {
                "name": "First product usage within 7 days of kickoff",
                "description": (
                    "A usage event falls on the kickoff date or one of the 7 days "
                    "after it. An account without a kickoff date cannot meet it."
                ),
                "condition": {"kind": "first_usage_within", "days": 7, "after": "kickoff"},
                "target_days": 14,
            },
        ],
    },
    {
        "slug": "adoption",
        "name": "Adoption",
        "order": 2,
        "description": (
            "The product becomes part of the team's week: several core features, "
            "steady or growing active users."
        ),
        "criteria": [
            {
                "name": "At least 3 core features used weekly",
                "description": "Three or more distinct features used in the last 7 days.",
                "condition": {
                    "kind": "distinct_features",
                    "days": 7,
                    "op": ">=",
                    "value": 3,
                },
                "target_days": 30,
            },
            {
                "name": "Active users stable or growing",
                "description": (
                    "Distinct active contacts in the last 30 days are at least those "
                    "of the 30 days before, and more than zero."
                ),
                "condition": {"kind": "active_users_trend", "days": 30},
                "target_days": 60,
            },
        ],
    },
    {
        "slug": "expansion",
        "name": "Expansion",
        "order": 3,
        "description": (
            "The account grows: new roles join the team and it pays for a premium "
            "plan or an upgrade."
        ),
        "criteria": [
            {
                "name": "New roles in the team",
                "description": (
                    "A contact whose role nobody at the account had before was added "
                    "in the last 30 days."
                ),
                "condition": {"kind": "new_role_added", "days": 30},
                "target_days": 90,
            },
            {
                "name": "Premium plan or upgrade",
                "description": (
                    "A paid Pro or Enterprise subscription is in effect, or the "
                    "subscription was upgraded in the last 90 days."
                ),
                "condition": {
                    "any": [
                        {"kind": "subscription_plan", "plans": ["Pro", "Enterprise"]},
                        {"kind": "upgraded_within", "days": 90},
                    ]
                },
                "target_days": 90,
            },
        ],
    },
    {
        "slug": "renewal",
        "name": "Renewal",
        "order": 4,
        "description": (
            "The account approaches renewal healthy: no critical ticket open and "
            "high engagement."
        ),
        "criteria": [
            {
                "name": "No critical support ticket open",
                "description": "No urgent support ticket is open.",
                "condition": {
                    "kind": "open_tickets",
                    "priorities": ["urgent"],
                    "op": "==",
                    "value": 0,
                },
                "target_days": 30,
            },
            {
                "name": "High engagement",
                "description": (
                    "At least 20 usage events in the last 30 days, about one each "
                    "working day."
                ),
                "condition": {"kind": "event_count", "days": 30, "op": ">=", "value": 20},
                "target_days": 60,
            },
        ],
    },
    {
        "slug": "advocacy",
        "name": "Advocacy",
        "order": 5,
        "description": (
            "The account recommends the product: promoter NPS and a public review "
            "or case study."
        ),
        "criteria": [
            {
                "name": "NPS of 9 or 10",
                "description": "An NPS answer of 9 or 10 in the last 365 days.",
                "condition": {
                    "kind": "survey_score",
                    "survey": "nps",
                    "min": 9,
                    "max": 10,
                    "days": 365,
                },
                "target_days": 90,
            },
            {
                "name": "Review or case study recorded",
                "description": (
                    "A 'Review Submitted' or 'Case Study Published' usage event in "
                    "the last 365 days; that is how reviews and case studies are "
                    "recorded."
                ),
                "condition": {
                    "any": [
                        {
                            "kind": "event_count",
                            "event": "Review Submitted",
                            "days": 365,
                            "op": ">=",
                            "value": 1,
                        },
                        {
                            "kind": "event_count",
                            "event": "Case Study Published",
                            "days": 365,
                            "op": ">=",
                            "value": 1,
                        },
                    ]
                },
                "target_days": 180,
            },
        ],
    },
]


def seed_stages(apps, schema_editor):
    Stage = apps.get_model("lifecycle", "Stage")
    SuccessCriterion = apps.get_model("lifecycle", "SuccessCriterion")
    for spec in STAGES:
        stage, _ = Stage.objects.update_or_create(
            slug=spec["slug"],
            defaults={
                "name": spec["name"],
                "order": spec["order"],
                "description": spec["description"],
            },
        )
        for position, criterion in enumerate(spec["criteria"], start=1):
            SuccessCriterion.objects.update_or_create(
                stage=stage,
                name=criterion["name"],
                defaults={
                    "description": criterion["description"],
                    "condition": criterion["condition"],
                    "target_days": criterion["target_days"],
                    "order": position,
                },
            )


def remove_stages(apps, schema_editor):
    # Fails with ProtectedError once accounts have been placed in a stage,
    # which is right: their history refers to these rows.
    Stage = apps.get_model("lifecycle", "Stage")
    SuccessCriterion = apps.get_model("lifecycle", "SuccessCriterion")
    slugs = [spec["slug"] for spec in STAGES]
    SuccessCriterion.objects.filter(stage__slug__in=slugs).delete()
    Stage.objects.filter(slug__in=slugs).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("lifecycle", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(seed_stages, remove_stages),
    ]
