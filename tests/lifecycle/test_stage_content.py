"""The Stage admin lists the courses mapped to each stage, through the registry."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from courses.models import Course
from customers.stage_content import EVERY_STAGE, registered_stage_content
from lifecycle.models import Stage

pytestmark = pytest.mark.django_db


def make_course(title: str, stages: list[str], **fields) -> Course:
    slug = title.lower().replace(" ", "-")
    return Course.objects.create(
        slug=slug, title=title, lifecycle_stages=stages, **fields
    )


def stage_page(admin_client, slug: str) -> str:
    stage = Stage.objects.get(slug=slug)
    response = admin_client.get(
        reverse("admin:lifecycle_stage_change", args=[stage.pk])
    )
    assert response.status_code == 200
    return response.content.decode()


def test_courses_registered_by_stage_slug():
    first_steps = make_course("First steps", ["onboarding"], in_catalogue=True)
    make_course("Power reports", ["onboarding", "adoption"], is_published=False)
    make_course("Everyone", [])

    [source] = [s for s in registered_stage_content() if s.key == "courses"]
    by_stage = source.load()

    assert [item.title for item in by_stage["onboarding"]] == [
        "First steps",
        "Power reports",
    ]
    assert [item.title for item in by_stage["adoption"]] == ["Power reports"]
    assert [item.title for item in by_stage[EVERY_STAGE]] == ["Everyone"]
    assert by_stage["onboarding"][0].url == reverse(
        "admin:courses_course_change", args=[first_steps.pk]
    )
    assert by_stage["onboarding"][0].note == ""
    assert by_stage["onboarding"][1].note == "not published"
    assert "expansion" not in by_stage


def test_stage_page_lists_mapped_courses(admin_client):
    first_steps = make_course("First steps", ["onboarding"], in_catalogue=True)
    make_course("Power reports", ["adoption"], in_catalogue=False)
    make_course("Everyone", [])

    onboarding = stage_page(admin_client, "onboarding")
    adoption = stage_page(admin_client, "adoption")
    renewal = stage_page(admin_client, "renewal")

    assert "Content mapped to this stage" in onboarding
    course_url = reverse("admin:courses_course_change", args=[first_steps.pk])
    assert f'<a href="{course_url}">First steps</a>' in onboarding
    assert "Power reports" not in onboarding
    assert "(and 1 for every stage)" in onboarding
    assert "Power reports</a> (not in the catalogue)" in adoption
    assert "<strong>Courses</strong>: none" in renewal


def test_stage_list_shows_content_table(admin_client):
    make_course("First steps", ["onboarding"])
    make_course("Power reports", ["onboarding", "adoption"])

    response = admin_client.get(reverse("admin:lifecycle_stage_changelist"))

    rows = {stage.slug: kinds for stage, kinds in response.context["stage_content"]}
    assert rows["onboarding"] == [("Courses", ["First steps", "Power reports"])]
    assert rows["adoption"] == [("Courses", ["Power reports"])]
    assert rows["advocacy"] == [("Courses", [])]
    assert "Content mapped to each stage" in response.content.decode()


def test_stage_list_queries_do_not_grow(admin_client):
    def queries_with(courses: int) -> int:
        Course.objects.all().delete()
        for number in range(courses):
            make_course(f"Course {number}", ["onboarding", "adoption"])
        with CaptureQueriesContext(connection) as queries:
            admin_client.get(reverse("admin:lifecycle_stage_changelist"))
        return len(queries)

    assert queries_with(1) == queries_with(12)
