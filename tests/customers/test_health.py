"""Daily health scores: the formula, its window, upserts and query count."""

from datetime import UTC, date, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from customers.health import (
    HEALTH_WEIGHTS,
    HealthPlan,
    InvalidHealthConfiguration,
    Measure,
    Reading,
    WeightSet,
    check_weight_set,
    compute_health,
    crm_score,
    register_measure,
    registered_measures,
)
from customers.models import Account, HealthScore
from customers.services import compute_health_scores, record_health_score
from tests.factories import (
    make_account,
    make_contact,
    make_event,
    make_health,
    make_survey,
    make_ticket,
)

pytestmark = pytest.mark.django_db

ON = date(2024, 6, 15)
# The window scored for ON: 16 May 00:00 UTC up to, not including, 15 Jun.
WINDOW_START = datetime(2024, 5, 16, tzinfo=UTC)
WINDOW_END = datetime(2024, 6, 15, tzinfo=UTC)
INSIDE = datetime(2024, 6, 1, 10, tzinfo=UTC)


def score_of(account: Account, on: date = ON) -> HealthScore:
    return HealthScore.objects.get(account=account, scored_on=on)


def test_weights_add_up_to_hundred():
    assert sum(HEALTH_WEIGHTS.values()) == 100


def test_built_in_measures_registered():
    assert set(HEALTH_WEIGHTS) <= set(registered_measures())
    assert {"nps", "renewal"} <= set(registered_measures())


def test_score_matches_formula():
    account = make_account(seats=2)
    first, second, _idle = (make_contact(account) for _ in range(3))
    make_event(first, INSIDE, quantity=10)
    make_event(second, INSIDE, quantity=5)
    make_ticket(account, INSIDE, priority="urgent")
    make_ticket(account, INSIDE, priority="high")
    make_ticket(account, INSIDE, priority="medium")
    make_survey(first, INSIDE, 4, kind="csat")
    make_ticket(
        account,
        INSIDE - timedelta(days=3),
        priority="low",
        closed_at=INSIDE,
        satisfaction_score=5,
    )

    compute_health_scores(ON)

    # Usage is 15 uses for 2 seats at 20 uses a seat. Active users are 2 of 3.
    # Support loses 0.5 for the urgent and 0.25 for the high ticket. CSAT is
    # the mean of 4 and 5 on a 1-5 scale.
    usage = 15 / (2 * 20)
    active = 2 / 3
    support = 1 - 0.5 - 0.25
    csat = (4.5 - 1) / 4
    expected = 40 * usage + 25 * active + 20 * support + 15 * csat
    stored = score_of(account)
    assert stored.score == round(expected)
    assert stored.score == 50
    assert stored.measures["usage"]["points"] == pytest.approx(40 * usage, abs=0.01)
    assert stored.measures["active_users"]["points"] == pytest.approx(
        25 * active, abs=0.01
    )
    assert stored.measures["support"]["open_urgent"] == 1
    assert stored.measures["support"]["open_high"] == 1
    assert stored.measures["csat"]["csat_answers"] == 2
    account.refresh_from_db()
    assert account.health_score == 50


def test_missing_measures_share_weight():
    # No contacts and no CSAT: usage and support share the 100 points 40:20.
    account = make_account(seats=1)
    make_event(make_contact(account, added_at=WINDOW_END), INSIDE, quantity=5)

    compute_health_scores(ON)

    stored = score_of(account)
    expected = 100 * (40 * (5 / 20) + 20 * 1.0) / 60
    assert stored.score == round(expected)
    assert stored.score == 50
    assert stored.measures["active_users"]["available"] is False
    assert stored.measures["csat"]["available"] is False


def test_window_edges_are_half_open():
    account = make_account(seats=1)
    contact = make_contact(account, added_at=WINDOW_START - timedelta(days=1))
    make_event(contact, WINDOW_START, quantity=4)
    make_event(contact, WINDOW_START - timedelta(seconds=1), quantity=100)
    make_event(contact, WINDOW_END, quantity=100)

    compute_health_scores(ON)

    assert score_of(account).measures["usage"]["uses"] == 4


def test_ticket_closed_at_window_end_counts_open():
    account = make_account()
    make_ticket(account, INSIDE, priority="urgent", closed_at=WINDOW_END)
    make_ticket(
        account,
        INSIDE,
        priority="urgent",
        closed_at=WINDOW_END - timedelta(seconds=1),
    )
    make_ticket(account, WINDOW_END, priority="urgent")

    compute_health_scores(ON)

    assert score_of(account).measures["support"]["open_urgent"] == 1


def test_only_signed_up_accounts_scored():
    signed_up = make_account(signup_date=ON)
    make_account(signup_date=ON + timedelta(days=1))

    scored = compute_health_scores(ON)

    assert scored == 1
    assert list(HealthScore.objects.values_list("account", flat=True)) == [signed_up.pk]


