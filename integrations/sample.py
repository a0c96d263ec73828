"""Write a small made-up dataset in the RavenStack and OULAD file formats.

The demo runs the real importers on it when the public datasets are not at
hand. A seeded random.Random makes every run write the same files, and a
few deliberately bad rows show how the importers report errors.
"""

import csv
import random
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

SEED = 2024
ACCOUNT_COUNT = 40
USAGE_COUNT = 400
TICKET_COUNT = 30
LEARNERS_PER_COURSE = 150
LAST_DAY = date(2024, 12, 31)

INDUSTRIES = ("DevTools", "FinTech", "Cybersecurity", "HealthTech", "EdTech")
COUNTRIES = ("US", "UK", "IN", "AU", "DE", "CA", "FR")
REFERRALS = ("organic", "other", "ads", "event", "partner")
PLANS = {"Basic": 19, "Pro": 49, "Enterprise": 99}  # price per seat and month
PRIORITIES = ("low", "medium", "high", "urgent")
CHURN_REASONS = ("pricing", "support", "features", "budget", "competitor", "unknown")
FEEDBACK = ("too expensive", "missing features", "switched to competitor", "")
ACTIVITY_TYPES = (
    "resource",
    "resource",
    "oucontent",
    "subpage",
    "url",
    "forumng",
    "quiz",
    "page",
    "ouwiki",
    "oucollaborate",
)
REGIONS = ("East Anglian Region", "London Region", "Scotland", "Wales", "South Region")
FINAL_RESULTS = (
    "Pass",
    "Pass",
    "Pass",
    "Distinction",
    "Fail",
    "Fail",
    "Withdrawn",
    "Withdrawn",
)

# Module-presentations of the sample: code, presentation, length, assessment days.
SAMPLE_COURSES = (
    ("SMP", "2013B", 240, (19, 54, 96, 131, 187), 240),
    ("SMP", "2013J", 268, (25, 60, 117, 166, 215), None),
)

# The columns of each file in the published datasets, separated by spaces.
HEADERS = {
    "ravenstack_accounts.csv": (
        "account_id account_name industry country signup_date referral_source "
        "plan_tier seats is_trial churn_flag"
    ),
    "ravenstack_churn_events.csv": (
        "churn_event_id account_id churn_date reason_code refund_amount_usd "
        "preceding_upgrade_flag preceding_downgrade_flag is_reactivation "
        "feedback_text"
    ),
    "ravenstack_subscriptions.csv": (
        "subscription_id account_id start_date end_date plan_tier seats "
        "mrr_amount arr_amount is_trial upgrade_flag downgrade_flag churn_flag "
        "billing_frequency auto_renew_flag"
    ),
    "ravenstack_feature_usage.csv": (
        "usage_id subscription_id usage_date feature_name usage_count "
        "usage_duration_secs error_count is_beta_feature"
    ),
    "ravenstack_support_tickets.csv": (
        "ticket_id account_id submitted_at closed_at resolution_time_hours "
        "priority first_response_time_minutes satisfaction_score "
        "escalation_flag"
    ),
    "courses_2013.csv": ("code_module code_presentation module_presentation_length"),
    "assessments_2013.csv": (
        "code_module code_presentation id_assessment assessment_type date weight"
    ),
    "vle_2013.csv": (
        "id_site code_module code_presentation activity_type week_from week_to"
    ),
    "studentInfo_2013.csv": (
        "code_module code_presentation id_student gender region "
        "highest_education imd_band age_band num_of_prev_attempts "
        "studied_credits disability final_result"
    ),
    "studentRegistration_2013.csv": (
        "code_module code_presentation id_student date_registration date_unregistration"
    ),
    "studentAssessment_subset_2013.csv": (
        "id_assessment id_student date_submitted is_banked score"
    ),
    "studentVle_prefix_SMP_2013J.csv": (
        "code_module code_presentation id_student id_site date sum_click"
    ),
}


@dataclass
class SampleAccount:
    account_id: str
    signup: date
    seats: int
    plan: str
    churned: bool


def generate_sample(folder: Path) -> Path:
    """Write ravenstack/ and oulad_2013/ under `folder` and return `folder`."""
    folder = Path(folder)
    rng = random.Random(SEED)
    write_ravenstack(folder / "ravenstack", rng)
    write_oulad(folder / "oulad_2013", rng)
    return folder


def write_csv(
    path: Path, header: list[str], rows: list[list[object]], quote_all: bool = False
) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(
            handle, quoting=csv.QUOTE_ALL if quote_all else csv.QUOTE_MINIMAL
        )
        writer.writerow(header)
        writer.writerows(rows)


def header(file: str) -> list[str]:
    return HEADERS[file].split()


