"""The lesson page's fragments kept per process: the same page, never stale."""

import re

import pytest
from django.template import Context, Template
from django.test import Client
from django.utils.safestring import mark_safe

from courses.models import Lesson, Module
from courses.services import portal_user_for
from courses.templatetags import portal_fragments
from courses.templatetags.portal_fragments import clear_fragments
from tests.factories import make_contact
from tests.portal.helpers import enroll_contact, lesson_url, make_course, sign_in
from tests.portal.test_lesson_page import (
    FAST_KINDS,
    act_alike,
    progress_rows,
    set_kind,
    twin_learners,
)

CSRF_TOKEN = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')


def render(source: str, **values) -> str:
    template = Template("{% load portal_fragments %}" + source)
    return template.render(Context(values))


def page_html(client: Client, url: str) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return CSRF_TOKEN.sub("", response.content.decode())


def learner_on_lesson(module_size: int, position: int):
    """Sign in a learner of a new course who has opened one lesson twice.

    The second view is a repeat view served with the fragments stored.
    Returns the course, its lessons, the contact, the client and the URL.
    """
    course, lessons = make_course(module_size)
    contact = make_contact()
    enroll_contact(contact, course)
    client = sign_in(Client(), contact)
    url = lesson_url(course, lessons[position])
    page_html(client, url)
    page_html(client, url)
    return course, lessons, contact, client, url


def test_fragment_sees_only_its_inputs():
    source = (
        "{% fragment name=title %}{{ name }}|{{ title }}|{{ secret }}{% endfragment %}"
    )

    assert render(source, title="A", secret="S") == "A||"


def test_fragment_keys_each_input_with_its_type():
    source = "{% fragment value=value %}{{ value }}{% endfragment %}"

    assert render(source, value=1) == "1"
    # True == 1, and a safe string equals the same text escaped or not.
    assert render(source, value=True) == "True"
    assert render(source, value=mark_safe("<b>")) == "<b>"
    assert render(source, value="<b>") == "&lt;b&gt;"


def test_fragment_rejects_a_model_instance():
    lesson = Lesson(pk=1, title="A")

    with pytest.raises(TypeError, match="Fragment input lesson is a Lesson"):
        render(
            "{% fragment lesson=lesson %}{{ lesson.title }}{% endfragment %}",
            lesson=lesson,
        )


def test_fragment_is_rendered_once_per_inputs(monkeypatch):
    source = "{% fragment name=title %}{{ name }}{% endfragment %}"
    template = Template("{% load portal_fragments %}" + source)
    template.render(Context({"title": "A"}))
    # A second render reads the store, so a changed body is not seen.
    node = template.nodelist[-1]
    monkeypatch.setattr(node, "nodelist", Template("changed").nodelist)

    assert template.render(Context({"title": "A"})) == "A"
    assert template.render(Context({"title": "B"})) == "changed"


def test_full_store_starts_again(monkeypatch):
    monkeypatch.setattr(portal_fragments, "MAX_FRAGMENTS", 2)
    clear_fragments()
    source = "{% fragment name=title %}{{ name }}{% endfragment %}"

    outputs = [render(source, title=title) for title in ("A", "B", "C", "A")]

    assert outputs == ["A", "B", "C", "A"]
    assert len(portal_fragments._rendered) <= 2


@pytest.mark.django_db
@pytest.mark.parametrize(("kind", "fields"), FAST_KINDS)
def test_page_same_cold_and_warm(kind, fields):
    course, lessons, cold, warm = twin_learners()
    set_kind(lessons, kind, fields)
    act_alike(course, [cold, warm], [("view", lessons[2]), ("complete", lessons[1])])
    cold_client = sign_in(Client(), cold)
    warm_client = sign_in(Client(), warm)
    urls = [lesson_url(course, lesson) for lesson in lessons[:3]]

    clear_fragments()
    cold_pages = [page_html(cold_client, url) for url in urls]
    warm_pages = [page_html(warm_client, url) for url in urls]

    assert warm_pages == cold_pages
    # Each view is stamped with its own request's time.
    ignore = ["heartbeat_at", "started_at"]
    assert progress_rows(warm, ignore) == progress_rows(cold, ignore)


@pytest.mark.django_db
def test_edited_lesson_shows_at_once():
    course, lessons, _contact, client, url = learner_on_lesson(3, 1)

    lesson = lessons[1]
    lesson.title = "Renamed lesson"
    lesson.body = "A **new** body"
    lesson.is_required = False
    lesson.save()
    Module.objects.filter(pk=lesson.module_id).update(title="Renamed module")
    course.title = "Renamed course"
    course.save()
    html = page_html(client, url)

    assert "<h1>Renamed lesson</h1>" in html
    assert "<strong>new</strong>" in html
    assert "Renamed module · Text · optional" in html
    assert "Renamed course</a>" in html
    assert "Body of lesson" not in html


@pytest.mark.django_db
def test_new_neighbour_shows_at_once():
    course, lessons, _contact, client, url = learner_on_lesson(2, 0)
    assert f'href="{lesson_url(course, lessons[1])}">Next lesson' in page_html(
        client, url
    )

    # Same order, higher id: it comes between the two.
    inserted = Lesson.objects.create(
        module=lessons[0].module, title="Inserted", body="New", order=1
    )
    html = page_html(client, url)

    assert f'href="{lesson_url(course, inserted)}">Next lesson' in html


@pytest.mark.django_db
def test_staff_flag_changes_the_navigation_at_once():
    _course, _lessons, contact, client, url = learner_on_lesson(2, 0)
    assert ">Search</a>" in page_html(client, url)

    user = portal_user_for(contact)
    user.is_staff = True
    user.save()
    html = page_html(client, url)

    assert ">Admin</a>" in html
    assert ">Search</a>" not in html
