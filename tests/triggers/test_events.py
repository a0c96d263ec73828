"""The event path: recorded changes evaluate only the triggers that read them."""

import uuid
from datetime import date, timedelta

import pytest
import redis
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from customers import services as customers
from customers.models import SupportTicket, SurveyResponse, UsageEvent
from customers.signals import data_changed, send_data_changed
from tests.factories import make_account, make_contact
from tests.triggers.factories import make_template, make_trigger
from triggers import events
from triggers.models import Firing, OutboxEmail, Sweep

NPS_PROMOTER = {"kind": "survey_score", "survey": "nps", "min": 9, "max": 10, "days": 1}


def nps_trigger(**fields):
    return make_trigger(NPS_PROMOTER, occurrence="survey_response", **fields)


@pytest.mark.django_db
def test_survey_evaluates_reading_triggers(django_capture_on_commit_callbacks):
    contact = make_contact()
    promoter = nps_trigger(email_template=make_template())
    # Matches every contact without usage, but reads usage, not surveys.
    usage_only = make_trigger({"kind": "inactivity", "days": 10})

    with django_capture_on_commit_callbacks(execute=True):
        customers.record_survey_response(contact, "nps", 10, timezone.now())

    assert Firing.objects.filter(trigger=promoter, contact=contact).count() == 1
    assert not Firing.objects.filter(trigger=usage_only).exists()
    assert OutboxEmail.objects.get().contact == contact


@pytest.mark.django_db
def test_survey_evaluates_own_account_only(django_capture_on_commit_callbacks):
    contact = make_contact()
    # A promoter at another account whose answer came in without the event
    # path, for example through an import; only a sweep evaluates it.
    elsewhere = make_contact()
    SurveyResponse.objects.create(
        account=elsewhere.account,
        contact=elsewhere,
        kind="nps",
        score=10,
        submitted_at=timezone.now(),
    )
    promoter = nps_trigger()

    with django_capture_on_commit_callbacks(execute=True):
        customers.record_survey_response(contact, "nps", 9, timezone.now())

    fired = set(Firing.objects.filter(trigger=promoter).values_list("contact_id"))
    assert fired == {(contact.pk,)}


@pytest.mark.django_db
def test_detractor_answer_fires_nothing(django_capture_on_commit_callbacks):
    contact = make_contact()
    promoter = nps_trigger()

    with django_capture_on_commit_callbacks(execute=True):
        customers.record_survey_response(contact, "nps", 3, timezone.now())

    assert not Firing.objects.filter(trigger=promoter).exists()
    # The trigger was evaluated, for this account, and matched no one.
    assert Sweep.objects.get().matched == 0


@pytest.mark.django_db
def test_rolled_back_change_evaluates_nothing(django_capture_on_commit_callbacks):
    contact = make_contact()
    nps_trigger()

    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        try:
            with transaction.atomic():
                customers.record_survey_response(contact, "nps", 10, timezone.now())
                raise RuntimeError("the request failed after recording the answer")
        except RuntimeError:
            pass

    assert callbacks == []
    assert not Sweep.objects.exists()
    assert not SurveyResponse.objects.exists()


@pytest.mark.django_db
def test_many_changes_in_one_transaction_evaluate_once(
    django_capture_on_commit_callbacks,
):
    contact = make_contact()
    heavy_use = make_trigger(
        {"kind": "event_count", "days": 1, "op": ">=", "value": 1000}
    )
    now = timezone.now()

    with django_capture_on_commit_callbacks(execute=True), transaction.atomic():
        for number in range(1000):
            customers.record_usage_event(
                contact, "Report Run", now - timedelta(seconds=number)
            )

    assert UsageEvent.objects.count() == 1000
    assert Sweep.objects.count() == 1
    assert Firing.objects.filter(trigger=heavy_use, contact=contact).count() == 1


@pytest.mark.django_db
def test_change_nobody_reads_evaluates_nothing(django_capture_on_commit_callbacks):
    contact = make_contact()
    nps_trigger()

    with django_capture_on_commit_callbacks(execute=True):
        customers.record_usage_event(contact, "Report Run", timezone.now())

    assert not Sweep.objects.exists()


