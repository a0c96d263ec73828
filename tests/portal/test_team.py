"""The champion's team pages: their own account only, and a fixed query count."""

from decimal import Decimal

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from courses.models import Enrollment, LessonProgress
from courses.services import complete_lesson
from courses.team import NotAChampion, team_member, team_overview
from tests.factories import NOW, make_account, make_contact
from tests.portal.helpers import enroll_contact, make_course, sign_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def team():
    """Return a champion, a teammate and a contact of another account."""
    account = make_account(name="Acme")
    champion = make_contact(account, first_name="Chloe", is_champion=True)
    teammate = make_contact(account, first_name="Tom", last_name="Mate")
    outsider = make_contact(make_account(), first_name="Olga", is_champion=True)
    return champion, teammate, outsider


def test_champion_sees_team_progress(team):
    champion, teammate, outsider = team
    course, lessons = make_course(2)
    enrollment = enroll_contact(teammate, course)
    complete_lesson(enrollment, lessons[0], at=NOW)
    complete_lesson(enrollment, lessons[1], at=NOW)
    Enrollment.objects.filter(pk=enrollment.pk).update(score=Decimal("87.5"))
    enroll_contact(outsider, course)

    page = sign_in(Client(), champion).get("/learn/team/").content.decode()

    assert "Your team at Acme" in page
    assert "Tom Mate" in page
    assert "Chloe" in page
    assert "Olga" not in page
    assert "2 of 2 required lessons (100%)" in page
    assert "87.50%" in page
    assert "Issued" in page
    assert "version 1" in page
    assert f'href="/learn/team/{teammate.pk}/"' in page


def test_team_leaves_out_drafts(team):
    champion, teammate, _outsider = team
    draft, _lessons = make_course(1, published=False)
    draft.title = "Unreleased course"
    draft.save()
    enroll_contact(teammate, draft)

    members = team_overview(champion)

    assert [member.courses for member in members] == [[], []]


def test_non_champion_gets_404(team):
    _champion, teammate, outsider = team
    client = sign_in(Client(), teammate)

    assert client.get("/learn/team/").status_code == 404
    assert client.get(f"/learn/team/{teammate.pk}/").status_code == 404
    assert client.get(f"/learn/team/{outsider.pk}/").status_code == 404
    with pytest.raises(NotAChampion):
        team_overview(teammate)


def test_other_account_ids_are_404(team):
    champion, teammate, outsider = team
    client = sign_in(Client(), champion)

    assert client.get(f"/learn/team/{teammate.pk}/").status_code == 200
    assert client.get(f"/learn/team/{champion.pk}/").status_code == 200
    assert client.get(f"/learn/team/{outsider.pk}/").status_code == 404
    assert client.get("/learn/team/999999/").status_code == 404
    with pytest.raises(LookupError):
        team_member(champion, outsider.pk)


def test_other_champion_sees_only_theirs(team):
    champion, teammate, outsider = team
    client = sign_in(Client(), outsider)

    page = client.get("/learn/team/").content.decode()

    assert "Olga" in page
    assert "Tom" not in page
    assert client.get(f"/learn/team/{teammate.pk}/").status_code == 404
    assert client.get(f"/learn/team/{champion.pk}/").status_code == 404


def test_member_page_lists_scores(team):
    champion, teammate, _outsider = team
    course, lessons = make_course(2)
    enrollment = enroll_contact(teammate, course)
    complete_lesson(enrollment, lessons[0], at=NOW)
    LessonProgress.objects.filter(enrollment=enrollment, lesson=lessons[0]).update(
        score=Decimal("75")
    )

    page = sign_in(Client(), champion).get(f"/learn/team/{teammate.pk}/")

    text = page.content.decode()
    assert page.status_code == 200
    assert "Quiz and exam scores" in text
    assert lessons[0].title in text
    assert "75%" in text
    assert "1 of 2 required lessons (50%)" in text
    assert "0 of 1 course completed" in text


def test_team_page_needs_sign_in():
    response = Client().get("/learn/team/")

    assert response.status_code == 302


def test_home_links_team_for_champion(team):
    champion, teammate, _outsider = team

    champion_home = sign_in(Client(), champion).get("/learn/").content.decode()
    teammate_home = sign_in(Client(), teammate).get("/learn/").content.decode()

    assert 'href="/learn/team/"' in champion_home
    assert 'href="/learn/team/"' not in teammate_home


def test_team_query_count_is_constant(team):
    champion, _teammate, _outsider = team
    account = champion.account
    course, lessons = make_course(2)
    other_course, _other_lessons = make_course(1)
    client = sign_in(Client(), champion)

    def grow(count):
        for _ in range(count):
            contact = make_contact(account)
            enrollment = enroll_contact(contact, course)
            complete_lesson(enrollment, lessons[0], at=NOW)
            complete_lesson(enrollment, lessons[1], at=NOW)
            enroll_contact(contact, other_course)

    grow(2)
    with CaptureQueriesContext(connection) as small:
        assert client.get("/learn/team/").status_code == 200
    grow(8)
    with CaptureQueriesContext(connection) as large:
        response = client.get("/learn/team/")

    assert response.status_code == 200
    assert response.content.decode().count("2 of 2 required lessons") == 10
    assert len(small) == len(large)


def test_member_page_query_count_is_constant(team):
    champion, teammate, _outsider = team
    client = sign_in(Client(), champion)
    url = f"/learn/team/{teammate.pk}/"

    def enroll_in_courses(count):
        for _ in range(count):
            course, lessons = make_course(1)
            enrollment = enroll_contact(teammate, course)
            complete_lesson(enrollment, lessons[0], at=NOW)

    enroll_in_courses(1)
    with CaptureQueriesContext(connection) as small:
        assert client.get(url).status_code == 200
    enroll_in_courses(6)
    with CaptureQueriesContext(connection) as large:
        response = client.get(url)

    assert "7 of 7 courses completed" in response.content.decode()
    assert len(small) == len(large)


def test_team_page_shows_recertification_and_expiry(team):
    champion, teammate, _outsider = team
    course, lessons = make_course(1)
    course.certificate_valid_days = 365
    course.save()
    enrollment = enroll_contact(teammate, course)
    client = sign_in(Client(), champion)
    with CaptureQueriesContext(connection) as before:
        assert client.get("/learn/team/").status_code == 200
    complete_lesson(enrollment, lessons[0], at=NOW)
    Enrollment.objects.filter(pk=enrollment.pk).update(
        recertification_version=2, score=Decimal("90")
    )

    with CaptureQueriesContext(connection) as after:
        page = client.get("/learn/team/").content.decode()

    # Every figure shown comes from the page's fixed queries, none per row.
    assert "(recertification due)" in page
    assert "valid until" in page
    assert "90%" in page
    assert "Tom Mate" in page
    assert len(after) == len(before)
