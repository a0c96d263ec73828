"""A template fragment rendered once per process for each set of inputs.

``{% fragment name=value ... %}...{% endfragment %}`` renders its body in a
context that holds only the named values, and keeps the result in this
process's memory. The body cannot read anything else from the page's
context, so the inputs are every value it depends on. The key contains
them whole, each with its type, so a changed title or a new neighbour is
a new key, and no stale fragment can be shown. The key also contains what
``{% url %}`` reads outside the context: the URLconf, the script prefix,
the request's namespace and the language. No input is a date, so the
time zone cannot change a fragment. The template's node is part of the
key, so an edited template gets new keys.

Only strings, whole numbers and None are accepted as values, each keyed
with its type: True equals 1 and a safe string equals the same text, but
they render differently. A model instance compares by primary key alone,
so it could not key a fragment that shows its fields. A body must not
hold anything that changes between requests, such as ``{% csrf_token %}``
or ``{% now %}``: the token is not among the inputs, so it renders empty.

Nothing is cleared when a lesson changes; old entries are dropped when
the store is full. The lesson page, the portal's busiest page, spent half
its CPU time rendering its template
(docs/decisions/0030-lesson-page-fragments.md).
"""

from typing import Any

from django import template
from django.template.base import FilterExpression, Node, NodeList, Parser, Token
from django.urls import get_script_prefix, get_urlconf
from django.utils import translation
from django.utils.safestring import SafeString, mark_safe

register = template.Library()

# The maximum number of fragments one process keeps. A lesson page has
# five that depend on the lesson, and the text's key and value contain
# the lesson's text, so this keeps about 200 lessons. When the store is
# full, it is emptied and starts again.
MAX_FRAGMENTS = 1000

_rendered: dict[tuple[Any, ...], SafeString] = {}


def clear_fragments() -> None:
    """Forget every rendered fragment of this process (for tests)."""
    _rendered.clear()


class FragmentNode(Node):
    child_nodelists = ("nodelist",)

    def __init__(self, nodelist: NodeList, inputs: dict[str, FilterExpression]):
        self.nodelist = nodelist
        self.inputs = inputs

    def render(self, context: template.Context) -> SafeString:
        values = {name: value.resolve(context) for name, value in self.inputs.items()}
        key = (self, _surroundings(context), *_typed(values))
        found = _rendered.get(key)
        if found is not None:
            return found
        # A context with the inputs alone, as {% include ... only %} makes.
        output = mark_safe(self.nodelist.render(context.new(values)))
        if len(_rendered) >= MAX_FRAGMENTS:
            _rendered.clear()
        _rendered[key] = output
        return output


def _typed(values: dict[str, Any]) -> list[tuple[str, type, Any]]:
    typed = []
    for name, value in values.items():
        if value is not None and not isinstance(value, (str, int)):
            raise TypeError(
                f"Fragment input {name} is a {type(value).__name__}; pass a "
                "string, a whole number or None, such as the field it shows."
            )
        typed.append((name, type(value), value))
    return typed


def _surroundings(context: template.Context) -> tuple[Any, ...]:
    """Return what a fragment's tags read besides its inputs.

    Read once per page: the thread's URLconf and script prefix are set
    before the view runs and cannot change while a template renders, and
    reading them costs several microseconds each. Context.new() copies the
    attribute into the contexts of included templates.
    """
    found = getattr(context, "_fragment_surroundings", None)
    if found is None:
        found = (
            get_urlconf(),
            get_script_prefix(),
            _current_app(context),
            translation.get_language(),
            context.autoescape,
            context.use_l10n,
            context.use_tz,
        )
        context._fragment_surroundings = found  # type: ignore[attr-defined]
    return found


def _current_app(context: template.Context) -> str | None:
    # The namespace that {% url %} passes to reverse(), looked up as it does.
    try:
        return context.request.current_app  # type: ignore[attr-defined,no-any-return]
    except AttributeError:
        try:
            return context.request.resolver_match.namespace  # type: ignore[attr-defined,no-any-return]
        except AttributeError:
            return None


@register.tag
def fragment(parser: Parser, token: Token) -> FragmentNode:
    """{% fragment name=value ... %}...{% endfragment %}; see the module's docstring."""
    inputs = {}
    for bit in token.split_contents()[1:]:
        name, equals, expression = bit.partition("=")
        if not equals or not name.isidentifier():
            raise template.TemplateSyntaxError(
                f"The fragment tag takes name=value inputs; {bit!r} is not one."
            )
        inputs[name] = parser.compile_filter(expression)
    nodelist = parser.parse(("endfragment",))
    parser.delete_first_token()
    return FragmentNode(nodelist, inputs)
