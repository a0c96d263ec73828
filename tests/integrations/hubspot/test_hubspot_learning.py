"""Learning values and course completions pushed to a fake HubSpot."""

import json
from datetime import UTC, datetime

import pytest
from django.core.exceptions import ValidationError

from courses.models import Certificate, LearningPath, PathCourse
from courses.paths import enroll_in_paths
from courses.services import complete_lesson
from customers.models import Contact
from integrations.hubspot.crm_models import TimelineEventSent
from integrations.hubspot.learning_push import push_learning
from integrations.hubspot.models import HubSpotLink
from integrations.hubspot.sync import claim_run, create_run, execute_run
from tests.integrations.hubspot.conftest import at
from tests.portal.helpers import enroll_contact, make_course

pytestmark = pytest.mark.django_db

COMPLETED_AT = datetime(2026, 3, 2, 15, 30, tzinfo=UTC)
NAMES = {
    "courses_completed": "np_courses_completed",
    "last_completion_date": "np_last_completion",
    "current_learning_path": "np_learning_path",
    "certification_status": "np_certification",
    "learning_stage": "np_learning_stage",
}
TEMPLATE = "1001"
TOKENS = {"course", "course_version", "completed_at", "score"}


def sync(connection, object_type):
    claimed = claim_run(create_run(connection, object_type, "full").pk)
    assert claimed is not None
    finished = execute_run(claimed)
    assert finished.status == "succeeded", finished.last_error


@pytest.fixture
def linked(connection, fake_hubspot):
    """Company 1 with contacts 501 and 502, company 2 with contact 503."""
    fake_hubspot.put("companies", "1", at(1), name="Acme")
    fake_hubspot.put("companies", "2", at(2), name="Initech")
    sync(connection, "company")
    for number, company in (("501", "1"), ("502", "1"), ("503", "2")):
        fake_hubspot.put(
            "contacts",
            number,
            at(3),
            email=f"c{number}@example.com",
            associatedcompanyid=company,
        )
    sync(connection, "contact")
    connection.learning_properties = {"contact": NAMES, "company": NAMES}
    connection.save()
    return {n: Contact.objects.get(external_id=n) for n in ("501", "502", "503")}


def complete_course(contact, *, certificates=True):
    course, lessons = make_course(1)
    course.issues_certificates = certificates
    course.save()
    enrollment = enroll_contact(contact, course)
    return complete_lesson(enrollment, lessons[0], at=COMPLETED_AT)


def hubspot(fake, kind, object_id):
    return fake.objects[kind][object_id]["properties"]


def updates(fake):
    return [r for r in fake.requests if r[1].endswith("/batch/update")]


def test_values_reach_contacts_and_companies(connection, fake_hubspot, linked):
    complete_course(linked["501"])
    course, _ = make_course(1)
    enroll_contact(linked["502"], course)
    path = LearningPath.objects.create(slug="admins", title="Admin path")
    PathCourse.objects.create(path=path, course=course)
    enroll_in_paths([(linked["502"].pk, path.pk)], at=COMPLETED_AT)

    counts = push_learning(connection)

    assert counts is not None
    assert counts.records_failed == 0
    ada = hubspot(fake_hubspot, "contacts", "501")
    assert ada["np_courses_completed"] == "1"
    assert ada["np_last_completion"] == "2026-03-02"
    assert ada["np_certification"] == "certified"
    assert ada["np_learning_stage"] == "certified"
    assert ada["np_learning_path"] == ""
    bob = hubspot(fake_hubspot, "contacts", "502")
    assert bob["np_courses_completed"] == "0"
    assert bob["np_learning_stage"] == "enrolled"
    assert bob["np_learning_path"] == "Admin path"
    assert bob["np_certification"] == "none"
    assert hubspot(fake_hubspot, "contacts", "503")["np_learning_stage"] == (
        "not_enrolled"
    )
    acme = hubspot(fake_hubspot, "companies", "1")
    assert acme["np_courses_completed"] == "1"
    assert acme["np_last_completion"] == "2026-03-02"
    assert acme["np_certification"] == "certified"
    assert acme["np_learning_stage"] == "certified"
    assert acme["np_learning_path"] == "Admin path"
    assert hubspot(fake_hubspot, "companies", "2")["np_courses_completed"] == "0"
    # One batch update per object type: companies, then contacts.
    assert [r[1] for r in updates(fake_hubspot)] == [
        "/crm/v3/objects/companies/batch/update",
        "/crm/v3/objects/contacts/batch/update",
    ]


