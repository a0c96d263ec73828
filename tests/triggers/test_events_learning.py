"""Learning and stage changes reach the event path for their account alone."""

from datetime import timedelta

import pytest
from django.contrib.auth.models import User
from django.utils import timezone

from courses import services as courses
from courses.models import Course, Enrollment, Lesson, LessonKind, Module
from customers.models import Account, Contact
from lifecycle import services as lifecycle_services
from lifecycle.models import AccountStage, Stage, StageChange, StageChangeSource
from lifecycle.services import evaluate_stages, set_stage
from tests.factories import NOW, make_account, make_contact, make_event
from tests.triggers.factories import make_course, make_template, make_trigger
from triggers.models import Firing, OutboxEmail, Sweep
from triggers.services import run_sweep

# Matches every contact without usage; it reads usage, not learning or stages.
USAGE_ONLY = {"kind": "inactivity", "days": 10}


def course_with_lessons(*kinds: str) -> tuple[Course, list[Lesson]]:
    course = make_course()
    module = Module.objects.create(course=course, title="Basics", order=1)
    lessons = [
        Lesson.objects.create(
            module=module, title=f"Lesson {order}", order=order, kind=kind
        )
        for order, kind in enumerate(kinds, start=1)
    ]
    return course, lessons


def enrollment_of(contact: Contact, course: Course) -> Enrollment:
    """Enroll without the service, so that no signal is sent."""
    return Enrollment.objects.create(
        contact=contact, course=course, source="manual", enrolled_at=timezone.now()
    )


def staff_user(username: str = "csm") -> User:
    return User.objects.create_user(username=username, is_staff=True)


# -- what is sent --------------------------------------------------------------


@pytest.mark.django_db
def test_enroll_announces_new_enrollment(announced):
    contact = make_contact()
    course = make_course()

    courses.enroll(contact, course)
    courses.enroll(contact, course)

    assert announced == [(contact.account_id, "learning")]


@pytest.mark.django_db
def test_lesson_view_announces_first_only(announced):
    contact = make_contact()
    course, [lesson] = course_with_lessons(LessonKind.TEXT)
    enrollment = enrollment_of(contact, course)

    courses.record_lesson_view(enrollment, lesson)
    courses.record_lesson_view(enrollment, lesson)

    # The second view only counts a view, which no condition reads.
    assert announced == [(contact.account_id, "learning")]


@pytest.mark.django_db
def test_complete_lesson_announces_changes_only(announced):
    contact = make_contact()
    course, lessons = course_with_lessons(LessonKind.TEXT, LessonKind.TEXT)
    enrollment = enrollment_of(contact, course)

    courses.complete_lesson(enrollment, lessons[0])
    courses.complete_lesson(enrollment, lessons[0])
    courses.complete_lesson(enrollment, lessons[1])

    assert announced == [(contact.account_id, "learning")] * 2
    enrollment.refresh_from_db()
    assert enrollment.status == "completed"


@pytest.mark.django_db
def test_lesson_score_announced_when_changed(announced):
    contact = make_contact()
    course, [quiz] = course_with_lessons(LessonKind.QUIZ)
    enrollment = enrollment_of(contact, course)

    first = courses.record_lesson_score(enrollment, quiz, 72.5)
    courses.record_lesson_score(enrollment, quiz, "72.50")
    second = courses.record_lesson_score(enrollment, quiz, 90)

    assert str(first.score) == "72.50"
    assert str(second.score) == "90.00"
    assert second.completed_at == first.completed_at
    assert announced == [(contact.account_id, "learning")] * 2


@pytest.mark.django_db
@pytest.mark.parametrize("score", [-1, 100.01, "high", True])
def test_lesson_score_rejects_invalid(announced, score):
    course, [quiz] = course_with_lessons(LessonKind.QUIZ)
    enrollment = enrollment_of(make_contact(), course)

    with pytest.raises(ValueError, match="percentage from 0 to 100"):
        courses.record_lesson_score(enrollment, quiz, score)

    assert announced == []
    assert not quiz.progress.exists()


@pytest.mark.django_db
def test_lesson_score_rejects_text_lesson():
    course, [text] = course_with_lessons(LessonKind.TEXT)
    enrollment = enrollment_of(make_contact(), course)

    with pytest.raises(ValueError, match="not a quiz or exam"):
        courses.record_lesson_score(enrollment, text, 80)


@pytest.mark.django_db
def test_enroll_many_announces_nothing(announced):
    contacts = [make_contact() for _ in range(3)]
    course = make_course()

    created = courses.enroll_many([(contact.pk, course.pk) for contact in contacts])

    assert len(created) == 3
    assert announced == []


