"""The learner's home, course and lesson pages, and who may open them."""

import pytest
from django.contrib.auth.models import User
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from courses.models import EnrollmentStatus, LessonProgress
from courses.services import complete_lesson, record_lesson_view
from tests.factories import make_contact
from tests.portal.helpers import enroll_contact, lesson_url, make_course, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def learner():
    return make_contact(first_name="Ada")


@pytest.fixture
def learner_client(client, learner):
    return sign_in(client, learner)


def test_anonymous_user_redirected_to_sign_in(client):
    course, lessons = make_course(1)
    paths = [
        "/learn/",
        f"/learn/courses/{course.slug}/",
        lesson_url(course, lessons[0]),
    ]

    for path in paths:
        response = client.get(path)
        assert response.status_code == 302
        assert response["Location"] == f"/learn/sign-in/?next={path}"


def test_anonymous_complete_redirected_to_sign_in(client):
    course, lessons = make_course(1)

    response = client.post(lesson_url(course, lessons[0]) + "complete/")

    assert response.status_code == 302
    assert response["Location"].startswith("/learn/sign-in/?next=")
    assert LessonProgress.objects.count() == 0


def test_staff_without_contact_sees_explanation(client):
    staff = User.objects.create_user("csm", password="a long password", is_staff=True)
    client.force_login(staff)

    response = client.get("/learn/")

    assert response.status_code == 403
    assert b"not linked to a contact" in response.content
    assert b"/admin/courses/course/" in response.content


def test_home_lists_enrollments_with_progress(learner_client, learner):
    started, started_lessons = make_course(3)
    untouched, untouched_lessons = make_course(2)
    enrollment = enroll_contact(learner, started)
    enroll_contact(learner, untouched)
    complete_lesson(enrollment, started_lessons[0])

    response = learner_client.get("/learn/")

    content = response.content.decode()
    assert response.status_code == 200
    # 1 of 3 is 33.3%, shown rounded down.
    assert "1 of 3 required lessons completed (33%)" in content
    assert "0 of 2 required lessons completed (0%)" in content
    assert f'href="{lesson_url(started, started_lessons[1])}"' in content
    assert f'href="{lesson_url(untouched, untouched_lessons[0])}"' in content
    assert "Resume" in content
    assert "Start" in content


def test_home_hides_unpublished_course(learner_client, learner):
    hidden, _lessons = make_course(1, published=False)
    enroll_contact(learner, hidden)

    response = learner_client.get("/learn/")

    assert hidden.title not in response.content.decode()
    assert "not enrolled in any course" in response.content.decode()


def test_home_shows_completed_status(learner_client, learner):
    course, lessons = make_course(1)
    enrollment = enroll_contact(learner, course)
    complete_lesson(enrollment, lessons[0])

    content = learner_client.get("/learn/").content.decode()

    assert "Completed" in content
    assert "1 of 1 required lesson completed (100%)" in content


def test_course_page_lists_lessons_in_order(learner_client, learner):
    course, lessons = make_course(2, 2)
    # Swap the modules' order so that display order differs from creation order.
    first_module, second_module = lessons[0].module, lessons[2].module
    first_module.order, second_module.order = 2, 1
    first_module.save()
    second_module.save()
    enrollment = enroll_contact(learner, course)
    complete_lesson(enrollment, lessons[2])
    record_lesson_view(enrollment, lessons[3])

    response = learner_client.get(f"/learn/courses/{course.slug}/")

    outline = response.context["outline"]
    assert [entry.module for entry in outline] == [second_module, first_module]
    displayed_lessons = [item.lesson for entry in outline for item in entry.lessons]
    assert displayed_lessons == [lessons[2], lessons[3], lessons[0], lessons[1]]
    states = [str(item.state) for entry in outline for item in entry.lessons]
    assert states == ["completed", "in_progress", "not_started", "not_started"]
    content = response.content.decode()
    positions = [content.index(lesson.title) for lesson in displayed_lessons]
    assert positions == sorted(positions)
    assert "Completed" in content
    assert "In progress" in content
    assert "Not started" in content


def test_course_page_marks_optional_lessons(learner_client, learner):
    course, _lessons = make_course(2, optional=(1,))
    enroll_contact(learner, course)

    content = learner_client.get(f"/learn/courses/{course.slug}/").content.decode()

    assert content.count("(optional)") == 1
    assert "0 of 1 required lesson completed (0%)" in content


def test_lesson_page_records_view(learner_client, learner):
    course, lessons = make_course(2)
    enrollment = enroll_contact(learner, course)

    learner_client.get(lesson_url(course, lessons[1]))
    response = learner_client.get(lesson_url(course, lessons[1]))

    assert response.status_code == 200
    progress = LessonProgress.objects.get(enrollment=enrollment, lesson=lessons[1])
    assert progress.views == 2
    assert progress.completed_at is None
    enrollment.refresh_from_db()
    assert enrollment.started_at == progress.started_at
    assert enrollment.furthest_lesson == lessons[1]


