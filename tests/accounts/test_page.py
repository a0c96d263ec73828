"""The account page: its registered sections, its data and its query count."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from courses.models import Enrollment, LessonProgress
from customers.accounts_view import (
    Section,
    health_trend,
    register_section,
    registered_sections,
)
from customers.models import SupportTicket
from customers.timeline import day_start
from lifecycle.models import Stage
from tests.accounts.builders import (
    add_activity,
    grant,
    make_criterion,
    make_user,
    meet,
    place_in_stage,
)
from tests.factories import make_account, make_contact, make_health
from tests.triggers.factories import make_template, make_trigger
from triggers.models import Firing, OutboxEmail

pytestmark = pytest.mark.django_db


def page_url(account) -> str:
    return reverse("accounts:detail", args=[account.pk])


def test_sections_of_every_app_in_page_order():
    keys = [section.key for section in registered_sections()]

    assert keys == [
        "stage",
        "health",
        "contacts",
        "enrollments",
        "usage",
        "tickets",
        "surveys",
        "emails",
        "firings",
        "tasks",
    ]


def test_section_key_registered_twice_is_rejected():
    existing = registered_sections()[0]

    with pytest.raises(ValueError, match=existing.key):
        register_section(
            Section(existing.key, "Other", 1, existing.template, lambda a, d: {})
        )


def test_page_shows_each_app_data(admin_client):
    now = timezone.now()
    account = make_account(
        name="Globex", renewal_date=timezone.localdate() + timedelta(days=45)
    )
    stage = Stage.objects.get(slug="onboarding")
    criterion = make_criterion(stage, target_days=10, name="First report shared")
    place_in_stage(account, stage, now - timedelta(days=20))
    meet(account, criterion, now - timedelta(days=2))
    add_activity(account, 2, now)
    contact = account.contacts.earliest("pk")
    held_out = Firing.objects.create(
        trigger=make_trigger({"kind": "inactivity", "days": 10}, name="Quiet week"),
        subject_type="contact",
        account=account,
        contact=contact,
        occurrence_key="held",
        fired_at=now,
        outcome="held_out",
        note="In the control group.",
    )
    OutboxEmail.objects.create(
        firing=held_out,
        contact=contact,
        template=make_template(),
        to_email=contact.email,
        subject="Your report is ready",
        body_text="Hi",
        status="sent",
        sent_at=now,
    )

    response = admin_client.get(page_url(account))

    assert response.status_code == 200
    body = response.content.decode()
    assert "Globex" in body
    assert "in 45 days" in body
    assert "Onboarding" in body
    assert "First report shared" in body
    assert "The contact unsubscribed." in body
    assert "Your report is ready" in body
    assert "Quiet week" in body
    assert "In the control group." in body
    assert "Call " + contact.first_name in body
    assert Enrollment.objects.earliest("pk").course.title in body
    assert SupportTicket.objects.earliest("pk").external_id in body


def test_timeline_merges_sources_newest_first(admin_client):
    now = timezone.now()
    account = make_account()
    add_activity(account, 3, now)

    response = admin_client.get(page_url(account), {"timeline": "7"})

    entries = [entry for entry, _label in response.context["timeline"]]
    assert [entry.at for entry in entries] == every_instant(account)[:7]
    assert response.context["timeline_more"] == 14


def every_instant(account) -> list:
    """List the time of every dated row of the account, newest first."""
    instants = [
        *account.usage_events.values_list("occurred_at", flat=True),
        *account.contacts.values_list("added_at", flat=True),
        *account.support_tickets.values_list("opened_at", flat=True),
        *account.support_tickets.values_list("closed_at", flat=True),
        *account.survey_responses.values_list("submitted_at", flat=True),
        *[
            day_start(day)
            for day in account.health_scores.values_list("scored_on", flat=True)
        ],
        *Enrollment.objects.filter(contact__account=account).values_list(
            "enrolled_at", flat=True
        ),
        *LessonProgress.objects.filter(
            enrollment__contact__account=account
        ).values_list("completed_at", flat=True),
        *account.firings.values_list("fired_at", flat=True),
        *OutboxEmail.objects.filter(firing__account=account).values_list(
            "created_at", flat=True
        ),
        *account.csm_tasks.values_list("created_at", flat=True),
    ]
    return sorted((instant for instant in instants if instant), reverse=True)


def test_timeline_cap_keeps_the_newest_entries(admin_client):
    now = timezone.now()
    account = make_account()
    contact = make_contact(account, added_at=now - timedelta(days=900))
    firing_times = [now - timedelta(days=days) for days in (1, 5, 9)]
    trigger = make_trigger({"kind": "inactivity", "days": 10})
    for index, fired_at in enumerate(firing_times):
        Firing.objects.create(
            trigger=trigger,
            subject_type="contact",
            account=account,
            contact=contact,
            occurrence_key=str(index),
            fired_at=fired_at,
        )
    make_health(account, timezone.localdate() - timedelta(days=3), 70)

    response = admin_client.get(page_url(account), {"timeline": "3"})

    entries = [entry for entry, _label in response.context["timeline"]]
    # Independently: the five dated things are firings at 1, 5, 9 days ago,
    # the first health score 3 days ago and the contact added 900 days ago.
    assert [entry.source for entry in entries] == ["firings", "health", "firings"]


def test_health_trend_change_over_30_days():
    account = make_account()
    today = timezone.localdate()
    make_health(account, today - timedelta(days=60), 95)
    make_health(account, today - timedelta(days=30), 80)
    make_health(account, today - timedelta(days=10), 75)
    make_health(account, today, 62)

    trend = health_trend(account, today)

    assert trend.latest == 62
    # The 60-day-old score is outside the 30-day period, so it is drawn but
    # not counted in the change: 62 - 80.
    assert trend.change == -18
    assert len(trend.scores) == 4


def test_health_trend_without_scores():
    trend = health_trend(make_account(), timezone.localdate())

    assert trend.latest is None
    assert trend.change is None
    assert trend.points == ""


def test_page_query_count_does_not_grow(admin_client):
    now = timezone.now()
    account = make_account()
    stage = Stage.objects.get(slug="onboarding")
    place_in_stage(account, stage, now - timedelta(days=30))
    add_activity(account, 2, now)

    with CaptureQueriesContext(connection) as small:
        assert admin_client.get(page_url(account)).status_code == 200

    add_activity(account, 12, now - timedelta(hours=3))
    place_in_stage(account, Stage.objects.get(slug="adoption"), now, previous=stage)
    for criterion in stage.criteria.all():
        meet(account, criterion, now - timedelta(days=1))

    with CaptureQueriesContext(connection) as large:
        assert admin_client.get(page_url(account)).status_code == 200

    assert len(large) == len(small)


def test_page_asks_anonymous_users_to_sign_in(client):
    account = make_account()

    response = client.get(page_url(account))

    assert response.status_code == 302
    assert response.url.startswith(reverse("admin:login"))


def test_page_rejects_staff_without_the_role(client, django_user_model):
    client.force_login(make_user(django_user_model))

    response = client.get(page_url(make_account()))

    assert response.status_code == 403


def test_page_shows_a_csm_only_accounts_they_own(client, django_user_model):
    csm = grant(make_user(django_user_model), "customers.view_account")
    own = make_account(owner=csm)
    other = make_account()
    client.force_login(csm)

    assert client.get(page_url(own)).status_code == 200
    assert client.get(page_url(other)).status_code == 403
