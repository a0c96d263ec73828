"""The Segment-compatible API: auth, bodies, limits, validation and records."""

import gzip
import json
from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from conditions import EvaluationContext, compile_condition, parse_condition
from customers.models import Contact, UsageDay, UsageEvent
from integrations.models import EventSource, PendingIdentity
from tests.factories import make_account, make_contact
from tests.integrations.segment_calls import (
    group,
    identify,
    iso,
    make_source,
    post,
    track,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def source():
    return make_source()


@pytest.fixture
def contact():
    return make_contact(make_account(external_id="acct-1"), external_id="user-1")


def batch(*messages, **fields):
    return {"batch": list(messages), **fields}


# -- track and page -------------------------------------------------------------


def test_track_stores_usage_event(source, contact):
    message = track(
        "user-1",
        "Report Exported",
        messageId="m-1",
        properties={"feature": "reports", "format": "csv"},
    )

    response = post("/batch", batch(message), write_key=source.write_key)

    assert response.status_code == 200
    assert response.json()["stored"] == 1
    event = UsageEvent.objects.get(external_id="m-1")
    assert event.contact_id == contact.pk
    assert event.account_id == contact.account_id
    assert event.name == "Report Exported"
    assert event.feature == "reports"
    assert event.properties == {"feature": "reports", "format": "csv"}


def test_redelivered_batch_counts_once(source, contact):
    body = batch(track("user-1", "Signed In", messageId="m-1"))

    first = post("/batch", body, write_key=source.write_key)
    second = post("/batch", body, write_key=source.write_key)

    assert first.json()["stored"] == 1
    assert second.status_code == 200
    assert second.json()["stored"] == 0
    assert second.json()["duplicates"] == 1
    assert UsageEvent.objects.filter(external_id="m-1").count() == 1
    assert UsageDay.objects.get(contact=contact, name="Signed In").count == 1


def test_b2b_event_names_match_conditions(source, contact):
    names = ["Signed In", "Invite Sent", "Account Added User", "Trial Started"]
    messages = [track("user-1", name) for name in names]

    post("/batch", batch(*messages), write_key=source.write_key)

    stored = set(UsageEvent.objects.values_list("name", flat=True))
    assert stored == set(names)
    tree = parse_condition('count(event "Signed In", last 1 days) >= 1', "contact")
    condition = compile_condition(
        tree, EvaluationContext("contact", timezone.now() + timedelta(minutes=1))
    )
    assert list(Contact.objects.filter(condition)) == [contact]


def test_page_becomes_page_viewed_event(source, contact):
    message = {
        "type": "page",
        "userId": "user-1",
        "name": "Billing",
        "category": "Settings",
        "properties": {"path": "/billing"},
        "messageId": "p-1",
    }

    post("/batch", batch(message), write_key=source.write_key)

    event = UsageEvent.objects.get(external_id="p-1")
    assert event.name == "Page Viewed"
    assert event.properties == {
        "name": "Billing",
        "category": "Settings",
        "path": "/billing",
    }


def test_page_not_stored_when_disabled(contact):
    source = make_source(store_page_views=False)
    message = {"type": "page", "userId": "user-1", "messageId": "p-1"}

    response = post("/batch", batch(message), write_key=source.write_key)

    assert response.status_code == 200
    assert response.json()["accepted"] == 1
    assert not UsageEvent.objects.exists()


def test_single_track_endpoint_stores_event(source, contact):
    message = track("user-1", "Signed In", messageId="m-1")

    response = post("/track", message, write_key=source.write_key)

    assert response.status_code == 200
    assert UsageEvent.objects.filter(external_id="m-1").exists()


def test_message_without_message_id_counts_once(source, contact):
    message = {"type": "track", "userId": "user-1", "event": "Signed In"}
    message["timestamp"] = iso(timezone.now())

    post("/track", message, write_key=source.write_key)
    post("/track", message, write_key=source.write_key)

    assert UsageEvent.objects.count() == 1


# -- partial batches -------------------------------------------------------------


def test_partial_batch_keeps_good_events(source, contact):
    messages = [
        track("user-1", "Signed In", messageId="good-0"),
        {"type": "track", "userId": "user-1", "messageId": "bad-1"},
        track("nobody", "Signed In", messageId="bad-2"),
        track("user-1", "Invite Sent", messageId="good-3", properties=["x"]),
        track("user-1", "Invite Sent", messageId="good-4"),
        {"type": "screen", "userId": "user-1", "name": "Home"},
    ]

    response = post("/batch", batch(*messages), write_key=source.write_key)

    assert response.status_code == 200
    body = response.json()
    assert body["received"] == 6
    assert body["accepted"] == 2
    assert body["stored"] == 2
    codes = {item["index"]: item["code"] for item in body["rejected"]}
    assert codes == {
        1: "missing_event",
        2: "unknown_user",
        3: "invalid_message",
        5: "unsupported_type",
    }
    assert body["rejected"][0]["messageId"] == "bad-1"
    assert "nobody" in body["rejected"][1]["reason"]
    stored = set(UsageEvent.objects.values_list("external_id", flat=True))
    assert stored == {"good-0", "good-4"}


def test_batch_with_only_bad_calls_is_400(source, contact):
    messages = [track("nobody", "Signed In"), {"type": "track"}]

    response = post("/batch", batch(*messages), write_key=source.write_key)

    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_messages"
    assert [item["index"] for item in body["rejected"]] == [0, 1]


def test_single_call_rejection_names_code(source, contact):
    response = post("/track", track("nobody", "Signed In"), write_key=source.write_key)

    assert response.status_code == 400
    assert response.json()["code"] == "unknown_user"
    assert "nobody" in response.json()["message"]


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ({"userId": {"id": 1}}, "invalid_id"),
        ({"userId": None, "anonymousId": "anon-1"}, "missing_user_id"),
        ({"messageId": "m" * 65}, "invalid_id"),
        ({"event": 12}, "missing_event"),
        ({"properties": {"feature": 3}}, "invalid_message"),
        ({"context": "web"}, "invalid_message"),
        ({"timestamp": "yesterday"}, "invalid_timestamp"),
        ({"timestamp": "2024-06-15T12:00:00"}, "invalid_timestamp"),
        ({"type": "alias"}, "unsupported_type"),
        ({"type": "purchase"}, "invalid_type"),
        ({"event": "x" * 101}, "invalid_message"),
        ({"properties": {"note": "a\x00b"}}, "invalid_message"),
    ],
)
def test_invalid_call_rejected_with_code(source, contact, fields, code):
    bad = {**track("user-1", "Signed In"), **fields}
    messages = [bad, track("user-1", "Signed In")]

    response = post("/batch", batch(*messages), write_key=source.write_key)

    assert response.status_code == 200
    assert [item["code"] for item in response.json()["rejected"]] == [code]
    assert response.json()["rejected"][0]["index"] == 0
    assert UsageEvent.objects.count() == 1


