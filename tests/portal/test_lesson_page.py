"""The lesson page's repeat view in one statement against the general path."""

import re
from datetime import timedelta

import pytest
from django.db import connection
from django.db.models import Model
from django.http import Http404
from django.test import Client
from django.test.utils import CaptureQueriesContext

from courses import views
from courses.lesson_page import (
    GENERAL_PATH_KINDS,
    LessonPage,
    count_view_and_read,
    repeat_view_in_one_statement,
)
from courses.models import EnrollmentStatus, LessonKind, LessonProgress
from courses.portal_session import CONTACT_ID_SESSION_KEY
from courses.services import complete_lesson, portal_user_for, record_lesson_view
from tests.factories import NOW, make_contact
from tests.portal.helpers import (
    alter_progress_column,
    enroll_contact,
    lesson_url,
    make_course,
    sign_in,
)

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(
        connection.vendor != "postgresql",
        reason="the one statement runs on PostgreSQL",
    ),
]

# Every lesson kind whose repeat view the statement counts, with the
# fields its page reads.
FAST_KINDS = [
    (LessonKind.TEXT, {}),
    (LessonKind.VIDEO, {"url": "https://www.youtube.com/watch?v=dQw4w9WgXcQ"}),
    (LessonKind.PDF, {}),
    (LessonKind.LINK, {"url": "https://docs.example.com/start"}),
    (LessonKind.DISCUSSION, {}),
    (LessonKind.FILE, {}),
]


def twin_learners(module_sizes=(2, 3)):
    """Two learners enrolled in one course; return the course, lessons, contacts."""
    course, lessons = make_course(*module_sizes)
    first, second = make_contact(), make_contact()
    enroll_contact(first, course)
    enroll_contact(second, course)
    return course, lessons, first, second


def set_kind(lessons, kind, fields) -> None:
    for lesson in lessons:
        lesson.kind = kind
        for name, value in fields.items():
            setattr(lesson, name, value)
        lesson.save()


def act_alike(course, contacts, actions):
    """Apply the same (action, lesson) steps to each contact's enrollment.

    Every row then gets the same PDF pages and video intervals, so the JSON
    columns are compared too.
    """
    for contact in contacts:
        enrollment = contact.enrollments.get(course=course)
        for offset, (action, lesson) in enumerate(actions):
            at = NOW + timedelta(minutes=offset)
            if action == "view":
                record_lesson_view(enrollment, lesson, at=at)
            else:
                complete_lesson(enrollment, lesson, at=at)
    LessonProgress.objects.filter(enrollment__course=course).update(
        pages_viewed=[1, 2, 5], watched_intervals=[[0, 30]], duration_seconds=100
    )


def field_values(instance: Model, ignore=()) -> dict:
    # Which learner, and when each twin's row was written.
    ignored = {"id", "contact_id", "enrollment_id", "created_at", "updated_at", *ignore}
    return {
        field.attname: getattr(instance, field.attname)
        for field in instance._meta.concrete_fields
        if field.attname not in ignored
    }


def assert_same_page(fast: LessonPage, general: LessonPage) -> None:
    assert field_values(fast.enrollment) == field_values(general.enrollment)
    assert field_values(fast.enrollment.course) == field_values(
        general.enrollment.course
    )
    assert field_values(fast.lesson) == field_values(general.lesson)
    assert field_values(fast.lesson.module) == field_values(general.lesson.module)
    assert fast.progress is not None and general.progress is not None
    assert field_values(fast.progress) == field_values(general.progress)
    assert (fast.previous_id, fast.next_id) == (general.previous_id, general.next_id)


def progress_rows(contact, ignore=()) -> list[dict]:
    return [
        field_values(row, ignore)
        for row in LessonProgress.objects.filter(enrollment__contact=contact).order_by(
            "lesson_id"
        )
    ]


@pytest.mark.parametrize(("kind", "fields"), FAST_KINDS)
def test_repeat_view_equals_general_path(kind, fields):
    course, lessons, fast, general = twin_learners()
    set_kind(lessons, kind, fields)
    # Lessons 0 to 3 viewed, 1 completed, lesson 4 never opened: every
    # viewed lesson is at or before the furthest one.
    act_alike(
        course,
        [fast, general],
        [("view", lessons[i]) for i in range(4)] + [("complete", lessons[1])],
    )
    at = NOW + timedelta(hours=1)

    for lesson in lessons[:4]:
        fast_page = repeat_view_in_one_statement(fast.pk, course.slug, lesson.pk, at)
        general_page = count_view_and_read(general, course.slug, lesson.pk, at=at)

        assert fast_page is not None
        assert_same_page(fast_page, general_page)
    assert progress_rows(fast) == progress_rows(general)
    assert [row["views"] for row in progress_rows(fast)] == [2, 2, 2, 2]


