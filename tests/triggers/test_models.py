"""Model validation and the database constraints behind idempotent sweeps."""

import pytest
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from tests.factories import NOW, make_account, make_contact
from tests.triggers.factories import make_template, make_trigger
from triggers.models import EmailTemplate, Firing, OutboxEmail, Trigger

pytestmark = pytest.mark.django_db


def test_template_syntax_error_names_line():
    template = EmailTemplate(
        slug="broken",
        name="Broken",
        subject="Hello",
        body="Hi {{ contact.first_name }},\n{% if course %}\nNo end tag.",
    )

    with pytest.raises(ValidationError) as error:
        template.save()

    assert "line 2" in error.value.message_dict["body"][0]
    assert not EmailTemplate.objects.exists()


@pytest.mark.parametrize(
    "tag", ['{% include "x.txt" %}', "{% debug %}", "{% load static %}"]
)
def test_template_forbidden_tag_rejected(tag):
    template = EmailTemplate(
        slug="unsafe", name="Unsafe", subject="Hello", body=f"Hi,\n{tag}\n"
    )

    with pytest.raises(ValidationError) as error:
        template.save()

    message = error.value.message_dict["body"][0]
    assert "on line 2 is not allowed in email templates" in message
    assert not EmailTemplate.objects.exists()


def test_template_subject_error_names_field():
    template = EmailTemplate(slug="bad", name="Bad", subject="Hi {{ }}", body="Body")

    with pytest.raises(ValidationError) as error:
        template.save()

    assert "line 1" in error.value.message_dict["subject"][0]


def test_template_subject_must_be_one_line():
    template = EmailTemplate(slug="two", name="Two", subject="One\nTwo", body="Body")

    with pytest.raises(ValidationError) as error:
        template.full_clean()

    assert "single line" in error.value.message_dict["subject"][0]


def test_trigger_condition_error_shows_path():
    trigger = Trigger(
        slug="bad",
        name="Bad",
        subject_type="contact",
        condition={"all": [{"kind": "inactivity", "days": 10, "weeks": 2}]},
    )

    with pytest.raises(ValidationError) as error:
        trigger.full_clean()

    message = error.value.message_dict["condition"][0]
    assert message.startswith("Invalid condition at $.all[0]:")
    assert "has no parameter weeks" in message


def test_trigger_unknown_kind_rejected():
    trigger = Trigger(
        slug="bad",
        name="Bad",
        subject_type="account",
        condition={"kind": "no_such_kind"},
    )

    with pytest.raises(ValidationError) as error:
        trigger.full_clean()

    assert "unknown condition kind 'no_such_kind'" in str(error.value)


def make_firing(trigger, account, contact=None, key="once"):
    return Firing.objects.create(
        trigger=trigger,
        subject_type=trigger.subject_type,
        account=account,
        contact=contact,
        occurrence_key=key,
        fired_at=NOW,
    )


def test_duplicate_contact_firing_rejected_by_database():
    contact = make_contact()
    trigger = make_trigger({"kind": "inactivity", "days": 10})
    make_firing(trigger, contact.account, contact)

    with pytest.raises(IntegrityError), transaction.atomic():
        make_firing(trigger, contact.account, contact)

    make_firing(trigger, contact.account, contact, key="2024-06-15")
    assert Firing.objects.count() == 2


def test_duplicate_account_firing_rejected_by_database():
    account = make_account()
    trigger = make_trigger({"kind": "plan", "plans": ["Basic"]}, subject_type="account")
    make_firing(trigger, account)

    with pytest.raises(IntegrityError), transaction.atomic():
        make_firing(trigger, account)

    assert Firing.objects.count() == 1


def test_account_firing_with_contact_rejected():
    contact = make_contact()
    trigger = make_trigger({"kind": "plan", "plans": ["Basic"]}, subject_type="account")

    with pytest.raises(IntegrityError), transaction.atomic():
        make_firing(trigger, contact.account, contact)


def test_second_email_per_firing_contact_rejected():
    contact = make_contact()
    template = make_template()
    trigger = make_trigger({"kind": "inactivity", "days": 10}, email_template=template)
    firing = make_firing(trigger, contact.account, contact)
    fields = {
        "firing": firing,
        "contact": contact,
        "template": template,
        "to_email": contact.email,
        "subject": "Hello",
        "body_text": "Hi",
    }
    OutboxEmail.objects.create(**fields)

    with pytest.raises(IntegrityError), transaction.atomic():
        OutboxEmail.objects.create(**fields)


def test_trigger_created_active_records_activation():
    before = timezone.now()

    active = make_trigger({"kind": "inactivity", "days": 10})
    inactive = make_trigger({"kind": "inactivity", "days": 10}, is_active=False)

    assert active.activated_at is not None
    assert active.activated_at >= before
    assert inactive.activated_at is None
