"""The courses admin pages a CSM uses."""

import pytest
from django.contrib.auth.models import User

from courses.assessments import start_attempt, submit_attempt
from courses.models import (
    Enrollment,
    EnrollmentSource,
    LessonKind,
    Question,
    SignInLink,
)
from courses.services import complete_lesson, create_sign_in_url
from tests.factories import make_contact
from tests.portal.helpers import enroll_contact, make_course

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(client):
    user = User.objects.create_superuser("admin", "admin@example.com", "a password")
    client.force_login(user)
    return client


def test_admin_pages_open(admin_client):
    course, lessons = make_course(2)
    enrollment = enroll_contact(make_contact(), course)
    complete_lesson(enrollment, lessons[0])
    progress = enrollment.lesson_progress.get()
    create_sign_in_url(enrollment.contact)
    link = SignInLink.objects.get()
    pages = [
        "/admin/courses/course/",
        f"/admin/courses/course/{course.pk}/change/",
        "/admin/courses/module/",
        f"/admin/courses/module/{lessons[0].module_id}/change/",
        "/admin/courses/lesson/",
        f"/admin/courses/lesson/{lessons[0].pk}/change/",
        "/admin/courses/enrollment/",
        f"/admin/courses/enrollment/{enrollment.pk}/change/",
        "/admin/courses/enrollment/add/",
        "/admin/courses/lessonprogress/",
        f"/admin/courses/lessonprogress/{progress.pk}/change/",
        "/admin/courses/signinlink/",
        f"/admin/courses/signinlink/{link.pk}/change/",
    ]

    for page in pages:
        assert admin_client.get(page).status_code == 200, page


def test_lesson_form_says_which_videos_resume(admin_client):
    _course, lessons = make_course(1)

    page = admin_client.get(f"/admin/courses/lesson/{lessons[0].pk}/change/")

    # A CSM choosing a video host learns that only some players resume.
    text = page.content.decode()
    assert "YouTube and Vimeo videos resume where the learner stopped." in text
    assert "Loom and Wistia videos start from the beginning" in text


def test_admin_never_shows_token_hash(admin_client):
    contact = make_contact()
    create_sign_in_url(contact)
    link = SignInLink.objects.get()

    pages = [
        admin_client.get("/admin/courses/signinlink/"),
        admin_client.get(f"/admin/courses/signinlink/{link.pk}/change/"),
    ]

    for page in pages:
        assert link.token_hash not in page.content.decode()
        assert contact.email in page.content.decode()


def test_progress_and_links_are_read_only(admin_client):
    contact = make_contact()
    create_sign_in_url(contact)

    assert admin_client.get("/admin/courses/signinlink/add/").status_code == 403
    assert admin_client.get("/admin/courses/lessonprogress/add/").status_code == 403


def test_enrollment_search_by_email(admin_client):
    course, _lessons = make_course(1)
    found = make_contact(email="findme@example.com")
    enroll_contact(found, course)
    enroll_contact(make_contact(email="other@example.com"), course)

    response = admin_client.get("/admin/courses/enrollment/?q=findme")

    assert list(response.context["cl"].result_list) == [
        Enrollment.objects.get(contact=found)
    ]


def test_admin_enrollment_records_origin(admin_client):
    course, _lessons = make_course(1)
    contact = make_contact()

    response = admin_client.post(
        "/admin/courses/enrollment/add/",
        {
            "contact": contact.pk,
            "course": course.pk,
            "source": EnrollmentSource.MANUAL,
            "origin": "",
            "status": "active",
            "enrolled_at_0": "2024-06-01",
            "enrolled_at_1": "09:00:00",
            "lesson_progress-TOTAL_FORMS": "0",
            "lesson_progress-INITIAL_FORMS": "0",
        },
    )

    assert response.status_code == 302
    enrollment = Enrollment.objects.get()
    assert enrollment.contact == contact
    assert enrollment.origin == "admin:admin"


