"""Delivery rules: quiet hours, the frequency cap, suppression and one email per
occurrence for people reached through several accounts."""

import logging
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.urls import reverse

from courses.models import SignInLink
from tests.factories import NOW, make_account, make_contact
from tests.triggers.factories import make_template, make_trigger
from triggers.delivery import (
    cap_slot,
    in_send_window,
    next_window_opening,
    recipient_time_zone,
)
from triggers.delivery_forms import DeliveryRulesForm
from triggers.models import DeliveryRules, Firing, OutboxEmail
from triggers.outbox import idempotency_key_for, message_id_for
from triggers.services import run_sweep, send_outbox_email

pytestmark = pytest.mark.django_db

NEW_YORK = ZoneInfo("America/New_York")
BERLIN = ZoneInfo("Europe/Berlin")
UTC_ZONE = ZoneInfo("UTC")
WEEKDAYS = [0, 1, 2, 3, 4]
NEVER_USED = {"kind": "inactivity", "days": 10}


class Clock:
    """A settable timezone.now() for the code under test and auto_now fields."""

    def __init__(self, instant: datetime) -> None:
        self.instant = instant

    def __call__(self) -> datetime:
        return self.instant


@pytest.fixture
def clock(monkeypatch):
    fake = Clock(NOW)
    monkeypatch.setattr("django.utils.timezone.now", fake)
    return fake


def office_hours(**fields) -> DeliveryRules:
    values = {
        "cap_emails": 0,
        "cap_window_days": 7,
        "max_deferral_days": 7,
        "quiet_hours_enabled": True,
        "send_from": time(9, 0),
        "send_until": time(17, 0),
        "send_weekdays": WEEKDAYS,
        "default_time_zone": "UTC",
    }
    values.update(fields)
    return DeliveryRules(**values)


def pending_emails(*triggers):
    """Sweep the triggers as of the clock's instant; return the new outbox rows."""
    run_sweep(NOW, triggers=list(triggers), queue_email=False)
    return list(OutboxEmail.objects.order_by("pk"))


# -- quiet hours and daylight saving -------------------------------------------


def test_window_open_returns_same_instant():
    # Monday 10:00 in New York.
    instant = datetime(2024, 3, 11, 10, 0, tzinfo=NEW_YORK).astimezone(UTC)

    assert next_window_opening(instant, NEW_YORK, office_hours()) == instant


def test_opening_after_spring_forward_weekend():
    # Friday 18:00 EST; the clocks go forward on Sunday 10 March 2024.
    friday_evening = datetime(2024, 3, 8, 18, 0, tzinfo=NEW_YORK).astimezone(UTC)
    monday_nine = datetime(2024, 3, 11, 9, 0, tzinfo=NEW_YORK)

    opening = next_window_opening(friday_evening, NEW_YORK, office_hours())

    assert opening == monday_nine
    assert opening.astimezone(NEW_YORK).hour == 9
    # Three days of 24 hours would land at 10:00 EDT; the DST day is 23 hours.
    assert opening - friday_evening == timedelta(days=2, hours=14)


def test_opening_after_fall_back_weekend():
    # Friday 20:00 CEST; the clocks go back on Sunday 27 October 2024.
    friday_evening = datetime(2024, 10, 25, 20, 0, tzinfo=BERLIN).astimezone(UTC)
    monday_nine = datetime(2024, 10, 28, 9, 0, tzinfo=BERLIN)

    opening = next_window_opening(friday_evening, BERLIN, office_hours())

    assert opening == monday_nine
    assert opening.astimezone(BERLIN).hour == 9
    assert monday_nine.utcoffset() == timedelta(hours=1)
    assert opening - friday_evening == timedelta(days=2, hours=14)


def test_opening_on_the_transition_day():
    # A Sunday window opening at 02:30, which does not exist on 10 March 2024
    # in New York: it reads as 02:30 EST, which is 03:30 EDT.
    rules = office_hours(
        send_from=time(2, 30), send_until=time(5, 0), send_weekdays=[6]
    )
    midnight = datetime(2024, 3, 10, 0, 0, tzinfo=NEW_YORK).astimezone(UTC)

    opening = next_window_opening(midnight, NEW_YORK, rules)

    assert opening == datetime(2024, 3, 10, 3, 30, tzinfo=NEW_YORK)
    assert opening == datetime(2024, 3, 10, 7, 30, tzinfo=UTC)