def hex_id(rng: random.Random, prefix: str, used: set[str]) -> str:
    while True:
        value = f"{prefix}-{rng.getrandbits(24):06x}"
        if value not in used:
            used.add(value)
            return value


def flag(value: bool) -> str:
    return "TRUE" if value else "FALSE"


def random_day(rng: random.Random, first: date, last: date) -> date:
    return first + timedelta(days=rng.randint(0, max((last - first).days, 0)))


def write_ravenstack(folder: Path, rng: random.Random) -> None:
    used: set[str] = set()
    accounts = [
        SampleAccount(
            account_id=hex_id(rng, "A", used),
            signup=random_day(rng, date(2023, 1, 2), date(2024, 6, 30)),
            seats=rng.randint(1, 25),
            plan=rng.choice(list(PLANS)),
            churned=rng.random() < 0.2,
        )
        for _ in range(ACCOUNT_COUNT)
    ]
    account_rows = [
        [
            account.account_id,
            f"Sample_{number}",
            rng.choice(INDUSTRIES),
            rng.choice(COUNTRIES),
            account.signup,
            rng.choice(REFERRALS),
            account.plan,
            account.seats,
            flag(rng.random() < 0.1),
            flag(account.churned),
        ]
        for number, account in enumerate(accounts)
    ]
    write_csv(
        folder / "ravenstack_accounts.csv",
        header("ravenstack_accounts.csv"),
        account_rows,
    )
    churn_dates = write_churn_events(folder, rng, accounts, used)
    subscriptions = write_subscriptions(folder, rng, accounts, churn_dates, used)
    write_usage(folder, rng, subscriptions, used)
    write_tickets(folder, rng, accounts, used)


def write_churn_events(
    folder: Path, rng: random.Random, accounts: list[SampleAccount], used: set[str]
) -> dict[str, date]:
    """Write one churn event per churned account, except the first one.

    Leaving one churned account without an event mirrors a defect of the
    real dataset, which the import reports as a warning.
    """
    churned = [account for account in accounts if account.churned]
    churn_dates: dict[str, date] = {}
    rows = []
    for account in churned[1:]:
        churn_date = random_day(rng, account.signup + timedelta(days=120), LAST_DAY)
        churn_dates[account.account_id] = churn_date
        rows.append(
            [
                hex_id(rng, "C", used),
                account.account_id,
                churn_date,
                rng.choice(CHURN_REASONS),
                round(rng.uniform(0, 100), 2),
                flag(rng.random() < 0.2),
                flag(rng.random() < 0.2),
                flag(rng.random() < 0.1),
                rng.choice(FEEDBACK),
            ]
        )
    write_csv(
        folder / "ravenstack_churn_events.csv",
        header("ravenstack_churn_events.csv"),
        rows,
    )
    return churn_dates


def write_subscriptions(
    folder: Path,
    rng: random.Random,
    accounts: list[SampleAccount],
    churn_dates: dict[str, date],
    used: set[str],
) -> list[tuple[str, date, date]]:
    """Write back-to-back subscriptions from signup; the last stays open unless churned.

    Returns (subscription id, first day, last day) for placing usage rows.
    """
    rows: list[list[object]] = []
    periods = []
    for account in accounts:
        start = account.signup
        end_of_account = churn_dates.get(account.account_id, LAST_DAY)
        for number in range(rng.randint(1, 4)):
            end = start + timedelta(days=rng.randint(90, 365))
            is_last = end >= end_of_account or number == 3
            ended = churn_dates.get(account.account_id) if is_last else end
            subscription_id = hex_id(rng, "S", used)
            mrr = PLANS[account.plan] * account.seats
            rows.append(
                [
                    subscription_id,
                    account.account_id,
                    start,
                    ended or "",
                    account.plan,
                    account.seats,
                    mrr,
                    mrr * 12,
                    "FALSE",
                    flag(number > 0 and rng.random() < 0.3),
                    "FALSE",
                    flag(is_last and account.account_id in churn_dates),
                    rng.choice(("monthly", "annual")),
                    flag(rng.random() < 0.8),
                ]
            )
            periods.append((subscription_id, start, min(ended or LAST_DAY, LAST_DAY)))
            if is_last:
                break
            start = end
    # A deliberately bad row: it ends before it starts.
    rows.append(
        [
            "S-bad001",
            accounts[0].account_id,
            "2024-05-01",
            "2024-04-01",
            "Pro",
            3,
            147,
            1764,
            "FALSE",
            "FALSE",
            "FALSE",
            "FALSE",
            "monthly",
            "TRUE",
        ]
    )
    write_csv(
        folder / "ravenstack_subscriptions.csv",
        header("ravenstack_subscriptions.csv"),
        rows,
    )
    return periods


