"""The ``markdown`` filter: a lesson's Markdown text as sanitised HTML.

The lesson page applies it inside a fragment whose input is the text, so
the HTML is made only when the fragment is rendered, not on every page
view (courses.templatetags.portal_fragments).
"""

from django import template
from django.utils.safestring import SafeString

from courses.content import markdown_html

register = template.Library()


@register.filter(is_safe=True)
def markdown(text: str) -> SafeString:
    """Render Markdown as courses.content.render_markdown does, from the cache."""
    return markdown_html(text)