def test_window_inside_spring_forward_gap_skipped():
    # 02:30-03:15 on 10 March 2024 in New York: 02:30 reads as 03:30 EDT,
    # after 03:15, so that Sunday has no window and the next Sunday's opens.
    rules = office_hours(
        send_from=time(2, 30), send_until=time(3, 15), send_weekdays=[6]
    )
    saturday = datetime(2024, 3, 9, 12, 0, tzinfo=NEW_YORK).astimezone(UTC)

    opening = next_window_opening(saturday, NEW_YORK, rules)

    assert opening == datetime(2024, 3, 17, 2, 30, tzinfo=NEW_YORK)
    assert not in_send_window(
        datetime(2024, 3, 10, 3, 10, tzinfo=NEW_YORK).astimezone(UTC), NEW_YORK, rules
    )


def test_repeated_hour_compared_in_utc():
    # 01:30 happens twice in New York on 3 November 2024. A window of
    # 01:00-02:00 on Sundays is open during the first 01:30 and the second.
    rules = office_hours(send_from=time(1, 0), send_until=time(2, 0), send_weekdays=[6])
    first = datetime(2024, 11, 3, 1, 30, tzinfo=NEW_YORK)
    second = datetime(2024, 11, 3, 1, 30, fold=1, tzinfo=NEW_YORK)

    # Aware datetimes in a repeated hour never compare equal across zones,
    # so both sides are compared in UTC.
    first_utc, second_utc = first.astimezone(UTC), second.astimezone(UTC)
    assert next_window_opening(first_utc, NEW_YORK, rules) == first_utc
    assert next_window_opening(second_utc, NEW_YORK, rules) == second_utc
    assert second.astimezone(UTC) - first.astimezone(UTC) == timedelta(hours=1)


# An overnight window that opens on Mondays and Saturdays at 22:00 and closes
# at 06:00 the next morning.
def overnight(**fields) -> DeliveryRules:
    values = {"send_from": time(22, 0), "send_until": time(6, 0)}
    values.update(fields)
    return office_hours(**values)


def test_overnight_window_open_before_midnight():
    rules = overnight(send_weekdays=[0])
    monday_late = datetime(2024, 3, 11, 23, 0, tzinfo=BERLIN).astimezone(UTC)

    assert in_send_window(monday_late, BERLIN, rules)
    assert next_window_opening(monday_late, BERLIN, rules) == monday_late


def test_overnight_window_open_after_midnight():
    # The Monday window is still open early on Tuesday, a day that is not a
    # sending day of its own.
    rules = overnight(send_weekdays=[0])
    tuesday_early = datetime(2024, 3, 12, 5, 59, tzinfo=BERLIN).astimezone(UTC)

    assert in_send_window(tuesday_early, BERLIN, rules)
    assert next_window_opening(tuesday_early, BERLIN, rules) == tuesday_early


def test_overnight_window_closed_at_its_end():
    rules = overnight(send_weekdays=[0])
    tuesday_six = datetime(2024, 3, 12, 6, 0, tzinfo=BERLIN).astimezone(UTC)

    assert not in_send_window(tuesday_six, BERLIN, rules)
    assert next_window_opening(tuesday_six, BERLIN, rules) == datetime(
        2024, 3, 18, 22, 0, tzinfo=BERLIN
    )


def test_overnight_window_not_open_on_opening_day_morning():
    # Monday 03:00 belongs to the window that opened on Sunday, which is not
    # a sending day, so the next opening is Monday 22:00.
    rules = overnight(send_weekdays=[0])
    monday_early = datetime(2024, 3, 11, 3, 0, tzinfo=BERLIN).astimezone(UTC)

    assert not in_send_window(monday_early, BERLIN, rules)
    assert next_window_opening(monday_early, BERLIN, rules) == datetime(
        2024, 3, 11, 22, 0, tzinfo=BERLIN
    )