def write_usage(
    folder: Path,
    rng: random.Random,
    periods: list[tuple[str, date, date]],
    used: set[str],
) -> None:
    rows: list[list[object]] = []
    for _ in range(USAGE_COUNT):
        subscription_id, first, last = rng.choice(periods)
        rows.append(
            [
                hex_id(rng, "U", used),
                subscription_id,
                random_day(rng, first, last),
                f"feature_{rng.randint(1, 40)}",
                rng.randint(1, 20),
                rng.randint(60, 6000),
                rng.choice((0, 0, 0, 1, 2)),
                "True" if rng.random() < 0.1 else "False",
            ]
        )
    # Deliberately bad rows: a repeated usage_id, a zero duration, an unknown
    # subscription and a date that does not exist.
    rows.append([rows[0][0], rows[1][1], rows[1][2], "feature_3", 4, 300, 0, "False"])
    rows.append(["U-bad001", rows[2][1], rows[2][2], "feature_7", 0, 0, 0, "False"])
    rows.append(["U-bad002", "S-000000", "2024-03-01", "feature_1", 2, 120, 0, "False"])
    rows.append(["U-bad003", rows[3][1], "2024-13-45", "feature_2", 2, 120, 0, "False"])
    write_csv(
        folder / "ravenstack_feature_usage.csv",
        header("ravenstack_feature_usage.csv"),
        rows,
    )


def write_tickets(
    folder: Path, rng: random.Random, accounts: list[SampleAccount], used: set[str]
) -> None:
    rows: list[list[object]] = []
    for _ in range(TICKET_COUNT):
        account = rng.choice(accounts)
        submitted = random_day(rng, account.signup, date(2024, 12, 28))
        hours = rng.randint(1, 72)
        closed = datetime.combine(submitted, time(), tzinfo=UTC) + timedelta(
            hours=hours
        )
        score = rng.choice(("", "", 3, 4, 5, 5, 2))
        rows.append(
            [
                hex_id(rng, "T", used),
                account.account_id,
                submitted,
                f"{closed:%Y-%m-%d} {closed.hour}:00",
                hours,
                rng.choice(PRIORITIES),
                rng.randint(1, 180),
                score,
                flag(rng.random() < 0.1),
            ]
        )
    # Deliberately bad rows: closed before it was opened, and an unknown account.
    rows.append(
        [
            "T-bad001",
            accounts[1].account_id,
            "2024-03-10",
            "2024-03-09 8:00",
            0,
            "high",
            30,
            4,
            "FALSE",
        ]
    )
    rows.append(
        [
            "T-bad002",
            "A-000000",
            "2024-03-10",
            "2024-03-10 9:00",
            9,
            "low",
            30,
            "",
            "FALSE",
        ]
    )
    write_csv(
        folder / "ravenstack_support_tickets.csv",
        header("ravenstack_support_tickets.csv"),
        rows,
    )


def write_oulad(folder: Path, rng: random.Random) -> None:
    write_csv(
        folder / "courses_2013.csv",
        header("courses_2013.csv"),
        [
            [code, presentation, length]
            for code, presentation, length, _, _ in SAMPLE_COURSES
        ],
        quote_all=True,
    )
    assessments = write_assessments(folder)
    sites = write_materials(folder, rng)
    learners = write_learners(folder, rng)
    write_results(folder, rng, assessments, learners)
    write_clicks(folder, rng, sites, learners)


def write_assessments(folder: Path) -> list[tuple[str, str, int]]:
    """Write TMAs and CMAs at the course's assessment days and a final exam.

    Returns (presentation, id_assessment, day) of the TMAs and CMAs.
    """
    rows: list[list[object]] = []
    assessments = []
    next_id = 90001
    for code, presentation, _, days, exam_day in SAMPLE_COURSES:
        for number, day in enumerate(days):
            kind = "CMA" if number % 2 else "TMA"
            rows.append([code, presentation, next_id, kind, day, 20])
            assessments.append((presentation, str(next_id), day))
            next_id += 1
        # The J exam has no date, as some exams in OULAD do.
        rows.append([code, presentation, next_id, "Exam", exam_day or "", 100])
        next_id += 1
    write_csv(
        folder / "assessments_2013.csv",
        header("assessments_2013.csv"),
        rows,
        quote_all=True,
    )
    return assessments


