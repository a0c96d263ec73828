"""JSON endpoints of the admin's rule builder: parse text, format a tree.

The builder in the condition field of the admin keeps its tree and the
textarea in step through these two views. parse reads the text a CSM typed
into a tree, or returns the syntax error with its line and column. format
writes a tree the builder assembled as canonical text, or returns the
validation error with the path to the fault. The textarea stays the field
that the form submits, so these views never write anything.

The views import only Django and this package. The project's URL
configuration mounts them behind the admin login and names the model
permissions that grant access, because this package imports no app.
"""

import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.contrib.admin import AdminSite
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.urls import URLPattern, path
from django.views.decorators.http import require_POST

from conditions.formatting import format_condition
from conditions.language import ConditionSyntaxError, load_json_tree, parse_condition
from conditions.registry import SUBJECTS, ConditionError, Subject, validate

logger = logging.getLogger(__name__)

View = Callable[[HttpRequest], HttpResponse]


class BadRequest(Exception):
    """A request body that is not the JSON object the endpoint expects."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


def builder_urls(site: AdminSite, permissions: Iterable[str]) -> list[URLPattern]:
    """Return the parse and format URLs, for staff with any of the permissions.

    site.admin_view wraps the views, so an anonymous visitor is redirected to
    the admin login. A staff user with none of the permissions gets a 403.
    """
    required = tuple(permissions)
    return [
        path(
            "parse/",
            site.admin_view(_permitted(parse_view, required)),
            name="condition_builder_parse",
        ),
        path(
            "format/",
            site.admin_view(_permitted(format_view, required)),
            name="condition_builder_format",
        ),
    ]


def _permitted(view: View, permissions: tuple[str, ...]) -> View:
    def wrapped(request: HttpRequest) -> HttpResponse:
        if not any(request.user.has_perm(name) for name in permissions):
            return JsonResponse(
                {"error": {"message": "You may not view or edit conditions."}},
                status=403,
            )
        return view(request)

    wrapped.__name__ = view.__name__
    return wrapped


@require_POST
def parse_view(request: HttpRequest) -> HttpResponse:
    """Parse {"text", "subject"} into {"tree"}, or return the error's position."""
    try:
        body = _body(request)
        subject = _subject(body)
        text = _text(body, "text")
    except BadRequest as exc:
        return _bad_request(exc)

    try:
        tree = parse_text(text, subject)
    except ConditionSyntaxError as exc:
        return JsonResponse({"error": _syntax_error(exc)}, status=400)
    except ConditionError as exc:
        return JsonResponse({"error": _tree_error(exc)}, status=400)
    return JsonResponse({"tree": tree})


@require_POST
def format_view(request: HttpRequest) -> HttpResponse:
    """Write {"tree", "subject"} as {"text"}, or return the error and its path."""
    try:
        body = _body(request)
        subject = _subject(body)
    except BadRequest as exc:
        return _bad_request(exc)
    if "tree" not in body:
        return _bad_request(
            BadRequest('the request has no "tree"; send the condition tree')
        )

    try:
        text = format_tree(body["tree"], subject)
    except ConditionError as exc:
        return JsonResponse({"error": _tree_error(exc)}, status=400)
    return JsonResponse({"text": text})


def parse_text(text: str, subject: Subject) -> dict[str, Any]:
    """Parse condition text, or a JSON tree as the form accepts it, into a tree.

    Raises ConditionSyntaxError for text, or ConditionError with the path to
    the fault for a JSON tree that does not validate.
    """
    if not text.strip().startswith("{"):
        return parse_condition(text, subject)

    tree = load_json_tree(text)
    validate(tree, subject)
    return tree


def format_tree(tree: Any, subject: Subject) -> str:
    """Validate a tree for the subject type and write it as canonical text.

    Validation looks up the courses and stages the tree names, as saving the
    form does, so the builder reports a missing one before the form is sent.
    """
    validate(tree, subject)
    return format_condition(tree)


def _body(request: HttpRequest) -> dict[str, Any]:
    try:
        raw = request.body
    except RequestDataTooBig:
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raise BadRequest(
            f"the request body is larger than {limit} bytes; send a shorter condition",
            status=413,
        ) from None
    try:
        body = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise BadRequest(f"the request body is not valid JSON: {exc}") from None
    except RecursionError:
        # json.loads recurses once per nesting level; validation would
        # reject such a tree anyway, at MAX_DEPTH.
        raise BadRequest("the request body nests too deeply") from None
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


def _subject(body: dict[str, Any]) -> Subject:
    subject = body.get("subject")
    if subject not in SUBJECTS:
        raise BadRequest(
            f"subject {subject!r} is invalid; send one of {', '.join(SUBJECTS)}"
        )
    return subject


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise BadRequest(f'"{key}" must be text, found {type(value).__name__}')
    return value


def _bad_request(exc: BadRequest) -> JsonResponse:
    logger.info("condition builder request rejected: %s", exc)
    return JsonResponse({"error": {"message": str(exc)}}, status=exc.status)


def _syntax_error(exc: ConditionSyntaxError) -> dict[str, Any]:
    return {
        "message": exc.message,
        "line": exc.line,
        "column": exc.column,
        "expected": list(exc.expected),
    }


def _tree_error(exc: ConditionError) -> dict[str, Any]:
    return {"message": exc.message, "path": exc.path}