@pytest.mark.django_db
def test_crm_change_evaluates_renewal_trigger(django_capture_on_commit_callbacks):
    account = make_account()
    champion = make_contact(account=account, is_champion=True)
    renewal = make_trigger(
        {"kind": "renewal_within", "days": 60},
        subject_type="account",
        occurrence="renewal_date",
    )
    renews_on = timezone.localdate() + timedelta(days=30)

    with django_capture_on_commit_callbacks(execute=True):
        changed = customers.update_account_attributes(
            account, {"renewal_date": renews_on}
        )

    assert changed
    account.refresh_from_db()
    assert account.renewal_date == renews_on
    firing = Firing.objects.get(trigger=renewal)
    assert firing.account_id == champion.account_id


@pytest.mark.django_db
def test_ticket_change_evaluates_ticket_trigger(django_capture_on_commit_callbacks):
    account = make_account()
    make_contact(account=account)
    escalation = make_trigger(
        {"kind": "open_tickets", "op": ">=", "value": 1}, subject_type="account"
    )

    with django_capture_on_commit_callbacks(execute=True):
        customers.record_ticket(account, "T-9001", timezone.now(), "urgent")

    assert Firing.objects.filter(trigger=escalation, account=account).count() == 1


@pytest.mark.django_db
def test_deactivated_trigger_not_evaluated_on_change(
    django_capture_on_commit_callbacks,
):
    contact = make_contact()
    nps_trigger(is_active=False)

    with django_capture_on_commit_callbacks(execute=True):
        customers.record_survey_response(contact, "nps", 10, timezone.now())

    assert not Sweep.objects.exists()


def test_triggers_reading_matches_sources(db):
    survey = nps_trigger()
    both = make_trigger(
        {"all": [NPS_PROMOTER, {"kind": "inactivity", "days": 10}]},
    )
    make_trigger({"kind": "inactivity", "days": 10})

    assert events.triggers_reading({"surveys"}) == [survey.pk, both.pk]
    assert events.triggers_reading({"tickets"}) == []


# Recording: validation and idempotency.


@pytest.fixture
def sent_changes():
    """Collect (account_id, source) of every data_changed signal sent."""
    received = []

    def receiver(sender, account_id, source, **kwargs):
        received.append((account_id, source))

    data_changed.connect(receiver, dispatch_uid="test-sent-changes")
    yield received
    data_changed.disconnect(dispatch_uid="test-sent-changes")


@pytest.mark.django_db
def test_survey_score_out_of_range_rejected(sent_changes):
    contact = make_contact()

    with pytest.raises(ValueError, match="nps score 11 is invalid"):
        customers.record_survey_response(contact, "nps", 11, timezone.now())
    with pytest.raises(ValueError, match="csat score 0 is invalid"):
        customers.record_survey_response(contact, "csat", 0, timezone.now())
    with pytest.raises(ValueError, match="survey kind 'ces' is invalid"):
        customers.record_survey_response(contact, "ces", 5, timezone.now())

    assert not SurveyResponse.objects.exists()
    assert sent_changes == []


@pytest.mark.django_db
def test_naive_datetime_rejected():
    contact = make_contact()
    naive = timezone.now().replace(tzinfo=None)

    with pytest.raises(ValueError, match=r"occurred_at=.* must be an aware datetime"):
        customers.record_usage_event(contact, "Report Run", naive)


@pytest.mark.django_db
def test_same_external_id_recorded_once(sent_changes):
    contact = make_contact()
    now = timezone.now()

    first = customers.record_usage_event(contact, "Report Run", now, external_id="m-1")
    again = customers.record_usage_event(contact, "Report Run", now, external_id="m-1")

    assert first.pk == again.pk
    assert UsageEvent.objects.count() == 1
    assert sent_changes == [(contact.account_id, "usage")]


@pytest.mark.django_db
def test_ticket_update_sends_change(sent_changes):
    account = make_account()
    opened = timezone.now() - timedelta(hours=2)

    customers.record_ticket(account, "T-1", opened, "high")
    customers.record_ticket(account, "T-1", opened, "high")
    closed = customers.record_ticket(
        account, "T-1", opened, "high", closed_at=timezone.now()
    )

    assert SupportTicket.objects.count() == 1
    assert closed.closed_at is not None
    # Created, unchanged (nothing sent), then closed.
    assert sent_changes == [(account.pk, "tickets"), (account.pk, "tickets")]