@pytest.mark.django_db
def test_set_stage_announces_stage(announced):
    account = make_account()
    adoption = Stage.objects.get(slug="adoption")

    csm = staff_user()
    set_stage(account, adoption, by=csm, reason="Kickoff done by phone")
    # Already there: nothing moves and nothing is sent.
    set_stage(account, adoption, by=csm, reason="Kickoff done by phone")

    assert announced == [(account.pk, "stage")]


def onboarded_today() -> Account:
    """An account that meets both onboarding criteria now, and no adoption one."""
    today = timezone.localdate()
    account = make_account(
        signup_date=today - timedelta(days=3), kickoff_date=today - timedelta(days=3)
    )
    contacts = [make_contact(account) for _ in range(3)]
    make_event(contacts[0], timezone.now() - timedelta(hours=1))
    return account


@pytest.mark.django_db
def test_evaluate_stages_announces_moves(announced):
    moved = onboarded_today()
    placed = make_account(signup_date=timezone.localdate())

    report = evaluate_stages(timezone.now())

    assert report.placed == 2
    assert report.advanced == 1
    assert AccountStage.objects.get(account=moved).stage.slug == "adoption"
    assert sorted(announced) == sorted([(moved.pk, "stage"), (placed.pk, "stage")])


@pytest.mark.django_db
def test_second_evaluation_announces_nothing(announced):
    onboarded_today()
    evaluate_stages(timezone.now())
    announced.clear()

    evaluate_stages(timezone.now())

    assert announced == []


@pytest.mark.django_db
def test_past_evaluation_announces_nothing(announced):
    make_account(signup_date=timezone.localdate() - timedelta(days=10))

    report = evaluate_stages(timezone.now() - timedelta(days=2))

    assert report.placed == 1
    assert announced == []


@pytest.mark.django_db
def test_evaluation_without_announce_sends_nothing(announced):
    onboarded_today()

    report = evaluate_stages(timezone.now(), announce=False)

    assert report.advanced == 1
    assert announced == []


@pytest.mark.django_db
def test_large_evaluation_left_to_sweep(announced, monkeypatch):
    monkeypatch.setattr(lifecycle_services, "MAX_ANNOUNCED_ACCOUNTS", 1)
    make_account(signup_date=timezone.localdate())
    make_account(signup_date=timezone.localdate())

    report = evaluate_stages(timezone.now())

    assert report.placed == 2
    assert announced == []


# -- what is evaluated -------------------------------------------------------


@pytest.mark.django_db
def test_completion_evaluates_learning_triggers(django_capture_on_commit_callbacks):
    course, [lesson] = course_with_lessons(LessonKind.TEXT)
    contact = make_contact()
    enrollment = enrollment_of(contact, course)
    # Another account's learner completed the course without the event
    # path, so only a sweep would evaluate them.
    elsewhere = make_contact()
    Enrollment.objects.create(
        contact=elsewhere,
        course=course,
        source="manual",
        enrolled_at=timezone.now() - timedelta(days=2),
        completed_at=timezone.now() - timedelta(days=1),
        status="completed",
    )
    completed = make_trigger(
        {"kind": "course_completed", "course": course.slug},
        email_template=make_template(),
    )
    usage_only = make_trigger(USAGE_ONLY)

    with django_capture_on_commit_callbacks(execute=True):
        courses.complete_lesson(enrollment, lesson)

    fired = set(Firing.objects.filter(trigger=completed).values_list("contact_id"))
    assert fired == {(contact.pk,)}
    assert OutboxEmail.objects.get().contact == contact
    assert not Firing.objects.filter(trigger=usage_only).exists()
    # One evaluation, of the learning trigger alone.
    assert list(Sweep.objects.values_list("triggers_evaluated", flat=True)) == [1]


@pytest.mark.django_db
def test_quiz_score_evaluates_learning_triggers(django_capture_on_commit_callbacks):
    course, [quiz] = course_with_lessons(LessonKind.QUIZ)
    contact = make_contact()
    enrollment = enrollment_of(contact, course)
    passed = make_trigger(
        {"kind": "quiz_score", "course": course.slug, "op": ">=", "value": 80}
    )

    with django_capture_on_commit_callbacks(execute=True):
        courses.record_lesson_score(enrollment, quiz, 85)

    assert Firing.objects.get(trigger=passed).contact_id == contact.pk