def test_neighbours_follow_module_then_lesson_order():
    course, lessons, fast, _general = twin_learners((3, 1, 2))
    # Reorder: the second module comes first, and its lessons' order
    # differs from their ids.
    second_module = lessons[3].module
    second_module.order = 0
    second_module.save()
    lessons[4].order, lessons[5].order = 2, 1
    lessons[4].save()
    lessons[5].save()
    expected = [lessons[3], *lessons[:3], lessons[5], lessons[4]]
    act_alike(course, [fast], [("view", lesson) for lesson in expected])

    neighbours = []
    for lesson in expected:
        page = repeat_view_in_one_statement(fast.pk, course.slug, lesson.pk)
        assert page is not None
        neighbours.append((page.previous_id, page.next_id))

    ids = [None, *(lesson.pk for lesson in expected), None]
    assert neighbours == list(zip(ids[:-2], ids[2:], strict=True))


def unchanged_rows_after(contact, attempt) -> None:
    before = progress_rows(contact)
    assert attempt() is None
    assert progress_rows(contact) == before


def test_first_view_takes_general_path():
    course, lessons, fast, _general = twin_learners()
    act_alike(course, [fast], [("view", lessons[0])])

    unchanged_rows_after(
        fast, lambda: repeat_view_in_one_statement(fast.pk, course.slug, lessons[1].pk)
    )


def test_view_past_furthest_lesson_takes_general_path():
    course, lessons, fast, _general = twin_learners()
    act_alike(course, [fast], [("view", lessons[2]), ("view", lessons[0])])
    # A row past the furthest lesson, as an import could leave.
    enrollment = fast.enrollments.get()
    LessonProgress.objects.create(
        enrollment=enrollment, lesson=lessons[4], started_at=NOW, views=1
    )

    unchanged_rows_after(
        fast, lambda: repeat_view_in_one_statement(fast.pk, course.slug, lessons[4].pk)
    )


def test_enrollment_not_started_takes_general_path():
    course, lessons, fast, _general = twin_learners()
    act_alike(course, [fast], [("view", lessons[0])])
    # Progress without a start, as an import could leave.
    fast.enrollments.update(started_at=None)

    unchanged_rows_after(
        fast, lambda: repeat_view_in_one_statement(fast.pk, course.slug, lessons[0].pk)
    )


@pytest.mark.parametrize("kind", GENERAL_PATH_KINDS)
def test_richer_kinds_take_general_path(kind):
    course, lessons, fast, _general = twin_learners()
    act_alike(course, [fast], [("view", lessons[0])])
    lessons[0].kind = kind
    lessons[0].save()

    unchanged_rows_after(
        fast, lambda: repeat_view_in_one_statement(fast.pk, course.slug, lessons[0].pk)
    )


@pytest.mark.parametrize("change", ["unpublished", "unenrolled"])
def test_hidden_course_gets_404(change):
    course, lessons, fast, _general = twin_learners()
    act_alike(course, [fast], [("view", lessons[0])])
    if change == "unpublished":
        course.is_published = False
        course.save()
    else:
        fast.enrollments.update(status=EnrollmentStatus.UNENROLLED)

    unchanged_rows_after(
        fast, lambda: repeat_view_in_one_statement(fast.pk, course.slug, lessons[0].pk)
    )
    with pytest.raises(Http404):
        count_view_and_read(fast, course.slug, lessons[0].pk)


def test_other_learners_lessons_unreached():
    course, lessons, fast, general = twin_learners()
    other_course, other_lessons = make_course(1)
    enroll_contact(fast, other_course)
    act_alike(course, [general], [("view", lessons[0])])
    act_alike(other_course, [fast], [("view", other_lessons[0])])

    # The other learner's lesson, and a lesson of another course under
    # this course's address.
    unchanged_rows_after(
        general,
        lambda: repeat_view_in_one_statement(fast.pk, course.slug, lessons[0].pk),
    )
    unchanged_rows_after(
        fast,
        lambda: repeat_view_in_one_statement(fast.pk, course.slug, other_lessons[0].pk),
    )


# --- The page ----------------------------------------------------------------

CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def page_html(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return CSRF_TOKEN.sub("", response.content.decode())


@pytest.mark.parametrize(("kind", "fields"), FAST_KINDS)
def test_page_equals_general_path_page(kind, fields, monkeypatch):
    course, lessons, fast, general = twin_learners()
    set_kind(lessons, kind, fields)
    act_alike(course, [fast, general], [("view", lessons[2]), ("complete", lessons[1])])
    fast_client = sign_in(Client(), fast)
    general_client = sign_in(Client(), general)

    fast_pages = [page_html(fast_client, lesson_url(course, x)) for x in lessons[1:3]]
    monkeypatch.setattr(views, "repeat_view_in_one_statement", lambda *args: None)
    general_pages = [
        page_html(general_client, lesson_url(course, x)) for x in lessons[1:3]
    ]

    assert fast_pages == general_pages
    # Each page view started its heartbeats at its own request's time.
    ignore = ["heartbeat_at"]
    assert progress_rows(fast, ignore) == progress_rows(general, ignore)


def page_queries(client: Client, url: str) -> list[str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(url)
    assert response.status_code == 200
    return [query["sql"] for query in queries.captured_queries]


def test_repeat_view_page_is_one_statement():
    contact = make_contact()
    small, small_lessons = make_course(2)
    large, large_lessons = make_course(10, 10, 10)
    enroll_contact(contact, small)
    enroll_contact(contact, large)
    client = sign_in(Client(), contact)
    client.get(lesson_url(small, small_lessons[1]))
    client.get(lesson_url(large, large_lessons[17]))

    small_sql = page_queries(client, lesson_url(small, small_lessons[1]))
    large_sql = page_queries(client, lesson_url(large, large_lessons[17]))

    # Sessions and users come from the session cache; the contact's id
    # from the session.
    assert len(small_sql) == len(large_sql) == 1
    assert small_sql[0].startswith("WITH target AS")
    assert LessonProgress.objects.get(lesson=large_lessons[17]).views == 2


def test_session_stores_contact_id():
    contact = make_contact()
    course, lessons = make_course(2)
    enroll_contact(contact, course)
    client = Client()
    # A session begun before sign-in stored the contact's id.
    client.force_login(portal_user_for(contact))
    client.get(lesson_url(course, lessons[0]))

    assert client.session[CONTACT_ID_SESSION_KEY] == contact.pk
    assert len(page_queries(client, lesson_url(course, lessons[0]))) == 1


@pytest.mark.parametrize("lesson_id", [2**63 - 1, 2**63])
def test_lesson_id_beyond_any_row_gets_404(lesson_id):
    contact = make_contact()
    course, lessons = make_course(2)
    enroll_contact(contact, course)
    client = sign_in(Client(), contact)
    client.get(lesson_url(course, lessons[0]))

    # The address takes any number of digits. The largest bigint matches no
    # row; one past it does not fit the column's type at all.
    response = client.get(f"/learn/courses/{course.slug}/lessons/{lesson_id}/")

    assert response.status_code == 404
    assert LessonProgress.objects.get(lesson=lessons[0]).views == 1


def test_head_counts_no_view():
    contact = make_contact()
    course, lessons = make_course(2)
    enroll_contact(contact, course)
    client = sign_in(Client(), contact)
    client.get(lesson_url(course, lessons[0]))

    assert client.head(lesson_url(course, lessons[0])).status_code == 200
    assert LessonProgress.objects.get(lesson=lessons[0]).views == 1


# --- A schema change under a prepared statement ------------------------------

# Enough page views for psycopg to prepare the statement (prepare_threshold).
PREPARED_AFTER = 5


@pytest.mark.django_db(transaction=True, serialized_rollback=True)
def test_page_after_column_type_change(caplog):
    contact = make_contact()
    course, lessons = make_course(1)
    enroll_contact(contact, course)
    client = sign_in(Client(), contact)
    url = lesson_url(course, lessons[0])
    for _ in range(PREPARED_AFTER + 2):
        assert client.get(url).status_code == 200
    alter_progress_column("views", "bigint")
    try:
        # Enough to prepare the statement again and run it prepared.
        later = [client.get(url).status_code for _ in range(PREPARED_AFTER + 2)]
    finally:
        # Later tests reuse this connection, which prepared the statement.
        connection.close()
        alter_progress_column("views", "integer")

    assert later == [200] * (PREPARED_AFTER + 2)
    assert caplog.text.count("A prepared statement failed, deallocating it") == 1
    assert LessonProgress.objects.get().views == 2 * (PREPARED_AFTER + 2)
