"""Recording services reject text and JSON that PostgreSQL cannot store.

Each case must raise ValueError naming the argument, before anything is
written or any change is signalled, instead of a database error.
"""

import pytest

from customers import services as customers
from customers.models import SupportTicket, SurveyResponse, UsageEvent
from customers.signals import data_changed
from tests.factories import NOW, make_account, make_contact

pytestmark = pytest.mark.django_db

# The column sizes of UsageEvent.name and SupportTicket.topic.
NAME_MAX = 100
TOPIC_MAX = 100


@pytest.fixture
def sent_changes():
    """Collect (account_id, source) of every data_changed signal sent."""
    received = []

    def receiver(sender, account_id, source, **kwargs):
        received.append((account_id, source))

    data_changed.connect(receiver, dispatch_uid="test-recording-input")
    yield received
    data_changed.disconnect(dispatch_uid="test-recording-input")


def test_event_name_with_nul_rejected(sent_changes):
    contact = make_contact()

    with pytest.raises(ValueError) as error:
        customers.record_usage_event(contact, "Sign\x00In", NOW)

    message = str(error.value)
    assert "usage event name" in message
    assert "'Sign\\x00In'" in message
    assert "NUL" in message
    assert not UsageEvent.objects.exists()
    assert sent_changes == []


def test_event_name_over_column_size_rejected(sent_changes):
    contact = make_contact()

    with pytest.raises(ValueError) as error:
        customers.record_usage_event(contact, "x" * 500, NOW)

    message = str(error.value)
    assert "usage event name" in message
    assert "500 characters" in message
    assert f"maximum of {NAME_MAX}" in message
    # The value is shown truncated, not in full.
    assert "x" * 500 not in message
    assert "xxxx" in message
    assert not UsageEvent.objects.exists()
    assert sent_changes == []


def test_event_name_at_column_size_accepted():
    contact = make_contact()

    event = customers.record_usage_event(contact, "x" * NAME_MAX, NOW)

    event.refresh_from_db()
    assert event.name == "x" * NAME_MAX


def test_event_feature_over_column_size_rejected():
    contact = make_contact()

    with pytest.raises(ValueError, match=r"usage event feature .* maximum of 100"):
        customers.record_usage_event(contact, "Report Run", NOW, feature="f" * 101)

    assert not UsageEvent.objects.exists()


@pytest.mark.parametrize(
    ("properties", "fragments"),
    [
        ({"v": float("nan")}, ["properties['v']", "nan"]),
        ({"v": [1, float("inf")]}, ["properties['v'][1]", "inf"]),
        ({"k": "a\x00b"}, ["properties['k']", "NUL"]),
        ({"a\x00": 1}, ["properties key 'a\\x00'", "NUL"]),
        ({"when": NOW}, ["properties['when']", "datetime"]),
    ],
)
def test_event_properties_json_rejected(sent_changes, properties, fragments):
    contact = make_contact()

    with pytest.raises(ValueError) as error:
        customers.record_usage_event(contact, "Report Run", NOW, properties=properties)

    message = str(error.value)
    assert message.startswith("usage event properties")
    for fragment in fragments:
        assert fragment in message
    assert not UsageEvent.objects.exists()
    assert sent_changes == []


def test_event_nested_properties_accepted():
    contact = make_contact()
    properties = {"plan": {"seats": 5, "tags": ["a", None, True, 1.5]}}

    event = customers.record_usage_event(
        contact, "Report Run", NOW, properties=properties
    )

    event.refresh_from_db()
    assert event.properties == properties


def test_ticket_topic_over_column_size_rejected(sent_changes):
    account = make_account()

    with pytest.raises(ValueError) as error:
        customers.record_ticket(account, "T-9", NOW, "high", topic="t" * 500)

    message = str(error.value)
    assert "ticket topic" in message
    assert "500 characters" in message
    assert f"maximum of {TOPIC_MAX}" in message
    assert not SupportTicket.objects.exists()
    assert sent_changes == []


def test_ticket_external_id_with_nul_rejected():
    with pytest.raises(ValueError, match=r"ticket external_id .* NUL"):
        customers.record_ticket(make_account(), "T\x009", NOW, "high")

    assert not SupportTicket.objects.exists()


def test_survey_comment_with_nul_rejected(sent_changes):
    contact = make_contact()

    with pytest.raises(ValueError, match=r"survey comment .* NUL"):
        customers.record_survey_response(contact, "nps", 9, NOW, comment="ok\x00")

    assert not SurveyResponse.objects.exists()
    assert sent_changes == []


