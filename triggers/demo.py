"""The demo program: six triggers with their courses and email templates.

Seeding is idempotent: rows are looked up by slug, and rows that exist are
left as they are, so a CSM's edits survive a second run.
"""

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.db import transaction

from courses.services import LessonSpec, ModuleSpec, ensure_course
from triggers.models import EmailTemplate, Occurrence, Recipients, SubjectType, Trigger

logger = logging.getLogger(__name__)

EMAIL_SOURCES = Path(__file__).resolve().parent / "templates" / "triggers" / "email"


@dataclass(frozen=True)
class CourseSpec:
    slug: str
    title: str
    summary: str
    modules: tuple[ModuleSpec, ...]


def _module(title: str, *lessons: tuple[str, str]) -> ModuleSpec:
    return ModuleSpec(
        title=title,
        lessons=tuple(LessonSpec(title=name, body=body) for name, body in lessons),
    )


COURSES = (
    CourseSpec(
        slug="getting-started",
        title="Getting started",
        summary=(
            "From an empty workspace to your first shared project "
            "in three short modules."
        ),
        modules=(
            _module(
                "Set up your workspace",
                (
                    "Invite your team",
                    "Add colleagues by email and choose who can edit.",
                ),
                ("Connect your first data source", "Link a spreadsheet or a database."),
            ),
            _module(
                "Your first project",
                ("Create a project", "Start from a template and rename it."),
                ("Share a dashboard", "Send a read-only link to a colleague."),
            ),
            _module(
                "Where to get help",
                ("Help centre and support", "Search the help centre or open a ticket."),
            ),
        ),
    ),
    CourseSpec(
        slug="five-minute-refresher",
        title="Five-minute refresher",
        summary=(
            "What changed since your last visit, and three shortcuts worth knowing."
        ),
        modules=(
            _module(
                "Pick up where you left off",
                ("What changed since your last visit", "The features released lately."),
                ("Three shortcuts worth knowing", "Search, duplicate and quick share."),
            ),
        ),
    ),
    CourseSpec(
        slug="scaling-your-team",
        title="Scaling your team",
        summary="Roles, permissions and shared templates for a team that is growing.",
        modules=(
            _module(
                "Roles and permissions",
                (
                    "Plan roles before you invite",
                    "Decide who administers, edits, views.",
                ),
                (
                    "Use groups",
                    "Give permissions to a group instead of to each person.",
                ),
            ),
            _module(
                "Onboarding new colleagues",
                ("Share templates", "Save a project as a template for the whole team."),
                ("Set up a team workspace", "One place for shared projects and data."),
            ),
        ),
    ),
    CourseSpec(
        slug="renewal-readiness",
        title="Getting ready for renewal",
        summary="Measure adoption, summarise results and plan next year with your CSM.",
        modules=(
            _module(
                "Review your results",
                ("Measure adoption", "Active users, features used and trends."),
                (
                    "Build a one-page results summary",
                    "The numbers your sponsor asks for.",
                ),
            ),
            _module(
                "Plan the next year",
                ("Set goals with your CSM", "Three goals and how to measure each."),
            ),
        ),
    ),
    CourseSpec(
        slug="advanced-features",
        title="Advanced features for growing teams",
        summary="Automation and integrations for teams that use the basics every day.",
        modules=(
            _module(
                "Automation",
                (
                    "Scheduled reports",
                    "Send a report every Monday without lifting a finger.",
                ),
                ("Workflow rules", "Act on a change in your data automatically."),
            ),
            _module(
                "Integrations",
                ("Connect your CRM", "Keep accounts and contacts in step."),
                ("Use the API", "Read and write projects from your own scripts."),
            ),
        ),
    ),
)

TEMPLATES = (
    ("welcome", "Welcome and onboarding course"),
    ("inactivity-refresher", "Refresher after 10 days without usage"),
    ("scaling-team", "Scaling course for a growing team"),
    ("renewal-readiness", "Renewal readiness package"),
    ("nps-advocacy", "Thank-you to an NPS promoter"),
    ("advanced-features", "Advanced course for a healthy renewing account"),
)

