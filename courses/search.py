"""Search the courses and lessons a contact may see in the portal.

A contact finds a course only when the portal shows it to them: a
published course they are enrolled in (courses.services.enrollments_for)
or one of their catalogue (courses.catalogue.catalogue_for, which applies
the stages and audience condition). Lessons are searched only in courses
they are enrolled in, because only those lessons open for them. Drafts
never match.

On PostgreSQL the match is full-text search with English stemming, ranked
with ts_rank, and the snippet comes from ts_headline. Lessons are matched
and ranked by their stored search document, a tsvector column with a GIN
index that a trigger keeps current (migration 0015), so a search computes
no lesson's to_tsvector. Courses are few and their text short, so their
document is computed per search. On SQLite the match is a
case-insensitive substring.
"""

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

from django.contrib.postgres.search import (
    SearchHeadline,
    SearchQuery,
    SearchRank,
    SearchVector,
    SearchVectorField,
)
from django.db import connection
from django.db.models import Q, QuerySet
from django.db.models.expressions import (
    BaseExpression,
    CombinedExpression,
    Expression,
)
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

from courses.catalogue import catalogue_for
from courses.models import Course, Lesson
from courses.services import enrollments_for
from customers.models import Contact

logger = logging.getLogger(__name__)

# The maximum query length, in characters.
MAX_QUERY_LENGTH = 200
# Results shown per kind, best first.
MAX_COURSE_RESULTS = 10
MAX_LESSON_RESULTS = 25
# Characters of text on each side of a match in a SQLite snippet.
SNIPPET_RADIUS = 80
# The text search configuration: English stemming, so "reports" finds "report".
SEARCH_CONFIG = "english"
# Control characters that mark matches inside ts_headline's output. The
# output is escaped before they become <mark> tags, because lesson text is
# Markdown typed by staff and must never reach the page as HTML.
MATCH_START = "\x02"
MATCH_END = "\x03"


class SearchInputError(ValueError):
    """A query the portal cannot search for, with the reason for the learner."""


@dataclass(frozen=True)
class SearchHit:
    title: str
    # The course the hit belongs to; for a course hit, that course itself.
    course_title: str
    url: str
    snippet: SafeString
    is_lesson: bool


def clean_query(text: str) -> str:
    """Return the query stripped; raise SearchInputError when it cannot be run."""
    cleaned = " ".join(text.split())
    # PostgreSQL text cannot hold NUL, so the query would fail in the database.
    if "\x00" in cleaned:
        raise SearchInputError(
            "The search contains a NUL character; remove it and search again."
        )
    if len(cleaned) > MAX_QUERY_LENGTH:
        raise SearchInputError(
            f"The search is {len(cleaned)} characters long; use at most "
            f"{MAX_QUERY_LENGTH}."
        )
    return cleaned


def search_portal(contact: Contact, text: str) -> list[SearchHit]:
    """Return the courses and lessons the contact may see that match the text.

    Courses come first, then lessons, each best match first. At most six
    queries however many courses and lessons exist: the enrollments, up to
    three for the catalogue, the courses and the lessons.
    """
    query = clean_query(text)
    if not query:
        return []
    enrolled = set(enrollments_for(contact).values_list("course_id", flat=True))
    listed = {entry.course.pk for entry in catalogue_for(contact)}
    course_ids = enrolled | listed

    hits = [
        _course_hit(course, course.pk in enrolled, query)
        for course in matching_courses(course_ids, query)
    ]
    hits.extend(
        _lesson_hit(lesson, query) for lesson in matching_lessons(enrolled, query)
    )
    logger.info("Portal search by contact %s matched %s results", contact.pk, len(hits))
    return hits


def _uses_full_text() -> bool:
    return connection.vendor == "postgresql"


def _search_query(query: str) -> SearchQuery:
    # websearch syntax accepts anything a person types: quotes, "or", "-word".
    return SearchQuery(query, search_type="websearch", config=SEARCH_CONFIG)


def matching_courses(course_ids: set[int], query: str) -> QuerySet[Course]:
    courses = Course.objects.filter(pk__in=course_ids, is_published=True)
    if not _uses_full_text():
        return courses.filter(
            Q(title__icontains=query) | Q(summary__icontains=query)
        ).order_by("title")[:MAX_COURSE_RESULTS]
    search = _search_query(query)
    vector = weighted_document("summary")
    best = (
        courses.annotate(document=vector, rank=SearchRank(vector, search))
        .filter(document=search)
        .order_by("-rank", "title")
        .values("pk")[:MAX_COURSE_RESULTS]
    )
    return _with_headlines(
        Course.objects.filter(pk__in=best), vector, search, "summary"
    )


