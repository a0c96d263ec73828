"""Large Segment batches: bad calls among good ones, duplicates and roll-ups.

The expected counts are computed here from the calls that were sent, not
read back from the event table, so a roll-up that drifts from the events
fails these tests.
"""

import random
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from conditions import EvaluationContext
from customers.conditions import value_distinct_features, value_last_usage
from customers.models import Contact, UsageDay, UsageEvent
from metrics.models import AccountDay
from tests.factories import make_account, make_contact
from tests.integrations.segment_calls import iso, make_source, post, track

pytestmark = pytest.mark.django_db

START = datetime(2024, 6, 14, 20, 0, tzinfo=UTC)
EVENT_NAMES = ["Signed In", "Report Exported", "Invite Sent"]


@pytest.fixture
def source():
    return make_source()


@pytest.fixture
def contacts():
    """Six contacts in two accounts, by userId."""
    accounts = [make_account(external_id=f"acct-{n}") for n in range(2)]
    return {
        f"user-{n}": make_contact(accounts[n % 2], external_id=f"user-{n}")
        for n in range(6)
    }


def random_calls(generator: random.Random, count: int, prefix: str) -> list[dict]:
    """Return track calls spread over two UTC days, some with a feature."""
    calls = []
    for number in range(count):
        properties = {"plan": "pro"}
        if generator.random() < 0.7:
            properties["feature"] = f"feature-{generator.randrange(3)}"
        occurred = START + timedelta(minutes=generator.randrange(8 * 60))
        calls.append(
            track(
                f"user-{generator.randrange(6)}",
                generator.choice(EVENT_NAMES),
                messageId=f"{prefix}-{number}",
                timestamp=iso(occurred),
                properties=properties,
            )
        )
    return calls


def expected_usage_days(calls: list[dict], contacts) -> Counter:
    days: Counter = Counter()
    for call in calls:
        contact = contacts[call["userId"]]
        day = datetime.fromisoformat(call["timestamp"]).astimezone(UTC).date()
        feature = call["properties"].get("feature", "")
        days[(contact.pk, call["event"], feature, day)] += 1
    return days


def expected_account_days(calls: list[dict], contacts) -> Counter:
    days: Counter = Counter()
    for call in calls:
        account_id = contacts[call["userId"]].account_id
        day = datetime.fromisoformat(call["timestamp"]).astimezone(UTC).date()
        days[(account_id, day)] += 1
    return days


def stored_usage_days() -> Counter:
    rows = UsageDay.objects.values_list("contact_id", "name", "feature", "day", "count")
    return Counter({tuple(key): count for *key, count in rows})


def stored_account_days() -> Counter:
    rows = AccountDay.objects.filter(usage_events__gt=0).values_list(
        "account_id", "day", "usage_events"
    )
    return Counter({(account, day): count for account, day, count in rows})


def bad_calls() -> dict[int, tuple[dict, str]]:
    """Return bad calls by the index they take in the batch, with their code."""
    return {
        3: (track("user-0", "", messageId="bad-empty-event"), "missing_event"),
        10: (track("nobody", "Signed In", messageId="bad-user"), "unknown_user"),
        11: (
            track("user-1", "Signed In", messageId="bad-time", timestamp="soon"),
            "invalid_timestamp",
        ),
        57: (
            track("user-2", "Signed \ud800In", messageId="bad-surrogate"),
            "invalid_message",
        ),
        58: (
            track(
                "user-2",
                "Signed In",
                messageId="bad-surrogate-property",
                properties={"note": "a\udc00"},
            ),
            "invalid_message",
        ),
        99: (
            track(
                "user-3",
                "Signed In",
                messageId="bad-feature",
                properties={"feature": ["a"]},
            ),
            "invalid_message",
        ),
    }


def test_mixed_batch_keeps_good_and_names_bad(source, contacts):
    good = random_calls(random.Random(1), 200, "mixed")
    bad = bad_calls()
    messages = list(good)
    for index in sorted(bad):
        messages.insert(index, bad[index][0])

    response = post("/batch", {"batch": messages}, write_key=source.write_key)

    assert response.status_code == 200, response.content
    body = response.json()
    assert body["received"] == len(good) + len(bad)
    assert body["stored"] == len(good)
    assert body["duplicates"] == 0
    rejected = {item["index"]: item for item in body["rejected"]}
    assert sorted(rejected) == sorted(bad)
    for index, (call, code) in bad.items():
        assert rejected[index]["code"] == code
        assert rejected[index]["messageId"] == call["messageId"]
        assert rejected[index]["reason"]
    stored = set(UsageEvent.objects.values_list("external_id", flat=True))
    assert stored == {call["messageId"] for call in good}


def test_surrogate_reason_names_field(source, contacts):
    bad = track("user-0", "Signed \ud800In", messageId="bad-surrogate")
    good = track("user-0", "Signed In", messageId="good")

    response = post("/batch", {"batch": [good, bad]}, write_key=source.write_key)

    assert response.status_code == 200, response.content
    reason = response.json()["rejected"][0]["reason"]
    assert "usage event name" in reason
    assert "unpaired UTF-16 surrogate" in reason
    assert UsageEvent.objects.get().external_id == "good"


def test_duplicates_within_batch_count_once(source, contacts):
    calls = random_calls(random.Random(2), 50, "dup")
    repeated = [*calls, *calls[:20], calls[0]]

    response = post("/batch", {"batch": repeated}, write_key=source.write_key)

    assert response.status_code == 200, response.content
    assert response.json()["stored"] == 50
    assert response.json()["duplicates"] == 21
    assert UsageEvent.objects.count() == 50
    assert stored_usage_days() == expected_usage_days(calls, contacts)


