"""Certificates: issued on completion, the PDF, the public verification page."""

import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.contrib.auth.models import User
from django.template.defaultfilters import date as date_filter
from django.test import Client
from pypdf import PdfReader

from courses.assessments import start_attempt, submit_attempt
from courses.certificates import revoke_certificate, verification_url
from courses.models import (
    Certificate,
    CompletionRule,
    LessonKind,
    QuestionKind,
)
from courses.services import complete_lesson
from tests.factories import NOW, make_contact
from tests.portal.helpers import (
    add_question,
    correct_choice,
    enroll_contact,
    make_course,
    sign_in,
    wrong_choice,
)

pytestmark = pytest.mark.django_db

YES_NO = (("Yes", True), ("No", False))


def completed_enrollment(contact, **course_fields):
    course, lessons = make_course(1)
    for name, value in course_fields.items():
        setattr(course, name, value)
    course.save()
    enrollment = enroll_contact(contact, course)
    complete_lesson(enrollment, lessons[0], at=NOW)
    return course, enrollment


def pdf_text(content):
    reader = PdfReader(io.BytesIO(content))
    return "\n".join(page.extract_text() for page in reader.pages)


def test_completion_issues_certificate():
    contact = make_contact(first_name="Ada", last_name="Lovelace")
    course, enrollment = completed_enrollment(contact)

    certificate = Certificate.objects.get(enrollment=enrollment)

    assert certificate.learner_name == "Ada Lovelace"
    assert certificate.course_title == course.title
    assert certificate.issued_at == NOW
    assert certificate.expires_at is None
    # 16 random bytes in hex: 128 bits that cannot be guessed.
    assert len(certificate.code) == 32
    int(certificate.code, 16)


def test_codes_differ_between_certificates():
    codes = {
        completed_enrollment(make_contact())[1].certificates.get().code
        for _ in range(5)
    }

    assert len(codes) == 5


def test_certificate_expiry_follows_course():
    _course, enrollment = completed_enrollment(
        make_contact(), certificate_valid_days=365
    )

    assert enrollment.certificates.get().expires_at == NOW + timedelta(days=365)


def test_course_without_certificates_issues_none():
    _course, enrollment = completed_enrollment(
        make_contact(), issues_certificates=False
    )

    assert not Certificate.objects.filter(enrollment=enrollment).exists()


def test_completing_again_keeps_one_certificate():
    course, lessons = make_course(2, optional=(1,))
    enrollment = enroll_contact(make_contact(), course)
    complete_lesson(enrollment, lessons[0], at=NOW)
    first = Certificate.objects.get()

    complete_lesson(enrollment, lessons[1], at=NOW + timedelta(days=1))

    assert Certificate.objects.get() == first
    assert Certificate.objects.get().issued_at == NOW


def test_passing_exam_issues_certificate():
    course, lessons = make_course(2)
    course.completion_rule = CompletionRule.PASS_EXAM
    course.save()
    exam = lessons[1]
    exam.kind = LessonKind.EXAM
    exam.pass_mark = Decimal(100)
    exam.save()
    question = add_question(exam, QuestionKind.SINGLE_CHOICE, "One", YES_NO)
    enrollment = enroll_contact(make_contact(), course)

    failed = start_attempt(enrollment, exam, at=NOW)
    submit_attempt(enrollment, failed.pk, {question.pk: [wrong_choice(question)]})
    assert not Certificate.objects.exists()

    passed = start_attempt(enrollment, exam, at=NOW)
    submit_attempt(
        enrollment, passed.pk, {question.pk: [correct_choice(question)]}, at=NOW
    )
    assert Certificate.objects.get().enrollment == enrollment


def test_learner_downloads_pdf(client):
    contact = make_contact(first_name="Ada", last_name="Lovelace")
    course, enrollment = completed_enrollment(contact)
    sign_in(client, contact)

    response = client.get(f"/learn/courses/{course.slug}/certificate.pdf")

    assert response.status_code == 200
    assert response["Content-Type"] == "application/pdf"
    assert response["Content-Disposition"] == (
        f'attachment; filename="certificate-{course.slug}.pdf"'
    )
    assert response.content.startswith(b"%PDF-")
    text = pdf_text(response.content)
    assert "Ada Lovelace" in text
    assert course.title in text
    assert enrollment.certificates.get().code in text
    assert verification_url(enrollment.certificates.get()) in text
    assert "15 June 2024" in text


