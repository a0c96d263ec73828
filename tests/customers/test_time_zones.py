"""Time zone names: only IANA names are accepted, whatever files the host has."""

import logging
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError

from customers.time_zones import (
    load_time_zone,
    time_zone_names,
    validate_time_zone_name,
)
from tests.factories import make_account, make_contact
from triggers.delivery import recipient_time_zone
from triggers.delivery_forms import DeliveryRulesForm
from triggers.models import DeliveryRules

# Names that are files in a zoneinfo folder on Debian hosts but not IANA zones.
HOST_FILES = ["localtime", "posixrules"]


@pytest.mark.parametrize("name", ["UTC", "Europe/Paris", "America/New_York"])
def test_iana_name_loads(name):
    assert load_time_zone(name) == ZoneInfo(name)
    assert name in time_zone_names()


@pytest.mark.parametrize(
    "name", [*HOST_FILES, "Europe/Pariss", "America", "../../etc/passwd", ""]
)
def test_non_iana_name_rejected(name):
    with pytest.raises(ValueError, match=f"Invalid time zone {name!r}"):
        load_time_zone(name)


@pytest.mark.parametrize("name", HOST_FILES)
def test_host_file_name_not_validated(name):
    with pytest.raises(ValidationError) as error:
        validate_time_zone_name(name)

    assert f"{name!r}" in error.value.messages[0]


@pytest.mark.django_db
def test_contact_rejects_localtime():
    contact = make_contact()
    contact.time_zone = "localtime"

    with pytest.raises(ValidationError) as error:
        contact.full_clean()

    assert "'localtime'" in error.value.message_dict["time_zone"][0]


@pytest.mark.django_db
def test_account_rejects_localtime():
    account = make_account()
    account.time_zone = "localtime"

    with pytest.raises(ValidationError) as error:
        account.full_clean()

    assert "'localtime'" in error.value.message_dict["time_zone"][0]


@pytest.mark.django_db
def test_rules_form_rejects_localtime():
    form = DeliveryRulesForm(
        data={
            "cap_emails": "3",
            "cap_window_days": "7",
            "max_deferral_days": "7",
            "send_from": "09:00",
            "send_until": "17:00",
            "send_weekdays": ["0"],
            "default_time_zone": "localtime",
        }
    )

    assert not form.is_valid()
    messages = [str(message) for message in form.errors["default_time_zone"]]
    assert "'localtime'" in " ".join(messages)


@pytest.mark.django_db
def test_stored_localtime_skipped_for_quiet_hours(caplog):
    account = make_account(time_zone="Europe/Berlin")
    contact = make_contact(account)
    # Stored before names were checked against the IANA list.
    type(contact).objects.filter(pk=contact.pk).update(time_zone="localtime")
    contact.refresh_from_db()
    rules = DeliveryRules(default_time_zone="UTC")

    with caplog.at_level(logging.WARNING, logger="triggers.delivery"):
        zone = recipient_time_zone(contact, rules)

    assert zone == ZoneInfo("Europe/Berlin")
    assert "'localtime'" in caplog.text