def test_overnight_window_on_spring_forward_night():
    # Berlin moves from 02:00 CET to 03:00 CEST on Sunday 31 March 2024, so
    # the window that opens on Saturday at 22:00 lasts 7 hours, not 8.
    rules = overnight(send_weekdays=[5])
    opening = datetime(2024, 3, 30, 22, 0, tzinfo=BERLIN)
    closing = datetime(2024, 3, 31, 6, 0, tzinfo=BERLIN)
    assert closing.utcoffset() == timedelta(hours=2)
    assert opening.utcoffset() == timedelta(hours=1)

    before_opening = opening.astimezone(UTC) - timedelta(minutes=1)
    last_minute = closing.astimezone(UTC) - timedelta(minutes=1)
    at_closing = closing.astimezone(UTC)

    assert next_window_opening(before_opening, BERLIN, rules) == opening
    assert in_send_window(last_minute, BERLIN, rules)
    assert not in_send_window(at_closing, BERLIN, rules)
    assert at_closing - opening == timedelta(hours=7)
    assert next_window_opening(at_closing, BERLIN, rules) == datetime(
        2024, 4, 6, 22, 0, tzinfo=BERLIN
    )


def test_overnight_window_on_fall_back_night():
    # Berlin moves from 03:00 CEST back to 02:00 CET on Sunday 27 October
    # 2024, so the Saturday window lasts 9 hours and is open during both
    # 02:30s.
    rules = overnight(send_weekdays=[5])
    opening = datetime(2024, 10, 26, 22, 0, tzinfo=BERLIN)
    closing = datetime(2024, 10, 27, 6, 0, tzinfo=BERLIN)
    first_half_past_two = datetime(2024, 10, 27, 2, 30, tzinfo=BERLIN)
    second_half_past_two = datetime(2024, 10, 27, 2, 30, fold=1, tzinfo=BERLIN)

    assert in_send_window(first_half_past_two.astimezone(UTC), BERLIN, rules)
    assert in_send_window(second_half_past_two.astimezone(UTC), BERLIN, rules)
    assert in_send_window(closing.astimezone(UTC) - timedelta(minutes=1), BERLIN, rules)
    assert not in_send_window(closing.astimezone(UTC), BERLIN, rules)
    assert closing.astimezone(UTC) - opening.astimezone(UTC) == timedelta(hours=9)


def test_email_deferred_to_overnight_window(clock, mailoutbox, caplog):
    overnight(send_weekdays=[0, 5]).save()
    make_contact(time_zone="America/New_York")
    trigger = make_trigger(NEVER_USED, email_template=make_template())
    # Tuesday 07:00 in New York, after the Monday window closed at 06:00.
    clock.instant = datetime(2024, 3, 12, 7, 0, tzinfo=NEW_YORK).astimezone(UTC)
    [email] = pending_emails(trigger)

    with caplog.at_level(logging.INFO, logger="triggers.outbox"):
        assert send_outbox_email(email.pk) is False

    email.refresh_from_db()
    assert email.status == "pending"
    assert email.next_attempt_at == datetime(2024, 3, 16, 22, 0, tzinfo=NEW_YORK)
    assert "sending window 22:00-06:00 (next day) Mon,Sat" in caplog.text
    assert mailoutbox == []

    # Sunday 01:00 is inside the window that opened on Saturday.
    clock.instant = datetime(2024, 3, 17, 1, 0, tzinfo=NEW_YORK).astimezone(UTC)
    assert send_outbox_email(email.pk) is True
    assert len(mailoutbox) == 1


def test_rules_form_accepts_overnight_window():
    form = rules_form(send_from="22:00", send_until="06:00")

    assert form.is_valid(), form.errors
    rules = form.save()
    assert rules.send_until == time(6, 0)


def test_no_sending_day_never_opens():
    assert next_window_opening(NOW, UTC_ZONE, office_hours(send_weekdays=[])) is None