# -- timestamps ------------------------------------------------------------------


def test_timestamp_corrected_by_sent_at(source, contact):
    # The sender's clock is 3 hours fast; the call happened 10 minutes
    # before the request was sent.
    sender_now = timezone.now() + timedelta(hours=3)
    message = track(
        "user-1",
        "Signed In",
        messageId="m-1",
        timestamp=iso(sender_now - timedelta(minutes=10)),
    )

    before = timezone.now()
    post("/batch", batch(message, sentAt=iso(sender_now)), write_key=source.write_key)
    after = timezone.now()

    occurred = UsageEvent.objects.get(external_id="m-1").occurred_at
    assert before - timedelta(minutes=10) <= occurred
    assert occurred <= after - timedelta(minutes=10)


def test_timestamp_without_sent_at_kept(source, contact):
    message = track("user-1", "Signed In", messageId="m-1")
    message["timestamp"] = "2024-03-01T08:30:00.000Z"

    post("/batch", batch(message), write_key=source.write_key)

    occurred = UsageEvent.objects.get(external_id="m-1").occurred_at
    assert occurred.isoformat() == "2024-03-01T08:30:00+00:00"


def test_future_timestamp_rejected(source, contact):
    now = timezone.now()
    message = track("user-1", "Signed In", timestamp=iso(now + timedelta(days=2)))

    response = post(
        "/batch", batch(message, sentAt=iso(now)), write_key=source.write_key
    )

    assert response.status_code == 400
    assert response.json()["rejected"][0]["code"] == "timestamp_in_future"
    assert not UsageEvent.objects.exists()


# -- identify and group ------------------------------------------------------------


