"""Small RavenStack and OULAD folders with known good and bad rows."""

from pathlib import Path

import pytest

from integrations.sample import HEADERS


def write_file(folder: Path, name: str, lines: list[str]) -> None:
    """Write a CSV file with the published header; line 2 is the first row."""
    folder.mkdir(parents=True, exist_ok=True)
    header = ",".join(
        HEADERS.get(name, HEADERS["studentVle_prefix_SMP_2013J.csv"]).split()
    )
    (folder / name).write_text("\n".join([header, *lines]) + "\n")


def learner(code_module: str, presentation: str, id_student: int, result: str) -> str:
    """Return a studentInfo row; only the course, learner and result matter here."""
    return (
        f'"{code_module}","{presentation}","{id_student}","F","Wales",'
        f'"HE Qualification","20-30%","35-55","0","60","N","{result}"'
    )


RAVENSTACK = {
    "ravenstack_accounts.csv": [
        "A-000001,Acme Learning,EdTech,US,2024-01-10,partner,Pro,3,FALSE,TRUE",
        "A-000002,Beta Labs,FinTech,DE,2024-02-29,ads,Basic,2,FALSE,TRUE",
        "A-000003,Gamma,DevTools,UK,2023-05-01,organic,Enterprise,1,TRUE,FALSE",
    ],
    "ravenstack_subscriptions.csv": [
        "S-000001,A-000001,2024-01-10,2024-06-30,Pro,3,147,1764,FALSE,FALSE,FALSE,FALSE,monthly,TRUE",
        "S-000002,A-000001,2024-07-01,,Pro,3,150,1800,FALSE,TRUE,FALSE,FALSE,annual,TRUE",
        "S-000003,A-000002,2024-02-29,,Basic,2,38,456,FALSE,FALSE,FALSE,FALSE,monthly,FALSE",
        "S-000004,A-000003,2023-05-01,2024-05-01,Enterprise,1,99,1188,TRUE,FALSE,FALSE,TRUE,monthly,TRUE",
        "S-000005,A-999999,2023-05-01,,Pro,1,49,588,FALSE,FALSE,FALSE,FALSE,monthly,TRUE",
    ],
    "ravenstack_feature_usage.csv": [
        "U-000001,S-000001,2024-02-01,feature_1,3,120,0,False",
        "U-000002,S-000002,2024-08-01,feature_2,1,60,1,True",
        "U-000001,S-000003,2024-03-01,feature_9,1,60,0,False",
        "U-000003,S-000003,2024-03-01,feature_3,1,0,0,False",
        "U-000004,S-000005,2024-03-01,feature_3,1,30,0,False",
        "U-000005,S-000004,2023-13-01,feature_4,1,30,0,False",
        "U-000006,S-000004,2023-06-01,feature_4,2,30,0,False",
    ],
    "ravenstack_support_tickets.csv": [
        "T-000001,A-000001,2024-03-01,2024-03-02 3:00,27,high,74,4,FALSE",
        "T-000002,A-000003,2023-07-27,2023-07-28 13:00,37,low,10,,TRUE",
        "T-000003,A-000001,2024-03-05,2024-03-04 9:00,0,medium,5,5,FALSE",
        "T-000004,A-000002,2024-03-05,,,urgent,,,FALSE",
        "T-000005,A-000002,2024-03-05,2024-03-06 1:00,20,critical,9,3,FALSE",
    ],
    "ravenstack_churn_events.csv": [
        "C-000001,A-000001,2024-09-30,pricing,10.5,FALSE,FALSE,FALSE,too expensive",
        "C-000002,A-000001,2024-11-15,budget,0,FALSE,FALSE,TRUE,",
        "C-000003,A-000003,2024-05-02,support,0,FALSE,FALSE,FALSE,",
        "C-000004,,2024-05-02,support,0,FALSE,FALSE,FALSE,",
    ],
}  # fmt: skip

OULAD = {
    "courses_2013.csv": ['"AAA","2013J","268"', '"BBB","2013B","240"'],
    "assessments_2013.csv": [
        '"AAA","2013J","1","TMA","19","10"',
        '"AAA","2013J","2","TMA","54","20"',
        '"AAA","2013J","3","CMA","54","12.5"',
        '"AAA","2013J","4","Exam","","100"',
        '"BBB","2013B","5","TMA","100","50"',
        '"BBB","2013B","6","Exam","240","100"',
    ],
    "vle_2013.csv": [
        '"1001","AAA","2013J","resource","",""',
        '"1002","AAA","2013J","forumng","3","3"',
        '"1003","AAA","2013J","url","40","40"',
        '"1004","AAA","2013J","quiz","1","1"',
        '"1005","ZZZ","2013J","resource","",""',
    ],
    "studentInfo_2013.csv": [
        learner("AAA", "2013J", 10, "Pass"),
        learner("AAA", "2013J", 20, "Withdrawn"),
        learner("AAA", "2013J", 30, "Withdrawn"),
        learner("AAA", "2013J", 40, "Distinction"),
        learner("AAA", "2013J", 60, "Pass"),
        learner("AAA", "2013J", 70, "Pass"),
        learner("BBB", "2013B", 10, "Pass"),
        learner("BBB", "2013B", 50, "Fail"),
    ],
    "studentRegistration_2013.csv": [
        '"AAA","2013J","10","-50",""',
        '"AAA","2013J","20","-10","30"',
        '"AAA","2013J","30","5","-5"',
        '"AAA","2013J","40","-7",""',
        '"AAA","2013J","60","",""',
        '"BBB","2013B","10","-1",""',
        '"BBB","2013B","50","-3",""',
        '"ZZZ","2013J","80","-3",""',
    ],
    "studentAssessment_subset_2013.csv": [
        "1,10,18,0,78",
        "2,10,50,0,",
        "1,40,18,0,90",
        "99,10,18,0,50",
        "1,10,19,0,80",
    ],
    "studentVle_prefix_AAA_2013J.csv": [
        "AAA,2013J,10,1001,-3,2",
        "AAA,2013J,10,1001,-1,3",
        "AAA,2013J,20,1004,0,1",
        "AAA,2013J,10,1999,0,1",
        "AAA,2013J,40,1001,0,1",
    ],
}  # fmt: skip


@pytest.fixture
def ravenstack_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "ravenstack"
    for name, lines in RAVENSTACK.items():
        write_file(folder, name, lines)
    return folder


@pytest.fixture
def oulad_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "oulad_2013"
    for name, lines in OULAD.items():
        write_file(folder, name, lines)
    return folder
