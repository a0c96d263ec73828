"""Factories for triggers, email templates and courses used by the trigger tests."""

import itertools
from typing import Any

from courses.models import Course
from triggers.models import EmailTemplate, JourneyStep, Trigger

_sequence = itertools.count(1)


def make_course(**fields: Any) -> Course:
    number = next(_sequence)
    defaults: dict[str, Any] = {"slug": f"course-{number}", "title": f"Course {number}"}
    defaults.update(fields)
    return Course.objects.create(**defaults)


def make_template(**fields: Any) -> EmailTemplate:
    number = next(_sequence)
    defaults: dict[str, Any] = {
        "slug": f"template-{number}",
        "name": f"Template {number}",
        "subject": "Hello {{ contact.first_name }}",
        "body": (
            "Hi {{ contact.first_name }} at {{ account.name }}.\n"
            "{% if course %}Course: {{ course.title }}\n{% endif %}"
            "Sign in: {{ sign_in_url }}\n"
        ),
    }
    defaults.update(fields)
    return EmailTemplate.objects.create(**defaults)


def make_trigger(condition: dict[str, Any], **fields: Any) -> Trigger:
    number = next(_sequence)
    defaults: dict[str, Any] = {
        "slug": f"trigger-{number}",
        "name": f"Trigger {number}",
        "subject_type": "contact",
        "condition": condition,
        "occurrence": "once",
    }
    defaults.update(fields)
    trigger = Trigger(**defaults)
    trigger.full_clean()
    trigger.save()
    return trigger


def make_step(trigger: Trigger, order: int, action: str, **fields: Any) -> JourneyStep:
    step = JourneyStep(trigger=trigger, order=order, action=action, **fields)
    step.full_clean()
    step.save()
    return step