TRIGGERS: tuple[dict[str, Any], ...] = (
    {
        "slug": "welcome-onboarding",
        "name": "Welcome new contacts",
        "description": (
            "Welcomes a contact who joined their account in the last day and "
            "enrolls them in Getting started."
        ),
        "subject_type": SubjectType.CONTACT,
        "condition": {"kind": "contact_added_within", "days": 1},
        "occurrence": Occurrence.ONCE,
        "course": "getting-started",
        "template": "welcome",
    },
    {
        "slug": "inactive-10-days",
        "name": "Refresher after 10 quiet days",
        "description": (
            "Sends a short refresher to a contact who used the product in the last "
            "90 days but not in the last 10. Fires again after each new quiet spell."
        ),
        "subject_type": SubjectType.CONTACT,
        "condition": {
            "all": [
                {"kind": "inactivity", "days": 10},
                {"kind": "event_count", "days": 90, "op": ">=", "value": 1},
            ]
        },
        "occurrence": Occurrence.INACTIVITY_SPELL,
        "course": "five-minute-refresher",
        "template": "inactivity-refresher",
    },
    {
        "slug": "team-growth-scaling",
        "name": "Scaling course for growing teams",
        "description": (
            "Enrolls the champions of an account that added three or more contacts "
            "in the last 30 days in Scaling your team."
        ),
        "subject_type": SubjectType.ACCOUNT,
        "condition": {"kind": "team_growth", "days": 30, "value": 3},
        "occurrence": Occurrence.ONCE,
        "recipients": Recipients.CHAMPIONS,
        "course": "scaling-your-team",
        "template": "scaling-team",
    },
    {
        "slug": "pre-renewal-60-days",
        "name": "Renewal readiness, 60 days before renewal",
        "description": (
            "Enrolls the champions in Getting ready for renewal 60 days before the "
            "renewal date, once for each renewal date."
        ),
        "subject_type": SubjectType.ACCOUNT,
        "condition": {"kind": "renewal_within", "days": 60},
        "occurrence": Occurrence.RENEWAL_DATE,
        "recipients": Recipients.CHAMPIONS,
        "course": "renewal-readiness",
        "template": "renewal-readiness",
    },
    {
        "slug": "nps-promoter-advocacy",
        "name": "Advocacy email to NPS promoters",
        "description": (
            "Thanks a contact within a day of an NPS answer of 9 or 10 and asks for "
            "a review; once for each survey response."
        ),
        "subject_type": SubjectType.CONTACT,
        "condition": {
            "kind": "survey_score",
            "survey": "nps",
            "min": 9,
            "max": 10,
            "days": 1,
        },
        "occurrence": Occurrence.SURVEY_RESPONSE,
        "course": None,
        "template": "nps-advocacy",
    },
    {
        "slug": "healthy-renewal-advanced",
        "name": "Advanced course for healthy renewing accounts",
        "description": (
            "Enrolls every contact of an account that renews within 90 days and "
            "has a health score above 70 in the advanced features course."
        ),
        "subject_type": SubjectType.ACCOUNT,
        "condition": {
            "all": [
                {"kind": "renewal_within", "days": 90},
                {"kind": "health_score", "op": ">", "value": 70},
            ]
        },
        "occurrence": Occurrence.RENEWAL_DATE,
        "recipients": Recipients.ALL_CONTACTS,
        "course": "advanced-features",
        "template": "advanced-features",
    },
)


def read_email_source(slug: str) -> tuple[str, str]:
    """Read a template file: a 'Subject:' line, a blank line, then the body."""
    text = (EMAIL_SOURCES / f"{slug}.txt").read_text()
    first_line, _, body = text.partition("\n")
    if not first_line.startswith("Subject: "):
        raise ValueError(f"{slug}.txt must start with a 'Subject: ' line")
    return first_line.removeprefix("Subject: ").strip(), body.lstrip("\n")


@transaction.atomic
def seed_demo_program() -> list[Trigger]:
    """Create the demo courses, email templates and triggers unless they exist."""
    courses = {
        spec.slug: ensure_course(spec.slug, spec.title, spec.summary, spec.modules)[0]
        for spec in COURSES
    }
    templates = {slug: _ensure_template(slug, name) for slug, name in TEMPLATES}

    triggers = []
    for spec in TRIGGERS:
        fields = dict(spec)
        course_slug = fields.pop("course")
        template_slug = fields.pop("template")
        trigger = Trigger.objects.filter(slug=fields["slug"]).first()
        if trigger is None:
            trigger = Trigger(
                **fields,
                enroll_course=courses[course_slug] if course_slug else None,
                email_template=templates[template_slug],
            )
            trigger.full_clean()
            trigger.save()
            logger.info("Created demo trigger %s", trigger.slug)
        triggers.append(trigger)
    return triggers


def _ensure_template(slug: str, name: str) -> EmailTemplate:
    existing = EmailTemplate.objects.filter(slug=slug).first()
    if existing is not None:
        return existing
    subject, body = read_email_source(slug)
    return EmailTemplate.objects.create(
        slug=slug, name=name, subject=subject, body=body
    )