def test_email_outside_window_deferred_to_local_opening(clock, mailoutbox):
    office_hours(max_deferral_days=7).save()
    contact = make_contact(time_zone="America/New_York")
    trigger = make_trigger(NEVER_USED, email_template=make_template())
    clock.instant = datetime(2024, 3, 8, 18, 0, tzinfo=NEW_YORK).astimezone(UTC)
    [email] = pending_emails(trigger)

    assert send_outbox_email(email.pk) is False

    email.refresh_from_db()
    assert email.status == "pending"
    assert email.attempts == 0
    assert email.next_attempt_at == datetime(2024, 3, 11, 9, 0, tzinfo=NEW_YORK)
    assert mailoutbox == []
    assert email.contact_id == contact.pk

    clock.instant = email.next_attempt_at
    assert send_outbox_email(email.pk) is True
    assert len(mailoutbox) == 1


def test_window_too_far_drops_email(clock, mailoutbox):
    office_hours(max_deferral_days=1).save()
    make_contact(time_zone="America/New_York")
    trigger = make_trigger(NEVER_USED, email_template=make_template())
    clock.instant = datetime(2024, 3, 8, 18, 0, tzinfo=NEW_YORK).astimezone(UTC)
    [email] = pending_emails(trigger)

    assert send_outbox_email(email.pk) is False

    email.refresh_from_db()
    assert email.status == "skipped"
    assert email.skip_reason.startswith("Dropped:")
    assert "America/New_York" in email.skip_reason
    assert "maximum deferral of 1 days" in email.skip_reason
    assert mailoutbox == []


def test_time_zone_falls_back_to_account_then_default():
    rules = office_hours(default_time_zone="Asia/Tokyo")
    account = make_account(time_zone="Europe/Berlin")

    assert (
        recipient_time_zone(make_contact(account, time_zone="America/New_York"), rules)
        == NEW_YORK
    )
    assert recipient_time_zone(make_contact(account), rules) == BERLIN
    assert recipient_time_zone(make_contact(), rules) == ZoneInfo("Asia/Tokyo")


def test_invalid_contact_time_zone_logged(caplog):
    rules = office_hours()
    account = make_account(time_zone="Europe/Berlin")
    contact = make_contact(account)
    # Stored by an import or a bulk update, which skip model validation.
    type(contact).objects.filter(pk=contact.pk).update(time_zone="Mars/Olympus")
    contact.refresh_from_db()

    with caplog.at_level(logging.WARNING, logger="triggers.delivery"):
        zone = recipient_time_zone(contact, rules)

    assert zone == BERLIN
    assert "'Mars/Olympus'" in caplog.text
    assert f"contact {contact.pk}" in caplog.text


def test_contact_rejects_invalid_time_zone():
    contact = make_contact()
    contact.time_zone = "Europe/Pariss"

    with pytest.raises(ValidationError) as error:
        contact.full_clean()

    assert "time_zone" in error.value.message_dict
    assert "Europe/Pariss" in error.value.message_dict["time_zone"][0]


def test_account_rejects_time_zone_folder():
    account = make_account()
    account.time_zone = "America"

    with pytest.raises(ValidationError) as error:
        account.full_clean()

    assert "'America'" in error.value.message_dict["time_zone"][0]


def rules_form(**overrides):
    data = {
        "cap_emails": "3",
        "cap_window_days": "7",
        "max_deferral_days": "7",
        "quiet_hours_enabled": "on",
        "send_from": "09:00",
        "send_until": "17:00",
        "send_weekdays": ["0", "1", "2", "3", "4"],
        "default_time_zone": "Europe/Paris",
    }
    data.update(overrides)
    return DeliveryRulesForm(data=data)


def test_rules_form_accepts_valid_rules():
    form = rules_form()

    assert form.is_valid(), form.errors


@pytest.mark.parametrize(
    ("field", "value", "error_field", "fragment"),
    [
        ("default_time_zone", "Europe/Pariss", "default_time_zone", "Europe/Pariss"),
        ("send_weekdays", ["7"], "send_weekdays", "7 is not one of"),
        ("send_weekdays", [], "send_weekdays", "required"),
        ("send_weekdays", ["Monday"], "send_weekdays", "Monday is not one of"),
        ("send_until", "09:00", "send_until", "starts and ends at 09:00"),
        ("cap_window_days", "0", "cap_window_days", "at least 1 day"),
    ],
)
def test_rules_form_rejects_bad_value(field, value, error_field, fragment):
    form = rules_form(**{field: value})

    assert not form.is_valid()
    assert fragment in " ".join(form.errors[error_field])