def test_account_properties_nan_rejected(sent_changes):
    account = make_account(properties={"score": 3})

    with pytest.raises(ValueError) as error:
        customers.update_account_attributes(
            account, {"properties": {"score": float("nan")}}
        )

    assert "account properties['score'] is nan" in str(error.value)
    account.refresh_from_db()
    assert account.properties == {"score": 3}
    assert sent_changes == []


def test_account_properties_nul_rejected():
    account = make_account()

    with pytest.raises(ValueError, match=r"account properties\['k'\] .* NUL"):
        customers.update_account_attributes(account, {"properties": {"k": "a\x00b"}})

    account.refresh_from_db()
    assert account.properties == {}


def test_account_name_with_nul_rejected():
    account = make_account(name="Acme")

    with pytest.raises(ValueError, match="account name 'Ac\\\\x00me' contains a NUL"):
        customers.update_account_attributes(account, {"name": "Ac\x00me"})

    account.refresh_from_db()
    assert account.name == "Acme"


def test_contact_attribute_over_column_size_rejected(sent_changes):
    contact = make_contact(role="Admin")

    with pytest.raises(ValueError) as error:
        customers.update_contact_attributes(
            contact, {"role": "r" * 150, "first_name": "Ann"}
        )

    message = str(error.value)
    assert "contact role" in message
    assert "150 characters" in message
    assert "maximum of 100" in message
    contact.refresh_from_db()
    assert contact.role == "Admin"
    assert contact.first_name != "Ann"
    assert sent_changes == []


# Unpaired UTF-16 surrogates, as a JSON body's "\ud800" escape decodes to,
# have no UTF-8 form, so PostgreSQL cannot store them in text or jsonb.
LONE_SURROGATE = "\ud800"


@pytest.mark.parametrize(
    ("arguments", "label"),
    [
        ({"name": f"Sign{LONE_SURROGATE}In"}, "usage event name"),
        ({"feature": f"rep{LONE_SURROGATE}"}, "usage event feature"),
        ({"external_id": f"m-{LONE_SURROGATE}"}, "usage event external_id"),
        ({"properties": {"k": LONE_SURROGATE}}, "usage event properties['k']"),
        ({"properties": {LONE_SURROGATE: 1}}, "usage event properties key"),
        (
            {"properties": {"plan": {"tags": ["ok", "\udfff"]}}},
            "usage event properties['plan']['tags'][1]",
        ),
    ],
)
def test_event_surrogate_rejected(sent_changes, arguments, label):
    contact = make_contact()
    fields = {"name": "Report Run", **arguments}
    name = fields.pop("name")

    with pytest.raises(ValueError) as error:
        customers.record_usage_event(contact, name, NOW, **fields)

    message = str(error.value)
    assert message.startswith(label)
    assert "unpaired UTF-16 surrogate" in message
    assert not UsageEvent.objects.exists()
    assert sent_changes == []


def test_event_paired_surrogates_accepted():
    # A character outside the Basic Multilingual Plane, written as the
    # JSON escape pair "\ud83d\ude80", decodes to one code point.
    contact = make_contact()
    rocket = "\U0001f680"

    event = customers.record_usage_event(
        contact, f"Launch {rocket}", NOW, properties={rocket: rocket}
    )

    event.refresh_from_db()
    assert event.name == f"Launch {rocket}"
    assert event.properties == {rocket: rocket}


def test_ticket_topic_surrogate_rejected(sent_changes):
    with pytest.raises(ValueError, match=r"ticket topic .* unpaired UTF-16 surrogate"):
        customers.record_ticket(
            make_account(), "T-9", NOW, "high", topic=LONE_SURROGATE
        )

    assert not SupportTicket.objects.exists()
    assert sent_changes == []


def test_survey_comment_surrogate_rejected(sent_changes):
    with pytest.raises(
        ValueError, match=r"survey comment .* unpaired UTF-16 surrogate"
    ):
        customers.record_survey_response(
            make_contact(), "nps", 9, NOW, comment=LONE_SURROGATE
        )

    assert not SurveyResponse.objects.exists()
    assert sent_changes == []


def test_account_properties_surrogate_rejected(sent_changes):
    account = make_account()

    with pytest.raises(
        ValueError, match=r"account properties\['k'\] .* unpaired UTF-16 surrogate"
    ):
        customers.update_account_attributes(
            account, {"properties": {"k": LONE_SURROGATE}}
        )

    account.refresh_from_db()
    assert account.properties == {}
    assert sent_changes == []


def test_contact_name_surrogate_rejected(sent_changes):
    contact = make_contact(first_name="Ann")

    with pytest.raises(
        ValueError, match=r"contact first_name .* unpaired UTF-16 surrogate"
    ):
        customers.update_contact_attributes(
            contact, {"first_name": f"A{LONE_SURROGATE}"}
        )

    contact.refresh_from_db()
    assert contact.first_name == "Ann"
    assert sent_changes == []