def test_pdf_prints_names_outside_latin1(client):
    contact = make_contact(first_name="Łukasz", last_name="Żółć")
    course, _enrollment = completed_enrollment(contact)
    sign_in(client, contact)

    response = client.get(f"/learn/courses/{course.slug}/certificate.pdf")

    assert response.status_code == 200
    assert "Łukasz Żółć" in pdf_text(response.content)


def test_course_page_links_certificate(client):
    contact = make_contact()
    course, enrollment = completed_enrollment(contact)
    sign_in(client, contact)

    content = client.get(f"/learn/courses/{course.slug}/").content.decode()

    assert f'href="/learn/courses/{course.slug}/certificate.pdf"' in content
    assert (
        f'href="/learn/certificates/{enrollment.certificates.get().code}/"' in content
    )


def test_verify_page_shows_only_public_facts():
    contact = make_contact(first_name="Ada", last_name="Lovelace", role="CFO")
    # Valid for 100 years, so it has not expired when the test runs.
    course, enrollment = completed_enrollment(contact, certificate_valid_days=36500)
    valid_until = date_filter(NOW + timedelta(days=36500), "DATE_FORMAT")
    anonymous = Client()

    response = anonymous.get(
        f"/learn/certificates/{enrollment.certificates.get().code}/"
    )

    content = response.content.decode()
    assert response.status_code == 200
    assert "This certificate is valid" in content
    assert "Ada Lovelace" in content
    assert course.title in content
    assert "June 15, 2024" in content
    assert f"<dt>Valid until</dt><dd>{valid_until}</dd>" in content
    assert contact.email not in content
    assert contact.account.name not in content
    assert "CFO" not in content
    assert "Score" not in content
    assert response["Cache-Control"] == "private, no-store"


def test_verify_page_reports_expiry():
    _course, enrollment = completed_enrollment(make_contact(), certificate_valid_days=1)

    content = Client().get(f"/learn/certificates/{enrollment.certificates.get().code}/")

    assert "expired on June 16, 2024" in content.content.decode()


@pytest.mark.parametrize("code", ["0" * 32, "not-a-code", "a" * 31])
def test_unknown_certificate_is_404(code):
    completed_enrollment(make_contact())

    response = Client().get(f"/learn/certificates/{code}/")

    assert response.status_code == 404
    assert "Certificate not found" in response.content.decode()


def test_revoked_certificate_is_404():
    _course, enrollment = completed_enrollment(make_contact())
    certificate = enrollment.certificates.get()

    assert revoke_certificate(certificate) is True
    assert revoke_certificate(certificate) is False
    response = Client().get(f"/learn/certificates/{certificate.code}/")

    assert response.status_code == 404
    assert "No valid certificate has this id" in response.content.decode()


def test_other_contacts_certificate_is_404(client):
    learner = make_contact()
    own_course, _own = completed_enrollment(learner)
    other_course, _other = completed_enrollment(make_contact())
    sign_in(client, learner)
    unfinished_course, _lessons = make_course(1)
    enroll_contact(learner, unfinished_course)

    assert (
        client.get(f"/learn/courses/{own_course.slug}/certificate.pdf").status_code
        == 200
    )
    for course in (other_course, unfinished_course):
        response = client.get(f"/learn/courses/{course.slug}/certificate.pdf")
        assert response.status_code == 404, course.slug


def test_anonymous_download_redirected():
    course, _enrollment = completed_enrollment(make_contact())

    response = Client().get(f"/learn/courses/{course.slug}/certificate.pdf")

    assert response.status_code == 302
    assert response["Location"].startswith("/learn/sign-in/?next=")


def test_admin_revokes_certificate(client):
    _course, enrollment = completed_enrollment(make_contact())
    admin = User.objects.create_superuser("admin", "admin@example.com", "a password")
    client.force_login(admin)

    response = client.post(
        "/admin/courses/certificate/",
        {"action": "revoke", "_selected_action": [enrollment.certificates.get().pk]},
        follow=True,
    )

    assert "Revoked 1 certificates" in response.content.decode()
    assert enrollment.certificates.get().revoked_at is not None
    assert client.get("/admin/courses/certificate/").status_code == 200
    assert client.get("/admin/courses/attempt/").status_code == 200