def test_rules_form_weekdays_are_checkboxes():
    form = rules_form()
    html = str(form["send_weekdays"])

    assert 'type="checkbox"' in html
    for name in ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday"):
        assert name in html
    assert "Saturday" in html
    assert "Sunday" in html


def test_rules_form_saves_sorted_weekdays():
    form = rules_form(send_weekdays=["6", "0", "2"])

    assert form.is_valid(), form.errors
    rules = form.save()

    rules.refresh_from_db()
    assert rules.send_weekdays == [0, 2, 6]


def test_rules_form_shows_saved_weekdays_checked():
    rules = office_hours(send_weekdays=[1, 3])
    rules.save()

    html = str(DeliveryRulesForm(instance=rules)["send_weekdays"])

    checked = [line for line in html.splitlines() if "checked" in line]
    assert len(checked) == 2
    assert 'value="1"' in checked[0]
    assert 'value="3"' in checked[1]


@pytest.mark.parametrize(
    ("weekdays", "fragment"),
    [
        ([0, 0, 0], "Monday listed more than once"),
        ([4, 1, 4, 1], "Tuesday, Friday listed more than once"),
        ([7], "[7] are not day numbers"),
        ([-1, 2], "[-1] are not day numbers"),
        (["Mon"], "['Mon'] are not day numbers"),
        ([True], "[True] are not day numbers"),
        ([], "choose at least one day"),
        ("0,1", "choose at least one day"),
    ],
)
def test_rules_reject_bad_weekdays(weekdays, fragment):
    rules = office_hours(send_weekdays=weekdays)

    with pytest.raises(ValidationError) as error:
        rules.full_clean()

    message = " ".join(error.value.message_dict["send_weekdays"])
    assert fragment in message
    assert repr(weekdays) in message


def test_rules_clean_sorts_weekdays():
    rules = office_hours(send_weekdays=[4, 0, 2])

    rules.full_clean()

    assert rules.send_weekdays == [0, 2, 4]


# -- frequency cap ---------------------------------------------------------------


def test_cap_slot_waits_for_oldest_to_leave():
    rules = office_hours(cap_emails=2, cap_window_days=7)
    sends = [NOW - timedelta(days=6), NOW - timedelta(days=1), NOW - timedelta(days=9)]

    # Two sends in the window reach the cap of two; the one from six days
    # ago leaves the window one day from now.
    assert cap_slot(sends, NOW, rules) == NOW + timedelta(days=1)
    assert cap_slot(sends[1:], NOW, rules) == NOW
    assert cap_slot(sends, NOW, office_hours(cap_emails=0)) == NOW


def test_cap_holds_across_two_triggers(clock, mailoutbox):
    office_hours(cap_emails=1, cap_window_days=7, quiet_hours_enabled=False).save()
    make_contact()
    first = make_trigger(NEVER_USED, email_template=make_template())
    second = make_trigger(NEVER_USED, email_template=make_template())
    first_email, second_email = pending_emails(first, second)

    assert send_outbox_email(first_email.pk) is True
    assert send_outbox_email(second_email.pk) is False

    second_email.refresh_from_db()
    assert second_email.status == "pending"
    assert second_email.next_attempt_at == NOW + timedelta(days=7)
    assert len(mailoutbox) == 1

    clock.instant = NOW + timedelta(days=7)
    assert send_outbox_email(second_email.pk) is True
    assert len(mailoutbox) == 2


