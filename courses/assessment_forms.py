"""Admin forms for authoring quiz, exam and self-assessment questions.

Django's admin does not nest inlines, so a question's choices are typed in
one text box under the question, one choice per line, and saved as Choice
rows with the question.
"""

from collections import Counter
from typing import Any

from django import forms
from django.core.exceptions import ValidationError

from courses.models import (
    ASSESSMENT_KINDS,
    CHOICE_KINDS,
    Choice,
    Lesson,
    Question,
    QuestionKind,
)

# A choice line that starts with this mark is a correct answer.
CORRECT_MARK = "*"


def parse_choice_lines(text: str) -> list[tuple[str, bool]]:
    """Split the choices box into (text, is correct) pairs, skipping blank lines."""
    choices = []
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        correct = stripped.startswith(CORRECT_MARK)
        label = stripped.removeprefix(CORRECT_MARK).strip() if correct else stripped
        choices.append((label, correct))
    return choices


def _kind_label(kind: str | None) -> str:
    return str(dict(QuestionKind.choices).get(kind or "", "this")).lower()


def format_choice_lines(question: Question) -> str:
    return "\n".join(
        f"{CORRECT_MARK} {choice.text}" if choice.is_correct else choice.text
        for choice in question.choices.all()
    )


class QuestionAdminForm(forms.ModelForm):
    choice_lines = forms.CharField(
        label="Choices",
        required=False,
        widget=forms.Textarea(attrs={"rows": 4}),
        help_text="For choice questions: one choice per line, in the order "
        f"learners see them. Start a correct choice with {CORRECT_MARK}, as in "
        f"“{CORRECT_MARK} Settings”. True or false questions have exactly the "
        "two lines True and False.",
    )

    class Meta:
        model = Question
        fields = [
            "order",
            "pool",
            "kind",
            "text",
            "choice_lines",
            "accepted_answers",
            "points",
            "feedback",
        ]
        help_texts = {
            "accepted_answers": "For short answers: every accepted answer, one "
            "per line. Case and extra spaces are ignored.",
            "points": "How much the question counts toward the score.",
            "pool": "Optional. Questions with the same pool name form a pool, "
            "and each attempt draws Questions per attempt from every pool. "
            "Leave blank to put the question in the lesson's unnamed pool.",
            "feedback": "Shown to the learner with their result, right or wrong.",
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and not self.is_bound:
            self.initial["choice_lines"] = format_choice_lines(self.instance)

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        kind = cleaned.get("kind")
        choices = parse_choice_lines(cleaned.get("choice_lines") or "")
        accepted = (cleaned.get("accepted_answers") or "").strip()
        if kind in CHOICE_KINDS:
            self._check_choices(kind, choices)
        elif choices:
            self.add_error(
                "choice_lines",
                f"A {_kind_label(kind)} question has no choices; "
                "clear this box or change the kind.",
            )
        if kind == QuestionKind.SHORT_ANSWER and not accepted:
            self.add_error(
                "accepted_answers",
                "A short-answer question needs at least one accepted answer.",
            )
        elif kind != QuestionKind.SHORT_ANSWER and accepted:
            self.add_error(
                "accepted_answers",
                "Only short-answer questions use accepted answers; clear this box.",
            )
        cleaned["parsed_choices"] = choices
        return cleaned

    def _check_choices(self, kind: str, choices: list[tuple[str, bool]]) -> None:
        correct = sum(1 for _text, is_correct in choices if is_correct)
        labels = [text for text, _is_correct in choices]
        if len(set(labels)) != len(labels):
            self.add_error("choice_lines", "Two choices have the same text.")
        if kind == QuestionKind.TRUE_FALSE:
            if sorted(label.casefold() for label in labels) != ["false", "true"]:
                self.add_error(
                    "choice_lines",
                    "A true or false question has exactly two choices, True and "
                    f"False, with {CORRECT_MARK} before the right one.",
                )
        elif len(choices) < 2:
            self.add_error(
                "choice_lines",
                f"Add at least two choices, one per line; found {len(choices)}.",
            )
        if kind == QuestionKind.MULTIPLE_CHOICE:
            if correct == 0:
                self.add_error(
                    "choice_lines",
                    f"Mark at least one correct choice with {CORRECT_MARK}.",
                )
        elif correct != 1:
            self.add_error(
                "choice_lines",
                f"A {_kind_label(kind)} question needs exactly one "
                f"correct choice marked with {CORRECT_MARK}; found {correct}.",
            )

    def save(self, commit: bool = True) -> Question:
        question = super().save(commit=commit)
        if commit:
            self.save_choices(question)
        else:
            save_relations = self.save_m2m

            def save_m2m() -> None:
                save_relations()
                self.save_choices(question)

            # ModelForm.save(commit=False) hands save_m2m to the caller, who
            # calls it after saving the question; the choices need its id.
            self.save_m2m = save_m2m  # type: ignore[method-assign]
        return question

    def save_choices(self, question: Question) -> None:
        """Make the question's Choice rows match the choices box.

        Choices are matched by text, so an edit keeps the ids of unchanged
        choices, which past answers refer to.
        """
        choice_pairs = self.cleaned_data.get("parsed_choices", [])
        existing = {choice.text: choice for choice in question.choices.all()}
        for order, (text, is_correct) in enumerate(choice_pairs, start=1):
            choice = existing.get(text)
            if choice is None:
                Choice.objects.create(
                    question=question, text=text, is_correct=is_correct, order=order
                )
                continue
            if (choice.is_correct, choice.order) != (is_correct, order):
                choice.is_correct, choice.order = is_correct, order
                choice.save(update_fields=["is_correct", "order"])
        question.choices.exclude(text__in=[text for text, _ in choice_pairs]).delete()


class QuestionFormSet(forms.BaseInlineFormSet):
    """Check the questions against their lesson's kind and draw size."""

    instance: Lesson

    def clean(self) -> None:
        super().clean()
        remaining = [
            form
            for form in self.forms
            if form.cleaned_data and not form.cleaned_data.get("DELETE")
        ]
        lesson = self.instance
        if remaining and lesson.kind not in ASSESSMENT_KINDS:
            raise ValidationError(
                f"A {lesson.get_kind_display().lower()} lesson has no questions; "
                "set the kind to Quiz, Exam or Self-assessment, or delete the "
                "questions."
            )
        draw_size = lesson.questions_per_attempt
        if not draw_size:
            return
        sizes = Counter(
            (form.cleaned_data.get("pool") or "").strip() for form in remaining
        )
        for pool, size in sorted(sizes.items()):
            if size < draw_size:
                name = f"pool “{pool}”" if pool else "the unnamed pool"
                raise ValidationError(
                    f"Questions per attempt is {draw_size}, but {name} has {size} "
                    "questions; add questions or lower the number."
                )