def test_unchanged_values_are_not_sent_again(connection, fake_hubspot, linked):
    complete_course(linked["501"])
    push_learning(connection)
    sent = len(updates(fake_hubspot))

    counts = push_learning(connection)

    assert counts is not None
    assert len(updates(fake_hubspot)) == sent
    assert counts.records_unchanged == 5
    assert counts.records_pushed == 0


def test_only_changed_values_are_sent(connection, fake_hubspot, linked):
    push_learning(connection)
    before = len(updates(fake_hubspot))

    complete_course(linked["502"], certificates=False)
    push_learning(connection)

    sent = updates(fake_hubspot)[before:]
    contact_inputs = [
        item for _, path, body in sent if "contacts" in path for item in body["inputs"]
    ]
    assert contact_inputs == [
        {
            "id": "502",
            "properties": {
                "np_courses_completed": "1",
                "np_last_completion": "2026-03-02",
                "np_learning_stage": "completed",
            },
        }
    ]


def test_multi_status_keeps_failed_record_for_later(connection, fake_hubspot, linked):
    complete_course(linked["501"])
    complete_course(linked["502"])
    saved = fake_hubspot.objects["contacts"].pop("502")

    counts = push_learning(connection)

    assert counts is not None
    assert counts.records_failed == 1
    assert hubspot(fake_hubspot, "contacts", "501")["np_courses_completed"] == "1"
    failed = HubSpotLink.objects.get(object_type="contact", hubspot_id="502")
    assert failed.pushed_learning == {}
    pushed = HubSpotLink.objects.get(object_type="contact", hubspot_id="501")
    assert pushed.pushed_learning["np_courses_completed"] == "1"

    fake_hubspot.objects["contacts"]["502"] = saved
    push_learning(connection)

    assert hubspot(fake_hubspot, "contacts", "502")["np_courses_completed"] == "1"


def test_rejected_request_pushes_nothing(connection, fake_hubspot, linked):
    fake_hubspot.options["np_learning_stage"] = {"beginner"}

    counts = push_learning(connection)

    assert counts is not None
    # Every contact and company update names an option HubSpot rejects.
    assert counts.records_pushed == 0
    assert counts.records_failed == 5
    assert not HubSpotLink.objects.exclude(pushed_learning={}).exists()


def test_only_configured_properties_are_written(connection, fake_hubspot, linked):
    connection.learning_properties = {
        "contact": {"courses_completed": "np_courses_completed"}
    }
    connection.save()
    complete_course(linked["501"])

    push_learning(connection)

    ada = hubspot(fake_hubspot, "contacts", "501")
    assert ada["np_courses_completed"] == "1"
    assert "np_learning_stage" not in ada
    assert "np_courses_completed" not in hubspot(fake_hubspot, "companies", "1")


def test_completion_becomes_a_timeline_event(connection, fake_hubspot, linked):
    fake_hubspot.timeline_templates[TEMPLATE] = TOKENS
    connection.completion_event_template_id = TEMPLATE
    connection.save()
    enrollment = complete_course(linked["501"])

    counts = push_learning(connection)
    again = push_learning(connection)

    assert counts is not None
    assert again is not None
    assert (counts.events_sent, again.events_sent) == (1, 0)
    event_id = f"nudgepath-completion-{enrollment.pk}-v1"
    event = fake_hubspot.timeline_events[event_id]
    assert event["eventTemplateId"] == TEMPLATE
    assert event["objectId"] == "501"
    assert event["tokens"] == {
        "course": enrollment.course.title,
        "course_version": "1",
        "completed_at": "2026-03-02",
        "score": "",
    }
    row = TimelineEventSent.objects.get()
    assert row.sent_at is not None
    assert row.last_error == ""