def test_cap_slot_then_window(clock):
    # The cap frees a slot on Saturday; quiet hours move it to Monday 09:00.
    office_hours(cap_emails=1, cap_window_days=1, max_deferral_days=7).save()
    make_contact(time_zone="Europe/Berlin")
    first = make_trigger(NEVER_USED, email_template=make_template())
    second = make_trigger(NEVER_USED, email_template=make_template())
    clock.instant = datetime(2024, 10, 25, 10, 0, tzinfo=BERLIN).astimezone(UTC)
    first_email, second_email = pending_emails(first, second)

    assert send_outbox_email(first_email.pk) is True
    assert send_outbox_email(second_email.pk) is False

    second_email.refresh_from_db()
    assert second_email.next_attempt_at == datetime(2024, 10, 28, 9, 0, tzinfo=BERLIN)


def test_cap_past_max_deferral_drops(clock, mailoutbox):
    office_hours(
        cap_emails=1, cap_window_days=7, max_deferral_days=3, quiet_hours_enabled=False
    ).save()
    make_contact()
    first = make_trigger(NEVER_USED, email_template=make_template())
    second = make_trigger(NEVER_USED, email_template=make_template())
    first_email, second_email = pending_emails(first, second)

    send_outbox_email(first_email.pk)
    assert send_outbox_email(second_email.pk) is False

    second_email.refresh_from_db()
    assert second_email.status == "skipped"
    assert "frequency cap of 1 emails in 7 days" in second_email.skip_reason
    assert len(mailoutbox) == 1


def test_no_rules_no_cap(clock, mailoutbox):
    make_contact()
    triggers = [
        make_trigger(NEVER_USED, email_template=make_template()) for _ in range(4)
    ]
    emails = pending_emails(*triggers)

    assert [send_outbox_email(email.pk) for email in emails] == [True] * 4


def test_failed_attempt_frees_cap_slot(clock, settings, mailoutbox):
    # A send that failed is back to pending and no longer counts.
    office_hours(cap_emails=1, quiet_hours_enabled=False).save()
    make_contact()
    first = make_trigger(NEVER_USED, email_template=make_template())
    second = make_trigger(NEVER_USED, email_template=make_template())
    first_email, second_email = pending_emails(first, second)
    settings.EMAIL_BACKEND = "tests.triggers.test_outbox.DisconnectedBackend"

    assert send_outbox_email(first_email.pk) is False

    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    assert send_outbox_email(second_email.pk) is True


# -- headers ---------------------------------------------------------------------


def test_sent_email_carries_idempotency_key(clock, mailoutbox):
    make_contact()
    [email] = pending_emails(make_trigger(NEVER_USED, email_template=make_template()))

    send_outbox_email(email.pk)

    email.refresh_from_db()
    headers = mailoutbox[0].extra_headers
    assert headers["Message-ID"] == message_id_for(email)
    assert headers["Idempotency-Key"] == idempotency_key_for(email)
    assert headers["Idempotency-Key"] == headers["Message-ID"].strip("<>")
    assert headers["Idempotency-Key"].startswith(f"outbox-{email.pk}.")


# -- suppression -----------------------------------------------------------------


def test_unsubscribed_at_write_skipped(django_capture_on_commit_callbacks, mailoutbox):
    contact = make_contact(unsubscribed_at=NOW - timedelta(days=2))
    trigger = make_trigger(NEVER_USED, email_template=make_template())

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = run_sweep(NOW, triggers=[trigger])

    email = OutboxEmail.objects.get()
    firing = Firing.objects.get()
    assert email.status == "skipped"
    assert "unsubscribed" in email.skip_reason
    assert email.skip_reason in firing.note
    assert report.emails_skipped == 1
    assert report.emails_queued == 0
    assert callbacks == []
    assert mailoutbox == []
    # A skipped email carries no working single-use link.
    assert not SignInLink.objects.filter(contact=contact).exists()
    assert reverse("portal:sign-in") in email.body_text


def test_bounced_at_write_skipped():
    make_contact(bounced_at=NOW - timedelta(days=1))
    trigger = make_trigger(NEVER_USED, email_template=make_template())

    run_sweep(NOW, triggers=[trigger])

    email = OutboxEmail.objects.get()
    assert email.status == "skipped"
    assert "bounced" in email.skip_reason


