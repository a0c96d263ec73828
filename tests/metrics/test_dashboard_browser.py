"""The dashboard in a real browser: the bundled Chart.js draws every chart.

No request may leave the live server, so the charts cannot come from a CDN.
The test commits its rows so that the live server's thread can read them.
"""

from urllib.parse import urlsplit

import pytest
from django.contrib.auth.models import User
from playwright.sync_api import expect

from courses.models import EnrollmentStatus
from metrics.models import CourseTopic
from tests.browser import conftest as browser_conftest
from tests.factories import make_contact
from tests.metrics.builders import lessons_by_module, make_course, make_enrollment

pytestmark = [
    pytest.mark.browser,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

PASSWORD = "dashboard-password"

# The browser tests' fixtures, made visible to this module by name.
browser = browser_conftest.browser
new_page = browser_conftest.new_page
site_url = browser_conftest.site_url


def test_dashboard_draws_charts_locally(new_page, site_url):
    User.objects.create_user("manager", password=PASSWORD, is_staff=True)
    course = make_course((1, 4, 1))
    CourseTopic.objects.create(course=course, topic="Billing")
    lessons = lessons_by_module(course)
    for index in range(6):
        make_enrollment(
            make_contact(),
            course,
            EnrollmentStatus.WITHDRAWN,
            furthest_lesson=lessons[1][index % 4],
            score=40 + index * 10,
        )
    page = new_page()
    hosts = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))

    page.goto(f"{site_url}/admin/login/?next=/dashboard/")
    page.get_by_label("Username").fill("manager")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Outcome dashboard")).to_be_visible()

    canvases = page.locator("canvas[data-chart]")
    expect(page.locator("canvas[data-drawn=true]")).to_have_count(canvases.count())
    assert canvases.count() >= 6
    assert page.locator(f'canvas[data-chart="funnel-{course.pk}"]').count() == 1
    for chart in ("changes-expansion", "changes-tickets", "changes-tickets-topics"):
        canvas = page.locator(f'canvas[data-chart="{chart}"]')
        expect(canvas).to_have_attribute("data-drawn", "true")
    assert page.evaluate("typeof Chart") == "function"
    assert hosts == {urlsplit(site_url).netloc}
    expect(page.get_by_text("largest drop-off").first).to_be_visible()