def test_event_hubspot_has_already_counts_as_sent(connection, fake_hubspot, linked):
    fake_hubspot.timeline_templates[TEMPLATE] = TOKENS
    connection.completion_event_template_id = TEMPLATE
    connection.save()
    enrollment = complete_course(linked["501"])
    push_learning(connection)
    # A push whose rows were rolled back after HubSpot stored the event.
    TimelineEventSent.objects.all().delete()

    counts = push_learning(connection)

    assert counts is not None
    assert counts.events_failed == 0
    assert TimelineEventSent.objects.get().enrollment == enrollment
    assert len(fake_hubspot.timeline_events) == 1


def test_rejected_timeline_event_keeps_the_reason(connection, fake_hubspot, linked):
    connection.completion_event_template_id = "9999"
    connection.save()
    complete_course(linked["501"])

    counts = push_learning(connection)

    assert counts is not None
    assert counts.events_failed == 1
    row = TimelineEventSent.objects.get()
    assert row.sent_at is None
    assert "Unknown event template" in row.last_error
    assert fake_hubspot.timeline_events == {}


def test_learning_change_pushes_after_commit(
    connection, fake_hubspot, linked, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks(execute=True):
        complete_course(linked["503"])

    initech = hubspot(fake_hubspot, "companies", "2")
    assert initech["np_courses_completed"] == "1"
    assert hubspot(fake_hubspot, "contacts", "503")["np_learning_stage"] == (
        "certified"
    )
    # The push covered only the account that changed.
    assert "np_courses_completed" not in hubspot(fake_hubspot, "companies", "1")


def test_expired_certificate_is_expired(connection, fake_hubspot, linked):
    complete_course(linked["501"])
    Certificate.objects.update(expires_at=datetime(2026, 4, 1, tzinfo=UTC))

    push_learning(connection)

    ada = hubspot(fake_hubspot, "contacts", "501")
    assert ada["np_certification"] == "expired"
    assert ada["np_learning_stage"] == "completed"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ([], "Must be a JSON object"),
        ({"deal": {}}, "'deal' is not contact or company"),
        ({"contact": {"score": "np_score"}}, "'score' is not one of"),
        ({"contact": {"learning_stage": "Learning Stage"}}, "internal property"),
    ],
)
def test_bad_learning_properties_are_rejected(connection, config, message):
    connection.learning_properties = config

    with pytest.raises(ValidationError, match=message):
        connection.clean()


def test_template_id_must_be_a_number(connection):
    connection.completion_event_template_id = "abc"

    with pytest.raises(ValidationError, match="is a number"):
        connection.clean()


def admin_form(connection, **fields):
    return {
        "name": connection.name,
        "access_token": "",
        "app_secret": "",
        "host": connection.host,
        "is_active": "on",
        "deal_type_property": "dealtype",
        "renewal_deal_types": "[]",
        "renewal_pipelines": "[]",
        "expansion_deal_types": "[]",
        "ticket_priorities": '{"LOW": "low"}',
        "ticket_topic_property": "hs_ticket_category",
        "ticket_closed_stages": "[]",
        "mappings-TOTAL_FORMS": "0",
        "mappings-INITIAL_FORMS": "0",
        **fields,
    }


def test_admin_sets_the_learning_properties(admin_client, connection):
    url = f"/admin/integrations/hubspotconnection/{connection.pk}/change/"
    wanted = {"contact": {"learning_stage": "np_learning_stage"}}

    rejected = admin_client.post(
        url, admin_form(connection, learning_properties='{"contact": {"x": "y"}}')
    )
    saved = admin_client.post(
        url,
        admin_form(
            connection,
            learning_properties=json.dumps(wanted),
            completion_event_template_id="1001",
        ),
    )

    assert rejected.status_code == 200
    assert "&#x27;x&#x27; is not one of" in rejected.content.decode()
    assert saved.status_code == 302
    connection.refresh_from_db()
    assert connection.learning_properties == wanted
    assert connection.completion_event_template_id == "1001"