@pytest.mark.django_db
def test_ticket_bad_priority_rejected():
    with pytest.raises(ValueError, match="ticket priority 'p1' is invalid"):
        customers.record_ticket(make_account(), "T-2", timezone.now(), "p1")


@pytest.mark.django_db
def test_unchanged_attributes_send_nothing(sent_changes):
    account = make_account(renewal_date=date(2025, 1, 1))

    changed = customers.update_account_attributes(
        account, {"renewal_date": date(2025, 1, 1)}
    )

    assert not changed
    assert sent_changes == []


@pytest.mark.django_db
def test_unknown_attribute_rejected():
    account = make_account()

    with pytest.raises(ValueError, match="account attribute external_id cannot be"):
        customers.update_account_attributes(account, {"external_id": "X"})


@pytest.mark.django_db
def test_invalid_attribute_value_rejected():
    account = make_account()

    with pytest.raises(Exception, match="plan"):
        customers.update_account_attributes(account, {"plan": "Platinum"})

    account.refresh_from_db()
    assert account.plan == "Basic"


@pytest.mark.django_db
def test_contact_properties_merged(sent_changes):
    contact = make_contact(properties={"tier": "gold"})

    customers.update_contact_attributes(contact, {"properties": {"region": "EMEA"}})

    contact.refresh_from_db()
    assert contact.properties == {"tier": "gold", "region": "EMEA"}
    assert sent_changes == [(contact.account_id, "crm")]


def test_unknown_source_rejected():
    with pytest.raises(ValueError, match="data source 'weather' is unknown"):
        send_data_changed(object, 1, "weather")


# Coalescing in Redis.


@pytest.fixture
def coalescer():
    if not settings.CELERY_BROKER_URL.startswith("redis://"):
        pytest.skip("set CELERY_BROKER_URL to a Redis URL to test coalescing")
    client = redis.Redis.from_url(settings.CELERY_BROKER_URL)
    prefix = f"test-changes-{uuid.uuid4().hex}"
    yield events.ChangeCoalescer(client, window_seconds=2, prefix=prefix)
    for key in client.scan_iter(f"{prefix}:*"):
        client.delete(key)


def test_burst_queues_one_run(coalescer):
    queued = [coalescer.add(7, {"usage"}) for _ in range(1000)]

    assert queued.count(True) == 1
    assert coalescer.take(7) == {"usage"}


def test_changes_during_run_wait_one_window(coalescer):
    coalescer.add(7, {"usage"})
    assert coalescer.take(7) == {"usage"}
    coalescer.done(7)

    # Changes while the run evaluates queue nothing new.
    during = [coalescer.add(7, {"surveys"}) for _ in range(500)]
    countdown = coalescer.finish(7, evaluated=True)

    assert during.count(True) == 0
    assert countdown == 2
    # The next run, a window later, takes them.
    assert coalescer.take(7) == {"surveys"}
    coalescer.done(7)
    assert coalescer.finish(7, evaluated=True) == 2
    # The run after that finds nothing and ends the chain.
    assert coalescer.take(7) == frozenset()
    assert coalescer.finish(7, evaluated=False) is None
    # A change after that queues a run at once.
    assert coalescer.add(7, {"usage"}) is True


def test_change_before_flag_cleared_gets_run(coalescer):
    coalescer.add(7, {"usage"})
    coalescer.take(7)
    coalescer.done(7)
    coalescer.finish(7, evaluated=True)
    assert coalescer.take(7) == frozenset()

    # A change lands after the empty take but before finish clears the flag.
    assert coalescer.add(7, {"tickets"}) is False
    countdown = coalescer.finish(7, evaluated=False)

    assert countdown == 0
    assert coalescer.take(7) == {"tickets"}


def test_sources_of_crashed_run_taken_again(coalescer):
    coalescer.add(7, {"usage"})
    assert coalescer.take(7) == {"usage"}
    # The run died before done(); its redelivered task takes the same
    # sources again, with any new ones.
    coalescer.add(7, {"crm"})

    assert coalescer.take(7) == {"usage", "crm"}


def test_accounts_coalesce_separately(coalescer):
    assert coalescer.add(7, {"usage"}) is True
    assert coalescer.add(8, {"usage"}) is True
    assert coalescer.take(8) == {"usage"}