def test_identify_updates_known_contact(source, contact):
    traits = {
        "email": "ada@example.com",
        "firstName": "Ada",
        "lastName": "Lovelace",
        "title": "Analyst",
        "plan_seats": 4,
    }

    response = post("/identify", identify("user-1", traits), write_key=source.write_key)

    assert response.status_code == 200
    contact.refresh_from_db()
    assert contact.email == "ada@example.com"
    assert contact.first_name == "Ada"
    assert contact.last_name == "Lovelace"
    assert contact.role == "Analyst"
    assert contact.properties["plan_seats"] == 4


def test_identify_splits_name_trait(source, contact):
    post(
        "/identify",
        identify("user-1", {"name": "Grace B. Hopper"}),
        write_key=source.write_key,
    )

    contact.refresh_from_db()
    assert contact.first_name == "Grace"
    assert contact.last_name == "B. Hopper"


def test_identify_with_group_context_creates_contact(source):
    account = make_account(external_id="acct-9")
    message = identify(
        "user-9",
        {"email": "lin@example.com", "name": "Lin Wu", "role": "admin"},
        context={"groupId": "acct-9"},
        timestamp="2024-05-01T09:00:00Z",
    )

    response = post("/identify", message, write_key=source.write_key)

    assert response.status_code == 200
    created = Contact.objects.get(external_id="user-9")
    assert created.account == account
    assert created.email == "lin@example.com"
    assert created.first_name == "Lin"
    assert created.role == "admin"
    assert created.added_at.isoformat() == "2024-05-01T09:00:00+00:00"


def test_identify_then_group_creates_contact(source):
    account = make_account(external_id="acct-9")
    traits = {"email": "lin@example.com", "firstName": "Lin"}

    post("/identify", identify("user-9", traits), write_key=source.write_key)
    assert PendingIdentity.objects.filter(user_id="user-9").exists()
    assert not Contact.objects.filter(external_id="user-9").exists()
    response = post("/group", group("user-9", "acct-9"), write_key=source.write_key)

    assert response.status_code == 200
    created = Contact.objects.get(external_id="user-9")
    assert created.account == account
    assert created.first_name == "Lin"
    assert not PendingIdentity.objects.exists()


def test_identify_group_and_track_in_one_batch(source):
    make_account(external_id="acct-9")
    messages = [
        track("user-9", "Signed In", messageId="m-1"),
        group("user-9", "acct-9"),
        identify("user-9", {"email": "lin@example.com"}),
    ]

    response = post("/batch", batch(*messages), write_key=source.write_key)

    assert response.json()["rejected"] == []
    event = UsageEvent.objects.get(external_id="m-1")
    assert event.contact == Contact.objects.get(external_id="user-9")


def test_group_links_contact_to_second_account(source, contact):
    second = make_account(external_id="acct-2")

    post("/group", group("user-1", "acct-2"), write_key=source.write_key)
    post(
        "/track",
        track("user-1", "Signed In", messageId="m-1", context={"groupId": "acct-2"}),
        write_key=source.write_key,
    )

    assert list(contact.associated_accounts.all()) == [second]
    assert UsageEvent.objects.get(external_id="m-1").account == second


def test_track_for_group_not_linked_rejected(source, contact):
    make_account(external_id="acct-2")
    message = track("user-1", "Signed In", context={"groupId": "acct-2"})

    response = post("/track", message, write_key=source.write_key)

    assert response.status_code == 400
    assert response.json()["code"] == "not_in_group"


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (group("user-1", "acct-unknown"), "unknown_group"),
        (group("user-new", "acct-1"), "unknown_user"),
        (group("user-1", None), "missing_group_id"),
        (identify("user-1", {"email": "not an email"}), "invalid_traits"),
        (identify("user-1", {"email": 5}), "invalid_traits"),
        (
            identify("user-new", {"name": "No Email"}, context={"groupId": "acct-1"}),
            "missing_email",
        ),
    ],
)
def test_bad_identity_call_rejected(source, contact, message, code):
    response = post("/batch", batch(message), write_key=source.write_key)

    assert response.status_code == 400
    assert response.json()["rejected"][0]["code"] == code
    contact.refresh_from_db()
    assert contact.email.endswith("@example.com")
    assert not contact.associated_accounts.exists()
    assert Contact.objects.count() == 1


def test_identify_email_of_other_contact_rejected(source, contact):
    make_contact(contact.account, email="taken@example.com")

    response = post(
        "/identify",
        identify("user-1", {"email": "taken@example.com"}),
        write_key=source.write_key,
    )

    assert response.status_code == 400
    assert "email" in response.json()["message"].lower()