def write_materials(folder: Path, rng: random.Random) -> dict[str, list[int]]:
    """Write 40 materials per course; most have no planned week, as in OULAD."""
    rows: list[list[object]] = []
    sites: dict[str, list[int]] = {}
    next_site = 900001
    for code, presentation, _, _, _ in SAMPLE_COURSES:
        sites[presentation] = []
        for _ in range(40):
            week = rng.randint(1, 30) if rng.random() < 0.3 else None
            week_text = "" if week is None else week
            rows.append(
                [
                    next_site,
                    code,
                    presentation,
                    rng.choice(ACTIVITY_TYPES),
                    week_text,
                    week_text,
                ]
            )
            sites[presentation].append(next_site)
            next_site += 1
    write_csv(
        folder / "vle_2013.csv",
        header("vle_2013.csv"),
        rows,
        quote_all=True,
    )
    return sites


@dataclass
class SampleLearner:
    presentation: str
    id_student: int
    final_result: str
    unregistered: int | None


def write_learners(folder: Path, rng: random.Random) -> list[SampleLearner]:
    """Write studentInfo and studentRegistration rows for each course's learners."""
    ids = rng.sample(range(10000, 99999), LEARNERS_PER_COURSE * 2)
    learners = []
    info_rows: list[list[object]] = []
    registration_rows: list[list[object]] = []
    for index, (code, presentation, length, _, _) in enumerate(SAMPLE_COURSES):
        # Some learners of the first course take the second one too.
        start = index * (LEARNERS_PER_COURSE - 20)
        for id_student in ids[start : start + LEARNERS_PER_COURSE]:
            learner = draw_learner(rng, presentation, length, id_student)
            learners.append(learner)
            info_rows.append(info_row(rng, code, learner))
            registration_rows.append(registration_row(rng, code, learner))

    # Deliberately bad rows: a blank registration day and an unknown final result.
    registration_rows[5][3] = ""
    info_rows[7][-1] = "Incomplete"
    write_csv(
        folder / "studentInfo_2013.csv",
        header("studentInfo_2013.csv"),
        info_rows,
        quote_all=True,
    )
    write_csv(
        folder / "studentRegistration_2013.csv",
        header("studentRegistration_2013.csv"),
        registration_rows,
        quote_all=True,
    )
    return learners


def draw_learner(
    rng: random.Random, presentation: str, length: int, id_student: int
) -> SampleLearner:
    result = rng.choice(FINAL_RESULTS)
    unregistered = rng.randint(-30, length - 20) if result == "Withdrawn" else None
    return SampleLearner(presentation, id_student, result, unregistered)


def info_row(rng: random.Random, code: str, learner: SampleLearner) -> list[object]:
    return [
        code, learner.presentation, learner.id_student, rng.choice("MF"),
        rng.choice(REGIONS), "A Level or Equivalent", "30-40%",
        rng.choice(("0-35", "35-55")), 0, rng.choice((30, 60, 120)), "N",
        learner.final_result,
    ]  # fmt: skip


def registration_row(
    rng: random.Random, code: str, learner: SampleLearner
) -> list[object]:
    unregistered = "" if learner.unregistered is None else learner.unregistered
    return [
        code, learner.presentation, learner.id_student, rng.randint(-120, -1),
        unregistered,
    ]  # fmt: skip


def write_results(
    folder: Path,
    rng: random.Random,
    assessments: list[tuple[str, str, int]],
    learners: list[SampleLearner],
) -> None:
    """Write results of the assessments each learner reached before leaving."""
    rows: list[list[object]] = []
    for learner in learners:
        for presentation, id_assessment, day in assessments:
            if presentation != learner.presentation:
                continue
            if learner.unregistered is not None and day > learner.unregistered:
                continue
            rows.append(
                [
                    id_assessment,
                    learner.id_student,
                    day - rng.randint(0, 5),
                    0,
                    rng.randint(30, 100),
                ]
            )
    # A deliberately bad row: the assessment does not exist.
    rows.append([99999, learners[0].id_student, 20, 0, 70])
    write_csv(
        folder / "studentAssessment_subset_2013.csv",
        header("studentAssessment_subset_2013.csv"),
        rows,
    )


def write_clicks(
    folder: Path,
    rng: random.Random,
    sites: dict[str, list[int]],
    learners: list[SampleLearner],
) -> None:
    """Write the first days of the J presentation's click log."""
    rows: list[list[object]] = []
    for learner in learners:
        if learner.presentation != "2013J":
            continue
        for _ in range(rng.randint(0, 4)):
            rows.append(
                [
                    "SMP",
                    "2013J",
                    learner.id_student,
                    rng.choice(sites["2013J"]),
                    rng.randint(-10, 2),
                    rng.randint(1, 8),
                ]
            )
    write_csv(
        folder / "studentVle_prefix_SMP_2013J.csv",
        header("studentVle_prefix_SMP_2013J.csv"),
        rows,
    )