def matching_lessons(course_ids: set[int], query: str) -> QuerySet[Lesson]:
    lessons = Lesson.objects.filter(module__course_id__in=course_ids)
    if not _uses_full_text():
        return (
            lessons.filter(Q(title__icontains=query) | Q(body__icontains=query))
            .select_related("module__course")
            .order_by("module__course__title", "module__order", "order", "pk")[
                :MAX_LESSON_RESULTS
            ]
        )
    search = _search_query(query)
    # NOTE: a quoted phrase from the title's end into the text's start
    # matches by the stored vector's positions, which leave out the title's
    # trailing stop words (docs/decisions/0033-stored-lesson-search-document.md).
    best = (
        lessons.annotate(
            document=StoredLessonDocument(),
            rank=SearchRank(StoredLessonDocument(), search),
        )
        .filter(document=search)
        .order_by("-rank", "pk")
        .values("pk")[:MAX_LESSON_RESULTS]
    )
    found = Lesson.objects.filter(pk__in=best).select_related("module__course")
    return _with_headlines(found, StoredLessonDocument(), search, "body")


def weighted_document(text_field: str) -> CombinedExpression:
    """Return the search document of a course or lesson: the title weighs more."""
    return SearchVector("title", weight="A", config=SEARCH_CONFIG) + SearchVector(
        text_field, weight="B", config=SEARCH_CONFIG
    )


def _with_headlines(
    rows: QuerySet[Any],
    vector: Expression,
    search: SearchQuery,
    text_field: str,
) -> QuerySet[Any]:
    """Rank the best rows again and add their snippets, best first.

    The best rows come from a subquery limited to the results shown, so
    ts_headline, which is far slower than the match, runs on those rows
    only and not on every match.
    """
    return rows.annotate(
        rank=SearchRank(vector, search), headline=_headline(text_field, search)
    ).order_by("-rank", "pk")


class StoredLessonDocument(Expression):
    """A lesson's stored search document, weighted_document("body") kept by a trigger.

    The search_document column exists on PostgreSQL only (migration 0015)
    and is no model field, so SQLite and other reads of lessons never see
    it. Valid only in a query over lessons.
    """

    contains_column_references = True
    output_field = SearchVectorField()

    def __init__(self, alias: str | None = None) -> None:
        super().__init__()
        self.alias = alias

    def resolve_expression(
        self,
        query: Any = None,
        allow_joins: bool = True,
        reuse: Any = None,
        summarize: bool = False,
        for_save: bool = False,
    ) -> Self:
        return type(self)(query.get_initial_alias())

    def relabeled_clone(self, change_map: Mapping[str, str]) -> Self:
        # Follows the lessons table when the query becomes a subquery (U0).
        if self.alias is None:
            return self
        return type(self)(change_map.get(self.alias, self.alias))

    def get_group_by_cols(self) -> list[BaseExpression]:
        return [self]

    def as_sql(self, compiler: Any, connection: Any) -> tuple[str, list[Any]]:
        column = connection.ops.quote_name("search_document")
        if self.alias is None:
            return column, []
        return f"{compiler.quote_name_unless_alias(self.alias)}.{column}", []


def _headline(field: str, search: SearchQuery) -> SearchHeadline:
    return SearchHeadline(
        field,
        search,
        config=SEARCH_CONFIG,
        start_sel=MATCH_START,
        stop_sel=MATCH_END,
        max_words=30,
        min_words=12,
    )


def _course_hit(course: Course, enrolled: bool, query: str) -> SearchHit:
    if enrolled:
        url = reverse("portal:course", kwargs={"slug": course.slug})
    else:
        url = reverse("portal:catalogue") + f"#course-{course.slug}"
    return SearchHit(
        title=course.title,
        course_title=course.title,
        url=url,
        snippet=_snippet(course, course.summary, query),
        is_lesson=False,
    )


def _lesson_hit(lesson: Lesson, query: str) -> SearchHit:
    course = lesson.module.course
    return SearchHit(
        title=lesson.title,
        course_title=course.title,
        url=reverse(
            "portal:lesson", kwargs={"slug": course.slug, "lesson_id": lesson.pk}
        ),
        snippet=_snippet(lesson, lesson.body, query),
        is_lesson=True,
    )


def _snippet(row: Any, text: str, query: str) -> SafeString:
    # Full-text search annotates each row with its headline.
    headline = getattr(row, "headline", None)
    if headline is not None:
        return _marked(headline)
    return substring_snippet(text, query)


def _marked(headline: str) -> SafeString:
    """Escape a headline and turn its match markers into <mark> tags."""
    escaped = str(escape(headline))
    # Escaping leaves the control characters as they are, and the only HTML
    # added is the <mark> tags.
    return mark_safe(
        escaped.replace(MATCH_START, "<mark>").replace(MATCH_END, "</mark>")
    )


def substring_snippet(text: str, query: str) -> SafeString:
    """Return the text around the first case-insensitive match, escaped and marked.

    Used where full-text search is not available. Text without a match
    gives its first 2 * SNIPPET_RADIUS characters.
    """
    match = re.search(re.escape(query), text, re.IGNORECASE) if query else None
    if match is None:
        end = 2 * SNIPPET_RADIUS
        return escape(text[:end] + ("…" if end < len(text) else ""))
    start = max(match.start() - SNIPPET_RADIUS, 0)
    end = min(match.end() + SNIPPET_RADIUS, len(text))
    before = ("…" if start else "") + text[start : match.start()]
    after = text[match.end() : end] + ("…" if end < len(text) else "")
    # Every part is escaped, and the only HTML added is the <mark> tag.
    return mark_safe(
        f"{escape(before)}<mark>{escape(match.group())}</mark>{escape(after)}"
    )