def question_form_data(lesson, **question):
    """Return the POST data of the lesson change page with one new question."""
    data = {
        "module": lesson.module_id,
        "order": lesson.order,
        "title": lesson.title,
        "kind": lesson.kind,
        "is_required": "on",
        "body": "",
        "url": "",
        "external_id": "",
        "weight": "",
        "pass_mark": "" if lesson.pass_mark is None else str(lesson.pass_mark),
        "max_attempts": "",
        "time_limit_minutes": "",
        "questions_per_attempt": "",
        "questions-TOTAL_FORMS": "1",
        "questions-INITIAL_FORMS": "0",
        "questions-MIN_NUM_FORMS": "0",
        "questions-MAX_NUM_FORMS": "1000",
        "questions-0-order": "1",
        "questions-0-points": "1",
        "questions-0-text": "Where do you invite your team?",
        "questions-0-accepted_answers": "",
        "questions-0-feedback": "",
        "questions-0-choice_lines": "",
    }
    data.update({f"questions-0-{name}": value for name, value in question.items()})
    return data


def make_quiz_lesson(kind=LessonKind.QUIZ, **fields):
    _course, lessons = make_course(1)
    lesson = lessons[0]
    lesson.kind = kind
    for name, value in fields.items():
        setattr(lesson, name, value)
    lesson.save()
    return lesson


def test_admin_adds_question_with_choices(admin_client):
    lesson = make_quiz_lesson()
    url = f"/admin/courses/lesson/{lesson.pk}/change/"

    response = admin_client.post(
        url,
        question_form_data(
            lesson, kind="single_choice", choice_lines="* Settings\nReports\n\n"
        ),
    )

    assert response.status_code == 302, response.content.decode()[:3000]
    question = Question.objects.get(lesson=lesson)
    assert [(c.text, c.is_correct, c.order) for c in question.choices.all()] == [
        ("Settings", True, 1),
        ("Reports", False, 2),
    ]
    page = admin_client.get(url).content.decode()
    assert "* Settings\nReports" in page


def test_admin_edit_keeps_choice_ids(admin_client):
    lesson = make_quiz_lesson()
    admin_client.post(
        f"/admin/courses/lesson/{lesson.pk}/change/",
        question_form_data(lesson, kind="single_choice", choice_lines="* A\nB"),
    )
    question = Question.objects.get()
    kept = question.choices.get(text="A").pk
    data = question_form_data(lesson, kind="single_choice", choice_lines="B\n* A\nC")
    data.update(
        {
            "questions-INITIAL_FORMS": "1",
            "questions-0-id": str(question.pk),
            "questions-0-lesson": str(lesson.pk),
        }
    )

    response = admin_client.post(f"/admin/courses/lesson/{lesson.pk}/change/", data)

    assert response.status_code == 302
    choices = list(question.choices.all())
    assert [(c.text, c.is_correct) for c in choices] == [
        ("B", False),
        ("A", True),
        ("C", False),
    ]
    assert question.choices.get(text="A").pk == kept


@pytest.mark.parametrize(
    ("question", "message"),
    [
        (
            {"kind": "single_choice", "choice_lines": "* A\n* B"},
            "needs exactly one correct choice marked with *; found 2",
        ),
        (
            {"kind": "single_choice", "choice_lines": "A\nB"},
            "needs exactly one correct choice marked with *; found 0",
        ),
        ({"kind": "single_choice", "choice_lines": "* A"}, "Add at least two choices"),
        (
            {"kind": "multiple_choice", "choice_lines": "A\nB\nC"},
            "Mark at least one correct choice",
        ),
        (
            {"kind": "true_false", "choice_lines": "* Yes\nNo"},
            "exactly two choices, True and False",
        ),
        (
            {"kind": "short_answer", "accepted_answers": ""},
            "needs at least one accepted answer",
        ),
        (
            {"kind": "short_answer", "accepted_answers": "x", "choice_lines": "* A\nB"},
            "question has no choices",
        ),
        (
            {"kind": "single_choice", "choice_lines": "* A\nA"},
            "Two choices have the same text",
        ),
    ],
)
def test_admin_rejects_invalid_question(admin_client, question, message):
    lesson = make_quiz_lesson()

    response = admin_client.post(
        f"/admin/courses/lesson/{lesson.pk}/change/",
        question_form_data(lesson, **question),
    )

    assert response.status_code == 200
    assert message in response.content.decode()
    assert not Question.objects.exists()


