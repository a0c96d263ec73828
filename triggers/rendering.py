"""Email templates: compiling and rendering subject and body text.

Templates use the Django template language with autoescaping off, because
the outbox sends plain text: a contact named "Ann & Co" must read that way,
not as "Ann &amp; Co".
"""

from typing import Any

from django.core.exceptions import ValidationError
from django.template import Context, Engine, Template, TemplateSyntaxError
from django.template.base import Lexer, TokenType

# debug=True makes a syntax error carry the line number of its token.
EMAIL_ENGINE = Engine(debug=True)

# The variables a template can use, as listed in help text and in the docs.
TEMPLATE_VARIABLES = ("contact", "account", "course", "sign_in_url")

# Tags that read other templates or dump the context: an email has no
# template folders to include from, and {% debug %} would mail internals.
FORBIDDEN_TAGS = frozenset({"include", "extends", "debug", "load", "ssi"})


def compile_template(source: str, field: str) -> Template:
    """Compile template text; raise ValidationError naming the field and the line."""
    _reject_forbidden_tags(source, field)
    try:
        return EMAIL_ENGINE.from_string(source)
    except TemplateSyntaxError as exc:
        line = getattr(exc, "template_debug", {}).get("line")
        where = f"line {line}" if line else "unknown line"
        raise ValidationError(
            {field: f"Template syntax error on {where}: {exc}"}, code="syntax"
        ) from exc


def render_subject(template: Template, context: dict[str, Any]) -> str:
    """Render a subject and fold it onto one line, since a header cannot wrap freely."""
    return " ".join(_render(template, context).split())


def render_body(template: Template, context: dict[str, Any]) -> str:
    return _render(template, context).strip() + "\n"


def _render(template: Template, context: dict[str, Any]) -> str:
    # Autoescaping is a property of the Context, not of the Engine, when a
    # Template object is rendered directly.
    return template.render(Context(context, autoescape=False))


def _reject_forbidden_tags(source: str, field: str) -> None:
    for token in Lexer(source).tokenize():
        if token.token_type != TokenType.BLOCK:
            continue
        tag = token.contents.split()[0] if token.contents.split() else ""
        if tag in FORBIDDEN_TAGS:
            raise ValidationError(
                {
                    field: f"The {{% {tag} %}} tag on line {token.lineno} is not "
                    "allowed in email templates; write the text in place."
                },
                code="forbidden_tag",
            )
