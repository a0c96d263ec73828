"""The evaluate_triggers and seed_demo_program commands, and the demo program."""

from datetime import UTC, datetime, timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command

from conditions import validate
from courses.models import Course, Enrollment
from tests.factories import NOW, make_account, make_contact, make_event, make_survey
from tests.triggers.factories import make_template, make_trigger
from triggers.models import EmailTemplate, Firing, OutboxEmail, Sweep, Trigger
from triggers.services import run_sweep, seed_demo_program

pytestmark = pytest.mark.django_db


def evaluate(*args):
    out = StringIO()
    call_command("evaluate_triggers", *args, stdout=out, stderr=StringIO(), verbosity=0)
    return out.getvalue()


def test_evaluate_triggers_prints_summary():
    make_contact()
    make_contact()
    make_trigger({"kind": "inactivity", "days": 10}, email_template=make_template())

    output = evaluate("--at", "2024-06-15T12:00:00+00:00")

    assert "as of 2024-06-15T12:00:00+00:00" in output
    assert "Triggers evaluated: 1\n" in output
    assert "Subjects matched: 2\n" in output
    assert "New firings: 2\n" in output
    assert "New enrollments: 0\n" in output
    assert "Emails queued: 2\n" in output
    assert Sweep.objects.get().as_of == NOW


def test_evaluate_triggers_rejects_bad_at():
    with pytest.raises(CommandError) as error:
        evaluate("--at", "15/06/2024")

    assert "'15/06/2024'" in str(error.value)
    assert "ISO 8601" in str(error.value)
    assert not Sweep.objects.exists()


@pytest.mark.parametrize("value", ["2099-01-01T00:00:00Z", ""])
def test_evaluate_triggers_rejects_future_or_blank_at(value):
    with pytest.raises(CommandError) as error:
        evaluate("--at", value)

    assert repr(value) in str(error.value)
    assert not Sweep.objects.exists()


def test_evaluate_triggers_naive_at_is_utc():
    output = evaluate("--at", "2024-06-15T12:00")

    assert "has no time zone; taking it as UTC" in output
    assert Sweep.objects.get().as_of == datetime(2024, 6, 15, 12, 0, tzinfo=UTC)


def test_evaluate_triggers_replay():
    contact = make_contact()
    make_event(contact, datetime(2024, 6, 1, 10, 0, tzinfo=UTC))
    make_trigger({"kind": "inactivity", "days": 10})

    output = evaluate(
        "--replay-from", "2024-06-05", "--replay-to", "2024-06-15", "--step-days", "2"
    )

    # Sweeps on 5, 7, 9, 11, 13 and 15 June; the first quiet one is 13 June.
    assert "Sweeps run: 6\n" in output
    assert "New firings: 1\n" in output
    assert Firing.objects.get().fired_at == datetime(2024, 6, 13, tzinfo=UTC)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replay-from", "2024-06-05"], "needs both --replay-from and --replay-to"),
        (
            ["--replay-from", "2024-06-05", "--replay-to", "2024-06-01"],
            "is before --replay-from",
        ),
        (
            ["--replay-from", "June", "--replay-to", "2024-06-01"],
            "'June' is not a valid",
        ),
        (
            [
                "--replay-from",
                "2024-06-01",
                "--replay-to",
                "2024-06-05",
                "--step-days",
                "0",
            ],
            "--step-days 0 is invalid",
        ),
        (
            [
                "--at",
                "2024-06-01",
                "--replay-from",
                "2024-06-01",
                "--replay-to",
                "2024-06-05",
            ],
            "--at cannot be combined",
        ),
    ],
)
def test_evaluate_triggers_rejects_bad_replay(args, message):
    with pytest.raises(CommandError, match=message):
        evaluate(*args)


def test_evaluate_triggers_reports_failed_trigger():
    make_contact()
    broken = make_trigger({"kind": "inactivity", "days": 10})
    Trigger.objects.filter(pk=broken.pk).update(condition={"kind": "no_such_kind"})

    with pytest.raises(CommandError, match="1 trigger evaluations failed"):
        evaluate("--at", "2024-06-15T12:00:00+00:00")


def test_seed_demo_program_is_idempotent():
    first = seed_demo_program()
    second = seed_demo_program()

    assert [trigger.pk for trigger in first] == [trigger.pk for trigger in second]
    assert Trigger.objects.count() == 6
    assert EmailTemplate.objects.count() == 6
    assert Course.objects.count() == 5
    for trigger in first:
        validate(trigger.condition, trigger.subject_type)  # type: ignore[arg-type]
        assert trigger.email_template is not None
    for course in Course.objects.all():
        assert course.modules.count() >= 1
        assert all(module.lessons.count() >= 1 for module in course.modules.all())


def test_seed_keeps_edited_rows():
    seed_demo_program()
    Trigger.objects.filter(slug="inactive-10-days").update(is_active=False)

    seed_demo_program()

    assert not Trigger.objects.get(slug="inactive-10-days").is_active


def test_seed_demo_program_command_lists_triggers():
    out = StringIO()
    call_command("seed_demo_program", stdout=out)

    assert "welcome-onboarding: Welcome new contacts (active)" in out.getvalue()
    assert "Demo program ready: 6 triggers." in out.getvalue()


def test_demo_program_sends_expected_emails():
    seed_demo_program()
    newcomer = make_contact(added_at=NOW - timedelta(hours=5))
    quiet = make_contact()
    make_event(quiet, NOW - timedelta(days=12))
    promoter = make_contact()
    make_event(promoter, NOW - timedelta(days=1))
    make_survey(promoter, NOW - timedelta(hours=2), 10)
    renewing = make_account(renewal_date=NOW.date() + timedelta(days=45))
    champion = make_contact(renewing, is_champion=True)
    make_event(champion, NOW - timedelta(days=1))

    run_sweep(NOW)

    sent = set(OutboxEmail.objects.values_list("contact_id", "template__slug"))
    assert sent == {
        (newcomer.pk, "welcome"),
        (quiet.pk, "inactivity-refresher"),
        (promoter.pk, "nps-advocacy"),
        (champion.pk, "renewal-readiness"),
    }
    assert Enrollment.objects.get(contact=newcomer).course.slug == "getting-started"
    assert (
        Enrollment.objects.get(contact=champion).origin == "trigger:pre-renewal-60-days"
    )