# -- authentication ------------------------------------------------------------------


def test_missing_write_key_is_401(contact):
    response = post("/batch", batch(track("user-1", "Signed In")))

    assert response.status_code == 401
    assert response.json()["code"] == "missing_write_key"


def test_unknown_write_key_is_401(contact):
    response = post("/batch", batch(track("user-1", "Signed In")), write_key="nope")

    assert response.status_code == 401
    assert response.json()["code"] == "unknown_write_key"
    assert not UsageEvent.objects.exists()


def test_inactive_source_is_403(contact):
    source = make_source(is_active=False)

    response = post(
        "/batch", batch(track("user-1", "Signed In")), write_key=source.write_key
    )

    assert response.status_code == 403
    assert not UsageEvent.objects.exists()


def test_write_key_in_body_accepted(source, contact):
    body = batch(track("user-1", "Signed In"), writeKey=source.write_key)

    response = post("/batch", body)

    assert response.status_code == 200
    assert UsageEvent.objects.count() == 1


@pytest.mark.parametrize("write_key", [123, True, ["key"]])
def test_non_string_write_key_is_401(source, contact, write_key):
    body = batch(track("user-1", "Signed In"), writeKey=write_key)

    response = post("/batch", body)

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_write_key"
    assert json.dumps(write_key) in response.json()["message"]
    assert not UsageEvent.objects.exists()


def test_write_key_is_not_looked_up_by_index(source, contact):
    # An indexed lookup by the key could leak it through timing, so every
    # source's key is compared in Python with hmac.compare_digest.
    make_source()

    with CaptureQueriesContext(connection) as queries:
        response = post(
            "/batch", batch(track("user-1", "Signed In")), write_key=source.write_key
        )

    assert response.status_code == 200, response.content
    lookups = [q["sql"] for q in queries if "integrations_eventsource" in q["sql"]]
    assert lookups
    conditions = [sql.partition("WHERE")[2] for sql in lookups]
    assert not any("write_key" in condition for condition in conditions)


def test_malformed_authorization_is_401(source, contact):
    response = post(
        "/batch",
        batch(track("user-1", "Signed In")),
        headers={"Authorization": "Bearer abc"},
    )

    assert response.status_code == 401
    assert response.json()["code"] == "invalid_authorization"


# -- bodies and limits ---------------------------------------------------------------


def test_gzip_body_accepted(source, contact):
    body = batch(track("user-1", "Signed In", messageId="m-1"))

    response = post("/batch", body, write_key=source.write_key, gzipped=True)

    assert response.status_code == 200
    assert UsageEvent.objects.filter(external_id="m-1").exists()


@pytest.mark.parametrize(
    ("raw", "encoding", "status", "code"),
    [
        (b"{not json", None, 400, "invalid_json"),
        (b"", None, 400, "invalid_json"),
        (b'{"batch": [{"x": NaN}]}', None, 400, "invalid_json"),
        (b"\xff\xfe", None, 400, "invalid_json"),
        (b"[1, 2]", None, 400, "invalid_json"),
        (b'{"batch": []}', None, 400, "invalid_batch"),
        (b'{"batch": {"type": "track"}}', None, 400, "invalid_batch"),
        (b"not gzip at all", "gzip", 400, "invalid_gzip"),
        # mtime=0 keeps the bytes, and so the test's id, the same in every
        # process of a parallel run.
        (gzip.compress(b'{"batch": []}', mtime=0)[:-10], "gzip", 400, "invalid_gzip"),
        (b"{}", "br", 415, "unsupported_encoding"),
    ],
)
def test_unreadable_body_rejected(source, raw, encoding, status, code):
    headers = {"Content-Encoding": encoding} if encoding else {}

    response = post(
        "/batch", None, raw=raw, write_key=source.write_key, headers=headers
    )

    assert response.status_code == status
    assert response.json()["code"] == code
    assert response.json()["success"] is False


def test_invalid_sent_at_rejected(source, contact):
    body = batch(track("user-1", "Signed In"), sentAt="soon")

    response = post("/batch", body, write_key=source.write_key)

    assert response.status_code == 400
    assert response.json()["code"] == "invalid_timestamp"


