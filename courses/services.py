"""What other apps may use from courses: enrolling, authoring, sign-in links.

Views, tasks, importers and tests call these functions; none of them reaches
into the models directly to write.
"""

import hashlib
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.urls import reverse
from django.utils import timezone

from courses.models import (
    Course,
    Enrollment,
    EnrollmentSource,
    Lesson,
    LessonKind,
    Module,
    SignInLink,
)
from customers.models import Contact

logger = logging.getLogger(__name__)


def enroll(
    contact: Contact,
    course: Course,
    *,
    source: str = EnrollmentSource.MANUAL,
    origin: str = "",
    at: datetime | None = None,
) -> tuple[Enrollment, bool]:
    """Enroll a contact in a course once; return the enrollment and whether it is new.

    The unique constraint on (contact, course) decides, so two workers
    enrolling the same contact at once still create one row.
    """
    enrolled_at = at or timezone.now()
    try:
        with transaction.atomic():
            enrollment = Enrollment.objects.create(
                contact=contact,
                course=course,
                source=source,
                origin=origin,
                enrolled_at=enrolled_at,
            )
    except IntegrityError:
        existing = Enrollment.objects.get(contact=contact, course=course)
        return existing, False
    logger.info(
        "Enrolled contact %s in course %s (source=%s origin=%s)",
        contact.pk,
        course.pk,
        source,
        origin,
    )
    return enrollment, True


@dataclass(frozen=True)
class LessonSpec:
    title: str
    body: str = ""
    kind: str = LessonKind.TEXT


@dataclass(frozen=True)
class ModuleSpec:
    title: str
    lessons: tuple[LessonSpec, ...]


@transaction.atomic
def ensure_course(
    slug: str, title: str, summary: str, modules: tuple[ModuleSpec, ...]
) -> tuple[Course, bool]:
    """Create an authored course with its modules and lessons unless the slug exists."""
    course, created = Course.objects.get_or_create(
        slug=slug, defaults={"title": title, "summary": summary}
    )
    if not created:
        return course, False
    for module_order, module_spec in enumerate(modules, start=1):
        module = Module.objects.create(
            course=course, title=module_spec.title, order=module_order
        )
        Lesson.objects.bulk_create(
            Lesson(
                module=module,
                title=lesson.title,
                body=lesson.body,
                kind=lesson.kind,
                order=lesson_order,
            )
            for lesson_order, lesson in enumerate(module_spec.lessons, start=1)
        )
    return course, True


def course_path(course: Course) -> str:
    return reverse("portal:course", kwargs={"slug": course.slug})


def _hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_sign_in_url(contact: Contact, next_path: str = "") -> str:
    """Store a single-use sign-in link for the contact and return its absolute URL.

    Only the token's SHA-256 is stored, so a database leak exposes no
    working link.
    """
    token = secrets.token_urlsafe(32)
    SignInLink.objects.create(
        contact=contact,
        token_hash=_hash_token(token),
        next_path=next_path or reverse("portal:home"),
        expires_at=timezone.now() + timedelta(hours=settings.MAGIC_LINK_MAX_AGE_HOURS),
    )
    return settings.SITE_URL + reverse("portal:magic-link", kwargs={"token": token})


def claim_sign_in_link(token: str) -> SignInLink | None:
    """Mark an unexpired, unused link as used and return it; None when it is not valid.

    The conditional UPDATE claims the link, so two requests racing with the
    same token sign in at most once.
    """
    now = timezone.now()
    claimed = SignInLink.objects.filter(
        token_hash=_hash_token(token), used_at__isnull=True, expires_at__gt=now
    ).update(used_at=now)
    if not claimed:
        return None
    return SignInLink.objects.select_related("contact").get(
        token_hash=_hash_token(token)
    )