def test_admin_rejects_questions_on_text_lesson(admin_client):
    lesson = make_quiz_lesson(kind=LessonKind.TEXT)

    response = admin_client.post(
        f"/admin/courses/lesson/{lesson.pk}/change/",
        question_form_data(lesson, kind="single_choice", choice_lines="* A\nB"),
    )

    assert response.status_code == 200
    assert "A text lesson has no questions" in response.content.decode()
    assert not Question.objects.exists()


def test_admin_exam_needs_pass_mark(admin_client):
    lesson = make_quiz_lesson(kind=LessonKind.EXAM)

    response = admin_client.post(
        f"/admin/courses/lesson/{lesson.pk}/change/",
        question_form_data(lesson, kind="single_choice", choice_lines="* A\nB"),
    )

    assert response.status_code == 200
    assert "An exam needs a pass mark" in response.content.decode()
    assert not Question.objects.exists()


def test_admin_draw_size_above_pool_rejected(admin_client):
    lesson = make_quiz_lesson()
    data = question_form_data(lesson, kind="single_choice", choice_lines="* A\nB")
    data["questions_per_attempt"] = "3"

    response = admin_client.post(f"/admin/courses/lesson/{lesson.pk}/change/", data)

    assert response.status_code == 200
    assert "Questions per attempt is 3, but the unnamed pool has 1 questions" in (
        response.content.decode()
    )


def test_admin_pass_exam_rule_needs_exam(admin_client):
    course, _lessons = make_course(1)
    data = {
        "title": course.title,
        "slug": course.slug,
        "summary": "",
        "is_published": "on",
        "completion_rule": "pass_exam",
        "issues_certificates": "on",
        "certificate_valid_days": "",
        "starts_on": "",
        "length_days": "",
        "external_id": "",
        "modules-TOTAL_FORMS": "0",
        "modules-INITIAL_FORMS": "0",
        "modules-MIN_NUM_FORMS": "0",
        "modules-MAX_NUM_FORMS": "1000",
    }

    response = admin_client.post(f"/admin/courses/course/{course.pk}/change/", data)

    assert response.status_code == 200
    assert "This course has no exam lesson" in response.content.decode()
    course.refresh_from_db()
    assert course.completion_rule == "required_lessons"


def test_attempt_admin_lists_attempts(admin_client):
    lesson = make_quiz_lesson()
    Question.objects.create(lesson=lesson, kind="short_answer", text="Menu?")
    contact = make_contact()
    enrollment = enroll_contact(contact, lesson.module.course)
    attempt = start_attempt(enrollment, lesson)
    submit_attempt(enrollment, attempt.pk, {})

    listing = admin_client.get("/admin/courses/attempt/", {"q": contact.email})
    page = admin_client.get(f"/admin/courses/attempt/{attempt.pk}/change/")

    assert listing.status_code == 200
    assert list(listing.context["cl"].result_list) == [attempt]
    assert page.status_code == 200


def test_admin_small_named_pool_rejected(admin_client):
    lesson = make_quiz_lesson(questions_per_attempt=1)
    data = question_form_data(
        lesson, kind="single_choice", choice_lines="* A\nB", pool="Advanced"
    )
    data["questions_per_attempt"] = "2"

    response = admin_client.post(f"/admin/courses/lesson/{lesson.pk}/change/", data)

    assert response.status_code == 200
    assert "but pool “Advanced” has 1 questions" in response.content.decode()
    assert not Question.objects.exists()