def test_duplicates_across_batches_count_once(source, contacts):
    calls = random_calls(random.Random(3), 120, "across")
    first, second = calls[:80], calls[40:]

    post("/batch", {"batch": first}, write_key=source.write_key)
    response = post("/batch", {"batch": second}, write_key=source.write_key)

    assert response.status_code == 200, response.content
    assert response.json()["stored"] == 40
    assert response.json()["duplicates"] == 40
    assert UsageEvent.objects.count() == 120
    assert stored_usage_days() == expected_usage_days(calls, contacts)


def test_roll_ups_match_calls_sent(source, contacts):
    generator = random.Random(4)
    sent: list[dict] = []
    for request in range(4):
        calls = random_calls(generator, 150, f"roll-{request}")
        # Each request repeats part of the one before, as a sender retrying does.
        body = [*calls, *sent[-30:]]
        messages = list(body)
        messages.insert(7, track("nobody", "Signed In", messageId=f"bad-{request}"))
        response = post("/batch", {"batch": messages}, write_key=source.write_key)
        assert response.status_code == 200, response.content
        assert response.json()["stored"] == 150
        sent.extend(calls)

    assert stored_usage_days() == expected_usage_days(sent, contacts)
    assert stored_account_days() == expected_account_days(sent, contacts)


def test_last_seen_and_features_match_calls(source, contacts):
    calls = random_calls(random.Random(5), 100, "seen")
    duplicates = [dict(call, timestamp=iso(START)) for call in calls[:10]]

    post("/batch", {"batch": [*calls, *duplicates]}, write_key=source.write_key)

    context = EvaluationContext("contact", START + timedelta(days=2))
    found = {
        contact.external_id: (contact.last, contact.features)
        for contact in Contact.objects.annotate(
            last=value_last_usage(context, {}),
            features=value_distinct_features(context, {"days": 7}),
        )
    }
    for user_id in contacts:
        own = [call for call in calls if call["userId"] == user_id]
        latest = max(
            (datetime.fromisoformat(call["timestamp"]) for call in own), default=None
        )
        features = {call["properties"].get("feature", "") for call in own} - {""}
        assert found[user_id] == (latest, len(features)), user_id


@pytest.mark.parametrize(
    "traits", [{"note": "a\x00b"}, {"a\x00b": "note"}, {"deep": [{"x": "\x00"}]}]
)
def test_nul_in_traits_rejected(source, contacts, traits):
    call = {"type": "identify", "userId": "user-0", "traits": traits}

    response = post("/batch", {"batch": [call]}, write_key=source.write_key)

    assert response.status_code == 400, response.content
    rejected = response.json()["rejected"][0]
    assert rejected["code"] == "invalid_message"
    assert "NUL character" in rejected["reason"]


def test_brackets_in_strings_are_not_nesting(source, contacts):
    # Brackets inside strings count towards the quick depth estimate, so
    # this call takes the full check, which must still accept it.
    call = track("user-0", "Signed In", properties={"note": "[{" * 30})

    response = post("/batch", {"batch": [call]}, write_key=source.write_key)

    assert response.status_code == 200, response.content
    assert UsageEvent.objects.get().properties == {"note": "[{" * 30}


@pytest.mark.parametrize(
    ("bad", "code", "named"),
    [
        (track("u\ud800", "Signed In"), "invalid_id", "userId"),
        (track("user-0", "Signed In", messageId="m\udfff"), "invalid_id", "messageId"),
        (
            track("user-0", "Signed In", context={"groupId": "g\ud800"}),
            "invalid_id",
            "context.groupId",
        ),
        (
            {"type": "identify", "userId": "n\ud800", "traits": {"email": "n@x.io"}},
            "invalid_id",
            "userId",
        ),
        (
            {"type": "group", "userId": "user-0", "groupId": "g\ud800"},
            "invalid_id",
            "groupId",
        ),
        (
            {"type": "identify", "userId": "user-0", "traits": {"title": "x\ud800"}},
            "invalid_message",
            "traits.title",
        ),
        (
            {"type": "identify", "userId": "user-0", "traits": {"\udc00": "x"}},
            "invalid_message",
            "traits key",
        ),
    ],
)
def test_surrogate_in_call_rejected(source, contacts, bad, code, named):
    good = track("user-0", "Signed In", messageId="good")

    response = post("/batch", {"batch": [good, bad]}, write_key=source.write_key)

    assert response.status_code == 200, response.content
    rejected = response.json()["rejected"]
    assert [item["index"] for item in rejected] == [1]
    assert rejected[0]["code"] == code
    assert named in rejected[0]["reason"]
    assert "unpaired UTF-16 surrogate" in rejected[0]["reason"]
    assert UsageEvent.objects.get().external_id == "good"


def test_emoji_in_traits_accepted(source, contacts):
    call = {
        "type": "identify",
        "userId": "user-0",
        "traits": {"motto": "go \U0001f680"},
    }

    response = post("/batch", {"batch": [call]}, write_key=source.write_key)

    assert response.status_code == 200, response.content
    contact = Contact.objects.get(external_id="user-0")
    assert contact.properties["motto"] == "go \U0001f680"


def test_surrogate_write_key_is_401(source, contacts):
    body = {"writeKey": "k\ud800", "batch": [track("user-0", "Signed In")]}

    response = post("/batch", body)

    assert response.status_code == 401, response.content
    assert response.json()["code"] == "unknown_write_key"
    assert not UsageEvent.objects.exists()