@pytest.mark.parametrize("field", ["unsubscribed_at", "bounced_at"])
def test_suppressed_after_write_skipped_at_send(clock, mailoutbox, field):
    contact = make_contact()
    [email] = pending_emails(make_trigger(NEVER_USED, email_template=make_template()))
    type(contact).objects.filter(pk=contact.pk).update(**{field: NOW})

    assert send_outbox_email(email.pk) is False

    email.refresh_from_db()
    assert email.status == "skipped"
    assert f"contact {contact.pk}".lower() in email.skip_reason.lower()
    assert email.attempts == 0
    assert mailoutbox == []


# -- people reached through several accounts --------------------------------------


def account_trigger(**fields):
    return make_trigger(
        {"kind": "plan", "plans": ["Enterprise"]},
        subject_type="account",
        recipients=fields.pop("recipients", "all_contacts"),
        email_template=make_template(
            body="About {{ account.name }}: {{ sign_in_url }}"
        ),
        **fields,
    )


def test_associated_contact_reached_through_account():
    home = make_account(plan="Basic", name="Home")
    client = make_account(plan="Enterprise", name="Client")
    person = make_contact(home)
    person.associated_accounts.add(client)
    trigger = account_trigger()

    report = run_sweep(NOW, triggers=[trigger])

    email = OutboxEmail.objects.get()
    assert email.contact_id == person.pk
    assert email.firing.account_id == client.pk
    assert email.status == "pending"
    assert email.body_text.startswith("About Client:")
    assert report.emails_queued == 1


def test_associated_champions_only_under_champions():
    client = make_account(plan="Enterprise")
    champion = make_contact(is_champion=True)
    other = make_contact()
    champion.associated_accounts.add(client)
    other.associated_accounts.add(client)

    run_sweep(NOW, triggers=[account_trigger(recipients="champions")])

    assert list(OutboxEmail.objects.values_list("contact_id", flat=True)) == [
        champion.pk
    ]


def test_one_email_per_occurrence_across_accounts():
    home = make_account(plan="Enterprise")
    client = make_account(plan="Enterprise")
    person = make_contact(home)
    person.associated_accounts.add(client)
    colleague = make_contact(client)
    trigger = account_trigger()

    report = run_sweep(NOW, triggers=[trigger])

    rows = {
        (email.contact_id, email.firing.account_id): email
        for email in OutboxEmail.objects.select_related("firing")
    }
    assert rows[(person.pk, home.pk)].status == "pending"
    assert rows[(colleague.pk, client.pk)].status == "pending"
    duplicate = rows[(person.pk, client.pk)]
    assert duplicate.status == "skipped"
    assert duplicate.skip_reason.startswith(f"Duplicate: contact {person.pk}")
    assert duplicate.skip_reason in Firing.objects.get(account=client).note
    assert report.emails_queued == 2
    assert report.emails_skipped == 1


def test_later_firing_same_occurrence_skipped():
    home = make_account(plan="Enterprise")
    person = make_contact(home)
    trigger = account_trigger()
    run_sweep(NOW, triggers=[trigger])
    first = OutboxEmail.objects.get()

    client = make_account(plan="Enterprise")
    person.associated_accounts.add(client)
    run_sweep(NOW + timedelta(hours=1), triggers=[trigger])

    second = OutboxEmail.objects.exclude(pk=first.pk).get()
    assert second.status == "skipped"
    assert f"outbox email {first.pk}" in second.skip_reason


def test_duplicate_written_concurrently_skipped_at_send(clock, mailoutbox):
    # Two sweeps that commit at the same time can both write a pending email
    # for one person; the send-time check lets only the first go.
    home = make_account(plan="Enterprise")
    client = make_account(plan="Enterprise")
    person = make_contact(home)
    person.associated_accounts.add(client)
    run_sweep(NOW, triggers=[account_trigger()], queue_email=False)
    OutboxEmail.objects.update(status="pending", skip_reason="")
    first, second = OutboxEmail.objects.order_by("pk")

    assert send_outbox_email(first.pk) is True
    assert send_outbox_email(second.pk) is False

    second.refresh_from_db()
    assert second.status == "skipped"
    assert f"outbox email {first.pk}" in second.skip_reason
    assert len(mailoutbox) == 1