def test_batch_over_500_kb_is_413(source, contact):
    # 20 calls of about 30 KB each: each within 32 KB, together over 500 KB.
    padding = "x" * 30_000
    messages = [
        track("user-1", "Signed In", properties={"padding": padding}) for _ in range(20)
    ]

    response = post("/batch", batch(*messages), write_key=source.write_key)

    assert response.status_code == 413
    assert response.json()["code"] == "payload_too_large"
    assert not UsageEvent.objects.exists()


def test_gzip_bomb_is_413(source, contact):
    raw = gzip.compress(b'{"batch": ["' + b"x" * 600_000 + b'"]}')

    response = post(
        "/batch",
        None,
        raw=raw,
        write_key=source.write_key,
        headers={"Content-Encoding": "gzip"},
    )

    assert len(raw) < 10_000
    assert response.status_code == 413


def test_call_over_32_kb_rejected_in_batch(source, contact):
    big = track("user-1", "Signed In", properties={"padding": "x" * 33_000})
    small = track("user-1", "Signed In", messageId="m-1")

    response = post("/batch", batch(big, small), write_key=source.write_key)

    assert response.status_code == 200
    assert response.json()["rejected"][0]["code"] == "message_too_large"
    assert UsageEvent.objects.get().external_id == "m-1"


def test_single_call_over_32_kb_is_413(source, contact):
    big = track("user-1", "Signed In", properties={"padding": "x" * 33_000})

    response = post("/track", big, write_key=source.write_key)

    assert response.status_code == 413
    message = response.json()["message"]
    assert "single call is limited to 32768 bytes" in message
    assert "batches" not in message


def test_get_is_405(source):
    from django.test import Client

    response = Client().get("/segment/v1/batch")

    assert response.status_code == 405
    assert response.json()["code"] == "method_not_allowed"


# -- queries ---------------------------------------------------------------------------


def test_batch_query_count_does_not_grow(source):
    account = make_account(external_id="acct-q")
    for number in range(20):
        make_contact(account, external_id=f"q-user-{number}")

    def queries_for(count: int, prefix: str) -> int:
        messages = [
            track(f"q-user-{n % 20}", "Signed In", messageId=f"{prefix}-{n}")
            for n in range(count)
        ]
        with CaptureQueriesContext(connection) as queries:
            response = post("/batch", batch(*messages), write_key=source.write_key)
        assert response.json()["stored"] == count
        return len(queries)

    assert queries_for(10, "small") == queries_for(200, "large")


def test_answer_is_json_with_counts(source, contact):
    response = post(
        "/batch", batch(track("user-1", "Signed In")), write_key=source.write_key
    )

    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content) == {
        "success": True,
        "received": 1,
        "accepted": 1,
        "stored": 1,
        "duplicates": 0,
        "rejected": [],
    }


# -- admin ---------------------------------------------------------------------


def test_admin_shows_generated_write_key(admin_client):
    response = admin_client.post(
        "/admin/integrations/eventsource/add/",
        {"name": "Web app", "is_active": "on", "store_page_views": "on"},
    )
    assert response.status_code == 302
    created = EventSource.objects.get(name="Web app")

    page = admin_client.get(f"/admin/integrations/eventsource/{created.pk}/change/")

    assert len(created.write_key) >= 32
    assert created.write_key in page.content.decode()


def nested(levels):
    """Return a value with `levels` objects around a string."""
    value: object = "x"
    for _ in range(levels):
        value = {"a": value}
    return value


@pytest.mark.parametrize("field", ["properties", "traits"])
def test_values_nested_deeper_than_20_rejected(source, contact, field):
    if field == "properties":
        call = track("user-1", "Signed In", properties=nested(200))
    else:
        call = identify("user-1", nested(200))

    response = post("/batch", batch(call), write_key=source.write_key)

    assert response.status_code == 400, response.content
    rejected = response.json()["rejected"][0]
    assert rejected["code"] == "invalid_message"
    assert f"{field} is nested more than 20 levels deep" in rejected["reason"]
    assert not UsageEvent.objects.exists()


def test_properties_nested_20_levels_accepted(source, contact):
    call = track("user-1", "Signed In", properties=nested(20))
    too_deep = track("user-1", "Signed In", properties=nested(21), messageId="m-2")

    response = post("/batch", batch(call, too_deep), write_key=source.write_key)

    assert response.status_code == 200, response.content
    assert response.json()["accepted"] == 1
    assert response.json()["rejected"][0]["index"] == 1
    assert UsageEvent.objects.get().properties == nested(20)