def test_recomputing_day_replaces_score():
    account = make_account(seats=1)
    contact = make_contact(account)
    compute_health_scores(ON)
    first = score_of(account).score
    make_event(contact, INSIDE, quantity=20)

    compute_health_scores(ON)

    assert HealthScore.objects.filter(account=account).count() == 1
    assert score_of(account).score > first


def test_earlier_day_keeps_latest_score():
    account = make_account(seats=1)
    make_health(account, ON + timedelta(days=1), 88)
    Account.objects.filter(pk=account.pk).update(health_score=88)

    compute_health_scores(ON)

    account.refresh_from_db()
    assert account.health_score == 88
    # No usage, no contacts, no CSAT and no tickets: only support scores.
    assert score_of(account).score == round(100 * (40 * 0 + 20 * 1) / 60)


def test_record_score_from_crm():
    account = make_account()
    make_health(account, ON, 40)

    stored = record_health_score(account, ON, 72, {"source": "crm"})

    assert stored.score == 72
    assert stored.measures == {"source": "crm"}
    assert HealthScore.objects.filter(account=account).count() == 1
    assert account.health_score == 72
    account.refresh_from_db()
    assert account.health_score == 72


@pytest.mark.parametrize("score", [-1, 101, 7.5, True, "80"])
def test_record_score_rejects_invalid(score):
    account = make_account()

    with pytest.raises(ValueError, match="give a whole number from 0 to 100"):
        record_health_score(account, ON, score)

    assert not HealthScore.objects.filter(account=account).exists()


def queries_for_accounts(count: int) -> int:
    with transaction.atomic():
        for _ in range(count):
            account = make_account(seats=3)
            contact = make_contact(account)
            make_event(contact, INSIDE)
            make_ticket(account, INSIDE, priority="urgent")
            make_survey(contact, INSIDE, 4, kind="csat")
        with CaptureQueriesContext(connection) as queries:
            assert compute_health_scores(ON) == count
        transaction.set_rollback(True)
    return len(queries.captured_queries)


def test_query_count_independent_of_accounts():
    few = queries_for_accounts(5)

    assert few == queries_for_accounts(50)
    # A savepoint, the day's lock, the accounts, usage, contacts, tickets,
    # two CSAT queries, the upsert, the latest-score update, the release.
    assert few <= 11


def test_custom_weights_change_score():
    account = make_account(seats=1)
    contact = make_contact(account)
    make_event(contact, INSIDE, quantity=5)
    make_survey(contact, INSIDE, 2, kind="csat")
    weights = WeightSet("usage and csat", {"usage": 10, "csat": 30})

    compute_health_scores(ON, HealthPlan(default=weights))

    usage = 100 * 5 / 20
    csat = 100 * (2 - 1) / 4
    expected = (10 * usage + 30 * csat) / 40
    stored = score_of(account)
    assert stored.score == round(expected)
    assert set(stored.measures) == {"usage", "csat"}
    assert stored.measures["csat"]["points"] == pytest.approx(30 * csat / 40, abs=0.01)
    assert stored.measures["usage"]["label"] == "Product usage"


def test_zero_weight_measure_left_out():
    account = make_account(seats=1)
    make_event(make_contact(account), INSIDE, quantity=20)
    weights = WeightSet("usage only", {"usage": 5, "support": 0})

    compute_health_scores(ON, HealthPlan(default=weights))

    stored = score_of(account)
    assert stored.score == 100
    assert set(stored.measures) == {"usage"}


def test_account_override_uses_its_set():
    plain = make_account(seats=1)
    special = make_account(seats=1)
    for account in (plain, special):
        make_ticket(account, INSIDE, priority="urgent")
    support_only = WeightSet("support only", {"support": 1})

    compute_health_scores(
        ON,
        HealthPlan(
            default=WeightSet("usage only", {"usage": 1}),
            by_account={special.pk: support_only},
        ),
    )

    assert score_of(plain).score == 0
    # One urgent ticket takes half of the support measure.
    assert score_of(special).score == 50


def test_nps_measure_formula():
    account = make_account()
    contact = make_contact(account)
    for answer in (10, 9, 7, 3):
        make_survey(contact, INSIDE, answer, kind="nps")
    make_survey(contact, WINDOW_START - timedelta(days=1), 0, kind="nps")

    compute_health_scores(ON, HealthPlan(default=WeightSet("nps", {"nps": 1})))

    # Two promoters and one detractor of four answers: NPS 25, value 62.5.
    stored = score_of(account)
    assert stored.measures["nps"]["nps"] == 25
    assert stored.measures["nps"]["nps_answers"] == 4
    assert stored.score == 63


def test_renewal_measure_falls_near_renewal():
    far = make_account(renewal_date=ON + timedelta(days=400))
    near = make_account(renewal_date=ON + timedelta(days=45))
    past = make_account(renewal_date=ON - timedelta(days=3))
    unknown = make_account(renewal_date=None)

    run = compute_health(ON, HealthPlan(default=WeightSet("r", {"renewal": 1})))

    assert score_of(far).score == 100
    assert score_of(near).score == round(100 * 45 / 180)
    assert score_of(past).score == 0
    assert not HealthScore.objects.filter(account=unknown).exists()
    assert run.scored == 3
    assert run.unscored == 1


