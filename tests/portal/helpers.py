"""Course data and signed-in clients for the portal tests."""

import itertools
import threading
from collections.abc import Callable
from urllib.parse import urlsplit

import psycopg
from django.contrib.auth.models import Permission, User
from django.db import connection
from django.test import Client

from courses.models import (
    Choice,
    Course,
    Enrollment,
    Lesson,
    LessonKind,
    LessonProgress,
    Module,
    Question,
)
from courses.portal_session import CONTACT_ID_SESSION_KEY
from courses.services import enroll, portal_user_for
from customers.models import Contact
from tests.factories import NOW

_sequence = itertools.count(1)


def make_course(
    *module_sizes: int, published: bool = True, optional: tuple[int, ...] = ()
) -> tuple[Course, list[Lesson]]:
    """Create a course with one module per size; return it and its lessons in order.

    `optional` lists positions in the returned lesson list that are not required.
    """
    number = next(_sequence)
    course = Course.objects.create(
        slug=f"course-{number}", title=f"Course {number}", is_published=published
    )
    lessons: list[Lesson] = []
    for module_order, size in enumerate(module_sizes, start=1):
        module = Module.objects.create(
            course=course, title=f"Module {number}.{module_order}", order=module_order
        )
        for lesson_order in range(1, size + 1):
            position = len(lessons)
            lessons.append(
                Lesson.objects.create(
                    module=module,
                    title=f"Lesson {number}.{module_order}.{lesson_order}",
                    body=f"Body of lesson {number}.{module_order}.{lesson_order}",
                    order=lesson_order,
                    is_required=position not in optional,
                )
            )
    return course, lessons


def enroll_contact(contact: Contact, course: Course) -> Enrollment:
    enrollment, _created = enroll(contact, course, at=NOW)
    return enrollment


def sign_in(client: Client, contact: Contact) -> Client:
    """Sign the contact in as a sign-in link does: the user, and the contact's id."""
    client.force_login(portal_user_for(contact))
    session = client.session
    session[CONTACT_ID_SESSION_KEY] = contact.pk
    session.save()
    return client


def staff_client(*codenames: str, username: str = "csm") -> tuple[Client, User]:
    """Return a client signed in as a staff user with these courses permissions."""
    user = User.objects.create_user(username, password="a password", is_staff=True)
    user.user_permissions.set(
        Permission.objects.filter(
            content_type__app_label="courses", codename__in=codenames
        )
    )
    client = Client()
    client.force_login(user)
    return client, user


def lesson_url(course: Course, lesson: Lesson) -> str:
    return f"/learn/courses/{course.slug}/lessons/{lesson.pk}/"


def path_of(url: str) -> str:
    return urlsplit(url).path


def add_question(
    lesson: Lesson,
    kind: str,
    text: str,
    choices: tuple[tuple[str, bool], ...] = (),
    *,
    accepted_answers: str = "",
    points: int = 1,
    feedback: str = "",
    pool: str = "",
) -> Question:
    """Add a question with its choices, as (text, is correct) pairs, to a lesson."""
    order = Question.objects.filter(lesson=lesson).count() + 1
    question = Question.objects.create(
        lesson=lesson,
        kind=kind,
        text=text,
        order=order,
        points=points,
        accepted_answers=accepted_answers,
        feedback=feedback,
        pool=pool,
    )
    Choice.objects.bulk_create(
        Choice(question=question, text=choice_text, is_correct=correct, order=number)
        for number, (choice_text, correct) in enumerate(choices, start=1)
    )
    return question


def make_assessment(
    kind: str = LessonKind.QUIZ, **rules: object
) -> tuple[Course, Lesson]:
    """Create a course of a text lesson and an assessment lesson with these rules."""
    course, lessons = make_course(2)
    assessment = lessons[1]
    assessment.kind = kind
    for name, value in rules.items():
        setattr(assessment, name, value)
    assessment.save()
    return course, assessment


def correct_choice(question: Question) -> int:
    return question.choices.get(is_correct=True).pk


def wrong_choice(question: Question) -> int:
    return question.choices.filter(is_correct=False).first().pk  # type: ignore[union-attr]


def run_at_once(*targets: Callable[[], object]) -> list[Exception]:
    """Run the targets in threads released together; return the exceptions raised.

    Each thread closes its own database connection when it ends.
    """
    barrier = threading.Barrier(len(targets))
    errors: list[Exception] = []

    def runner(target: Callable[[], object]) -> None:
        try:
            barrier.wait(timeout=10)
            target()
        except Exception as exc:  # Returned to the test, which checks them.
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=runner, args=(target,)) for target in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    return errors


def alter_progress_column(column: str, type_name: str) -> None:
    """Change a lesson progress column's type as a migration would, elsewhere.

    The change is made from another connection, so prepared statements on
    the test's own connection see it as a deploy's migration would.
    """
    settings = connection.settings_dict
    table = LessonProgress._meta.db_table
    with psycopg.connect(
        dbname=settings["NAME"],
        user=settings["USER"],
        password=settings["PASSWORD"],
        host=settings["HOST"],
        port=settings["PORT"],
        autocommit=True,
    ) as other:
        other.execute(f"ALTER TABLE {table} ALTER COLUMN {column} TYPE {type_name}")