@pytest.mark.django_db
def test_manual_stage_evaluates_stage_triggers(django_capture_on_commit_callbacks):
    account = make_account()
    make_contact(account, is_champion=True)
    adoption = Stage.objects.get(slug="adoption")
    # Another account already in adoption, moved there without the event path.
    other = make_account()
    AccountStage.objects.create(
        account=other, stage=adoption, entered_at=timezone.now()
    )
    in_adoption = make_trigger(
        {"kind": "lifecycle_stage", "op": "==", "value": "adoption"},
        subject_type="account",
    )
    entered_today = make_trigger(
        {"kind": "days_in_stage", "stage": "adoption", "op": "==", "value": 0},
        subject_type="account",
    )
    usage_only = make_trigger(USAGE_ONLY)

    with django_capture_on_commit_callbacks(execute=True):
        set_stage(account, adoption, by=staff_user(), reason="Kickoff done by phone")

    for trigger in (in_adoption, entered_today):
        fired = set(Firing.objects.filter(trigger=trigger).values_list("account_id"))
        assert fired == {(account.pk,)}, trigger.slug
    assert not Firing.objects.filter(trigger=usage_only).exists()
    assert list(Sweep.objects.values_list("triggers_evaluated", flat=True)) == [2]


@pytest.mark.django_db
def test_automatic_move_fires_entered_stage(django_capture_on_commit_callbacks):
    account = onboarded_today()
    make_contact(account, is_champion=True)
    # In adoption already, moved there before the window of the trigger.
    earlier = make_account()
    adoption = Stage.objects.get(slug="adoption")
    entered_at = timezone.now() - timedelta(days=40)
    AccountStage.objects.create(account=earlier, stage=adoption, entered_at=entered_at)
    StageChange.objects.create(
        account=earlier,
        to_stage=adoption,
        changed_at=entered_at,
        source=StageChangeSource.MANUAL,
    )
    entered_adoption = make_trigger(
        {"kind": "entered_stage", "stage": "adoption", "days": 7},
        subject_type="account",
    )
    usage_only = make_trigger(USAGE_ONLY)

    with django_capture_on_commit_callbacks(execute=True):
        evaluate_stages(timezone.now())

    fired = set(
        Firing.objects.filter(trigger=entered_adoption).values_list("account_id")
    )
    assert fired == {(account.pk,)}
    assert not Firing.objects.filter(trigger=usage_only).exists()
    # One evaluation for the moved account, of the stage trigger alone.
    assert list(Sweep.objects.values_list("triggers_evaluated", flat=True)) == [1]


@pytest.mark.django_db
def test_stuck_in_onboarding_fires_at_sweep():
    onboarding = Stage.objects.get(slug="onboarding")
    # Calendar days in the site time zone: 30 and 29 days before NOW.
    stuck = make_account()
    recent = make_account()
    for account, days in ((stuck, 30), (recent, 29)):
        StageChange.objects.create(
            account=account,
            to_stage=onboarding,
            changed_at=NOW - timedelta(days=days),
            source=StageChangeSource.INITIAL,
        )
    stuck_30_days = make_trigger(
        {"kind": "days_in_stage", "stage": "onboarding", "op": ">=", "value": 30},
        subject_type="account",
    )

    run_sweep(NOW, triggers=[stuck_30_days])

    fired = set(Firing.objects.filter(trigger=stuck_30_days).values_list("account_id"))
    assert fired == {(stuck.pk,)}


@pytest.mark.django_db
def test_admin_enrollment_edits_announced(client, announced):
    client.force_login(User.objects.create_superuser("admin", "admin@example.com"))
    contact = make_contact()
    course = make_course()
    form = {
        "contact": contact.pk,
        "course": course.pk,
        "source": "manual",
        "origin": "",
        "status": "active",
        "enrolled_at_0": "2024-06-01",
        "enrolled_at_1": "09:00:00",
        "lesson_progress-TOTAL_FORMS": "0",
        "lesson_progress-INITIAL_FORMS": "0",
    }

    added = client.post("/admin/courses/enrollment/add/", form)
    enrollment = Enrollment.objects.get()
    scored = client.post(
        f"/admin/courses/enrollment/{enrollment.pk}/change/",
        {**form, "status": "completed", "score": "88"},
    )
    deleted = client.post(
        "/admin/courses/enrollment/",
        {
            "action": "delete_selected",
            "_selected_action": [enrollment.pk],
            "post": "yes",
        },
    )

    assert added.status_code == 302
    assert scored.status_code == 302
    assert deleted.status_code == 302
    assert not Enrollment.objects.exists()
    assert announced == [(contact.account_id, "learning")] * 3