def test_crm_property_source():
    numeric = make_account(properties={"cs_health": 81})
    text = make_account(properties={"cs_health": "72.5"})
    missing = make_account(properties={})
    invalid = make_account(properties={"cs_health": "green"}, health_score=40)
    crm = WeightSet("crm", crm_property="cs_health")

    run = compute_health(ON, HealthPlan(default=crm))

    assert score_of(numeric).score == 81
    assert score_of(text).score == 73
    assert score_of(text).measures["crm"]["property"] == "cs_health"
    assert run.unscored == 2
    assert not HealthScore.objects.filter(account__in=[missing, invalid]).exists()
    invalid.refresh_from_db()
    assert invalid.health_score == 40


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (0, 0),
        (100, 100),
        ("55", 55),
        (49.5, 50),
        (-1, None),
        (100.5, None),
        ("nan", None),
        (True, None),
        (None, None),
        ([70], None),
    ],
)
def test_crm_score_parsing(raw, expected):
    assert crm_score(raw) == expected


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        ({"usage": -5}, "weight -5 for Product usage in weight set 'bad' is invalid"),
        ({"usage": 2.5}, "weight 2.5 for Product usage"),
        ({"usage": True}, "weight True for Product usage"),
        ({"logins": 3}, "measure 'logins' in weight set 'bad' is not registered"),
        ({"usage": 0, "csat": 0}, "weight set 'bad' has no positive weight"),
        ({}, "weight set 'bad' has no positive weight"),
    ],
)
def test_invalid_weights_rejected(weights, message):
    with pytest.raises(InvalidHealthConfiguration, match=message):
        check_weight_set(WeightSet("bad", weights))


def test_invalid_plan_writes_nothing():
    account = make_account()

    with pytest.raises(InvalidHealthConfiguration):
        compute_health_scores(ON, HealthPlan(default=WeightSet("bad", {"usage": -1})))

    assert not HealthScore.objects.filter(account=account).exists()


def test_selected_accounts_only():
    chosen = make_account()
    other = make_account()

    run = compute_health(ON, account_ids=[chosen.pk])

    assert run.scored == 1
    assert HealthScore.objects.filter(account=chosen).exists()
    assert not HealthScore.objects.filter(account=other).exists()


def test_registered_measure_contributes():
    account = make_account(seats=1)

    def constant(scope):
        return {account.pk: Reading(30.0, {"source": "test"})}

    measure = register_measure(Measure("test_constant", "Constant", constant))
    try:
        compute_health_scores(
            ON,
            HealthPlan(default=WeightSet("t", {"test_constant": 3, "support": 1})),
        )
    finally:
        from customers import health

        health._MEASURES.pop(measure.key)

    # Support is 100 without open tickets.
    # 47.5 rounds half up.
    assert score_of(account).score == 48
    assert score_of(account).measures["test_constant"]["source"] == "test"


@pytest.mark.parametrize("key", ["Usage", "crm", "with space", ""])
def test_measure_key_rejected(key):
    with pytest.raises(InvalidHealthConfiguration, match="is invalid"):
        register_measure(Measure(key, "x", lambda scope: {}))


def test_measure_registered_twice_rejected():
    with pytest.raises(InvalidHealthConfiguration, match="registered twice"):
        register_measure(Measure("usage", "Other usage", lambda scope: {}))


def test_query_count_with_every_measure():
    weights = WeightSet("all", dict.fromkeys(registered_measures(), 1))

    def queries(count: int) -> int:
        with transaction.atomic():
            for _ in range(count):
                account = make_account(seats=3, renewal_date=ON + timedelta(days=9))
                contact = make_contact(account)
                make_event(contact, INSIDE)
                make_survey(contact, INSIDE, 9, kind="nps")
            with CaptureQueriesContext(connection) as captured:
                compute_health_scores(ON, HealthPlan(default=weights))
            transaction.set_rollback(True)
        return len(captured.captured_queries)

    assert queries(3) == queries(30)


def test_recompute_removes_score_of_account_without_data():
    account = make_account(properties={"cs_health": 70})
    make_health(account, ON - timedelta(days=1), 55)
    crm = HealthPlan(default=WeightSet("crm", crm_property="cs_health"))
    compute_health_scores(ON, crm)
    account.refresh_from_db()
    assert account.health_score == 70
    Account.objects.filter(pk=account.pk).update(properties={})

    run = compute_health(ON, crm)

    assert run.unscored == 1
    assert not HealthScore.objects.filter(account=account, scored_on=ON).exists()
    account.refresh_from_db()
    assert account.health_score == 55


def test_unscored_account_keeps_other_days():
    account = make_account(properties={})
    make_health(account, ON + timedelta(days=1), 81)
    Account.objects.filter(pk=account.pk).update(health_score=81)

    compute_health(ON, HealthPlan(default=WeightSet("crm", crm_property="x")))

    account.refresh_from_db()
    assert account.health_score == 81
    assert HealthScore.objects.filter(account=account).count() == 1