def test_lesson_page_links_neighbours(learner_client, learner):
    course, lessons = make_course(1, 2)
    enroll_contact(learner, course)

    first = learner_client.get(lesson_url(course, lessons[0])).context
    middle = learner_client.get(lesson_url(course, lessons[1])).context
    last = learner_client.get(lesson_url(course, lessons[2])).context

    assert first["previous_url"] is None
    assert first["next_url"] == lesson_url(course, lessons[1])
    assert middle["previous_url"] == lesson_url(course, lessons[0])
    assert middle["next_url"] == lesson_url(course, lessons[2])
    assert last["next_url"] is None


def test_lesson_body_is_escaped(learner_client, learner):
    course, lessons = make_course(1)
    lessons[0].body = "<script>alert('x')</script>\n\nSecond <b>paragraph</b>"
    lessons[0].url = "javascript:alert(1)"
    lessons[0].save()
    enroll_contact(learner, course)

    content = learner_client.get(lesson_url(course, lessons[0])).content.decode()

    assert "<script>alert" not in content
    assert "<p>&lt;script&gt;alert('x')&lt;/script&gt;</p>" in content
    assert "<p>Second &lt;b&gt;paragraph&lt;/b&gt;</p>" in content
    assert "javascript:" not in content


def test_lesson_web_link_is_shown(learner_client, learner):
    course, lessons = make_course(1)
    lessons[0].url = "https://videos.example.com/intro"
    lessons[0].save()
    enroll_contact(learner, course)

    content = learner_client.get(lesson_url(course, lessons[0])).content.decode()

    assert 'href="https://videos.example.com/intro"' in content


def test_mark_complete_updates_progress(learner_client, learner):
    course, lessons = make_course(2)
    enrollment = enroll_contact(learner, course)

    response = learner_client.post(lesson_url(course, lessons[0]) + "complete/")

    assert response.status_code == 302
    assert response["Location"] == lesson_url(course, lessons[1])
    progress = LessonProgress.objects.get(enrollment=enrollment, lesson=lessons[0])
    assert progress.completed_at is not None
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.ACTIVE
    home = learner_client.get("/learn/").content.decode()
    assert "1 of 2 required lessons completed (50%)" in home


def test_mark_complete_completes_enrollment(learner_client, learner):
    course, lessons = make_course(3, optional=(2,))
    enrollment = enroll_contact(learner, course)

    learner_client.post(lesson_url(course, lessons[0]) + "complete/")
    response = learner_client.post(lesson_url(course, lessons[1]) + "complete/")

    assert response.status_code == 302
    assert response["Location"] == f"/learn/courses/{course.slug}/"
    enrollment.refresh_from_db()
    assert enrollment.status == EnrollmentStatus.COMPLETED
    assert enrollment.completed_at is not None
    page = learner_client.get(response["Location"]).content.decode()
    assert f"You completed {course.title}." in page


def test_mark_complete_requires_post(learner_client, learner):
    course, lessons = make_course(1)
    enroll_contact(learner, course)

    response = learner_client.get(lesson_url(course, lessons[0]) + "complete/")

    assert response.status_code == 405
    assert not LessonProgress.objects.filter(completed_at__isnull=False).exists()


def test_other_contacts_course_is_404(learner_client, learner):
    own, _own_lessons = make_course(1)
    enroll_contact(learner, own)
    other, other_lessons = make_course(1)
    enroll_contact(make_contact(), other)
    not_enrolled, not_enrolled_lessons = make_course(1)

    gets = [
        f"/learn/courses/{other.slug}/",
        lesson_url(other, other_lessons[0]),
        f"/learn/courses/{not_enrolled.slug}/",
        lesson_url(not_enrolled, not_enrolled_lessons[0]),
        # A foreign lesson id under the learner's own course slug.
        lesson_url(own, other_lessons[0]),
        "/learn/courses/no-such-course/",
        f"/learn/courses/{own.slug}/lessons/999999999/",
    ]
    posts = [
        lesson_url(other, other_lessons[0]) + "complete/",
        lesson_url(not_enrolled, not_enrolled_lessons[0]) + "complete/",
        lesson_url(own, other_lessons[0]) + "complete/",
    ]

    for path in gets:
        assert learner_client.get(path).status_code == 404, path
    for path in posts:
        assert learner_client.post(path).status_code == 404, path
    assert LessonProgress.objects.count() == 0


def test_unpublished_course_pages_are_404(learner_client, learner):
    course, lessons = make_course(1, published=False)
    enroll_contact(learner, course)

    assert learner_client.get(f"/learn/courses/{course.slug}/").status_code == 404
    assert learner_client.get(lesson_url(course, lessons[0])).status_code == 404
    complete_url = lesson_url(course, lessons[0]) + "complete/"
    assert learner_client.post(complete_url).status_code == 404


def count_home_queries(client, contact, enrollment_total):
    for _ in range(enrollment_total):
        course, lessons = make_course(2, 1)
        enrollment = enroll_contact(contact, course)
        complete_lesson(enrollment, lessons[0])
    with CaptureQueriesContext(connection) as queries:
        response = client.get("/learn/")
    assert response.status_code == 200
    assert len(response.context["rows"]) == enrollment_total
    return len(queries)


def test_home_query_count_is_constant():
    few_contact, many_contact = make_contact(), make_contact()
    few_client = sign_in(Client(), few_contact)
    many_client = sign_in(Client(), many_contact)

    few_queries = count_home_queries(few_client, few_contact, 2)
    many_queries = count_home_queries(many_client, many_contact, 10)

    assert many_queries == few_queries
