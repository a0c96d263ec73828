"""Lesson snapshots of published course versions, and what changed between them.

Each published version stores a snapshot: per lesson its title, kind and
required flag, a SHA-256 of its content, and for a quiz, exam or
self-assessment a SHA-256 of what a pass proves. Comparing two snapshots
lists the lessons added, removed and changed, and finds the assessments
that a learner who passed them before must pass again
(docs/decisions/0027-lesson-snapshots-and-assessment-retakes.md).
"""

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from courses.models import (
    ASSESSMENT_KINDS,
    ChecklistItem,
    Choice,
    Course,
    Lesson,
    LessonKind,
    Question,
)

# Version of the snapshot layout below, stored in each snapshot so a later
# layout can tell old snapshots apart instead of reporting every lesson changed.
SNAPSHOT_FORMAT = 1

# Assessments whose pass a changed version can take back. A self-assessment
# is unscored, so a change to it follows the rule of other lessons.
RETAKEN_KINDS = frozenset({LessonKind.QUIZ, LessonKind.EXAM})

Snapshot = dict[str, Any]


def _digest(value: Any) -> str:
    payload = json.dumps(value, default=str, separators=(",", ":"), sort_keys=True)
    return hashlib.sha256(payload.encode()).hexdigest()


@dataclass(frozen=True)
class SnapshotModels:
    """The model classes a snapshot reads: the app's own, or a migration's."""

    lesson: Any
    checklist_item: Any
    question: Any
    choice: Any


APP_MODELS = SnapshotModels(Lesson, ChecklistItem, Question, Choice)


def take_snapshot(course: Course) -> Snapshot:
    """Return the snapshot of the course's current lessons and completion rule.

    Five queries: the rule, the lessons, the checklist items, the choices
    and the questions.
    """
    rule = Course.objects.values_list("completion_rule", flat=True).get(pk=course.pk)
    return snapshot_of(course.pk, rule, APP_MODELS)


def snapshot_of(course_id: int, rule: str, models: SnapshotModels) -> Snapshot:
    """Return the snapshot of a course's lessons read through the given models.

    The data migration that records snapshots of existing courses passes
    its historical models, so both write the same layout.
    """
    lessons = list(
        models.lesson.objects.filter(module__course_id=course_id)
        .order_by("id")
        .values(
            "id",
            "title",
            "kind",
            "is_required",
            "body",
            "url",
            "file",
            "pass_mark",
            "questions_per_attempt",
        )
    )
    lesson_ids = [lesson["id"] for lesson in lessons]
    items = _checklist_items(models, lesson_ids)
    questions = _questions(models, lesson_ids)
    return {
        "format": SNAPSHOT_FORMAT,
        "completion_rule": rule,
        "lessons": [
            _lesson_entry(lesson, items.get(lesson["id"], []), questions)
            for lesson in lessons
        ],
    }


def _checklist_items(
    models: SnapshotModels, lesson_ids: list[int]
) -> dict[int, list[list[str]]]:
    rows = models.checklist_item.objects.filter(lesson_id__in=lesson_ids).values_list(
        "lesson_id", "text", "event_name"
    )
    items: dict[int, list[list[str]]] = {}
    for lesson_id, text, event_name in rows:
        items.setdefault(lesson_id, []).append([text, event_name])
    return items


def _questions(
    models: SnapshotModels, lesson_ids: list[int]
) -> dict[int, list[list[Any]]]:
    """Return each lesson's questions as sortable lists, choices included.

    Order and feedback are left out: they change neither what a learner
    must know nor how the answers are scored.
    """
    choices: dict[int, list[list[Any]]] = {}
    for question_id, text, is_correct in models.choice.objects.filter(
        question__lesson_id__in=lesson_ids
    ).values_list("question_id", "text", "is_correct"):
        choices.setdefault(question_id, []).append([text, is_correct])
    questions: dict[int, list[list[Any]]] = {}
    for row in models.question.objects.filter(lesson_id__in=lesson_ids).values(
        "id", "lesson_id", "kind", "text", "pool", "points", "accepted_answers"
    ):
        lines = row["accepted_answers"].splitlines()
        accepted = sorted(line.strip() for line in lines if line.strip())
        questions.setdefault(row["lesson_id"], []).append(
            [
                row["pool"].strip(),
                row["kind"],
                row["text"],
                row["points"],
                accepted,
                sorted(choices.get(row["id"], [])),
            ]
        )
    return questions


def _lesson_entry(
    lesson: dict[str, Any],
    items: list[list[str]],
    questions: dict[int, list[list[Any]]],
) -> dict[str, Any]:
    content = [lesson["body"], lesson["url"], lesson["file"], items]
    assessment = None
    if lesson["kind"] in ASSESSMENT_KINDS:
        # The pass mark and the questions drawn per pool decide what a pass
        # proves. Attempt and time limits, shuffling and feedback do not.
        assessment = _digest(
            [
                lesson["pass_mark"],
                lesson["questions_per_attempt"],
                sorted(questions.get(lesson["id"], [])),
            ]
        )
    return {
        "id": lesson["id"],
        "title": lesson["title"],
        "kind": lesson["kind"],
        "required": lesson["is_required"],
        "content": _digest(content),
        "assessment": assessment,
    }


def snapshot_fingerprint(snapshot: Snapshot) -> str:
    """Return the SHA-256 that is equal for two snapshots exactly when they are."""
    return _digest(snapshot)


# -- comparing snapshots -------------------------------------------------------


@dataclass(frozen=True)
class LessonChange:
    lesson_id: int
    title: str
    kind: str
    # The change: "added", "removed", or the changed parts among "title",
    # "kind", "required", "content" and "assessment".
    parts: tuple[str, ...]

    @property
    def retake(self) -> bool:
        """Whether learners who passed this quiz or exam must pass it again."""
        return "assessment" in self.parts and self.kind in RETAKEN_KINDS


@dataclass(frozen=True)
class VersionChanges:
    rule_changed: bool
    lessons: tuple[LessonChange, ...]

    @property
    def retakes(self) -> tuple[LessonChange, ...]:
        return tuple(change for change in self.lessons if change.retake)


COMPARED_PARTS = ("title", "kind", "required", "content", "assessment")


def compare_snapshots(old: Snapshot, new: Snapshot) -> VersionChanges:
    """List what changed from the old snapshot to the new one, in lesson id order."""
    before = {entry["id"]: entry for entry in old["lessons"]}
    after = {entry["id"]: entry for entry in new["lessons"]}
    changes: list[LessonChange] = []
    for lesson_id in sorted(before.keys() | after.keys()):
        if lesson_id not in before:
            changes.append(_change(after[lesson_id], ("added",)))
        elif lesson_id not in after:
            changes.append(_change(before[lesson_id], ("removed",)))
        else:
            parts = tuple(
                part
                for part in COMPARED_PARTS
                if before[lesson_id][part] != after[lesson_id][part]
            )
            if parts:
                changes.append(_change(after[lesson_id], parts))
    return VersionChanges(
        rule_changed=old["completion_rule"] != new["completion_rule"],
        lessons=tuple(changes),
    )


def _change(entry: dict[str, Any], parts: tuple[str, ...]) -> LessonChange:
    return LessonChange(
        lesson_id=entry["id"], title=entry["title"], kind=entry["kind"], parts=parts
    )


def is_comparable(snapshot: Snapshot | None) -> bool:
    """Return whether a stored snapshot has the layout this code compares."""
    return snapshot is not None and snapshot.get("format") == SNAPSHOT_FORMAT


def retake_times(
    versions: Iterable[tuple[datetime, Snapshot | None]],
) -> dict[int, datetime]:
    """Return, per quiz or exam, when the latest version that changed it was published.

    versions are (published_at, snapshot) pairs in version order. A pair
    whose snapshot is missing, from before snapshots were recorded, hides
    the changes on either side of it, so those count as unchanged.
    """
    changed_at: dict[int, datetime] = {}
    previous: Snapshot | None = None
    for published_at, snapshot in versions:
        if (
            previous is not None
            and snapshot is not None
            and is_comparable(previous)
            and is_comparable(snapshot)
        ):
            for change in compare_snapshots(previous, snapshot).retakes:
                changed_at[change.lesson_id] = published_at
        previous = snapshot
    return changed_at
