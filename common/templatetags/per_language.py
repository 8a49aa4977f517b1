"""`{% per_language %}…{% endper_language %}`: a part of a page that is the same for everyone who
reads it in one language, rendered once per language and then reused.

Most of a page is fixed text: headings, labels, hints, links to other pages. Django renders each
`{% translate %}`, `{% url %}` and `{% static %}` again on every request (a translation alone
costs about as much as ten lines of plain text), which made up much of the bills page's rendering
time. Inside this tag they are rendered once per language (and URL prefix, and escaping), in
this process.

So that nothing that varies can be frozen by mistake, the tag accepts only what cannot vary
between requests in a language: text, comments, `{% translate %}` and `{% blocktranslate %}`
of constant text, `{% static %}` and `{% url %}` with constant arguments. Anything else (a
`{{ variable }}`, an `{% if %}`, a filter, `as`) is refused when the template is loaded.
"""

from __future__ import annotations

import weakref
from typing import Any

from django import template
from django.core.signals import setting_changed
from django.template.base import FilterExpression, Node, NodeList, TextNode, TokenType, Variable
from django.template.defaulttags import CommentNode, URLNode
from django.templatetags.i18n import BlockTranslateNode, TranslateNode
from django.templatetags.static import StaticNode
from django.urls import get_script_prefix, get_urlconf
from django.utils import translation
from django.utils.safestring import SafeString

register = template.Library()

# Every part, so that a change of settings in tests (languages, catalogues, URLs) can forget what
# they rendered; in a running server translations and URLs change only with a new process.
_parts: weakref.WeakSet[PerLanguageNode] = weakref.WeakSet()


def _constant(expression: FilterExpression) -> bool:
    if expression.filters:
        return False
    return not isinstance(expression.var, Variable) or expression.var.lookups is None


def _fixed(node: Node) -> bool:
    """Whether `node` renders the same for every request in a language."""
    if isinstance(node, (TextNode, CommentNode)):
        return True
    if isinstance(node, TranslateNode):
        context = node.message_context
        return (
            node.asvar is None
            and _constant(node.filter_expression)
            and (context is None or _constant(context))
        )
    if isinstance(node, BlockTranslateNode):
        tokens = [*node.singular, *(node.plural or [])]
        return (
            not node.extra_context
            and node.countervar is None
            and node.message_context is None
            and node.asvar is None
            and all(token.token_type == TokenType.TEXT for token in tokens)
        )
    if isinstance(node, StaticNode):
        return node.varname is None and _constant(node.path)
    if isinstance(node, URLNode):
        # A namespaced name may depend on the request's current application.
        view_name = node.view_name
        return (
            node.asvar is None
            and _constant(view_name)
            and ":" not in str(view_name.var)
            and all(_constant(arg) for arg in node.args)
            and all(_constant(arg) for arg in node.kwargs.values())
        )
    return False


class PerLanguageNode(Node):
    child_nodelists = ("nodelist",)

    def __init__(self, nodelist: NodeList) -> None:
        self.nodelist = nodelist
        # Addresses depend on where the portal is mounted too; text only on the language.
        self.has_addresses = any(isinstance(node, (URLNode, StaticNode)) for node in nodelist)
        self.rendered: dict[Any, SafeString] = {}
        _parts.add(self)

    def render(self, context: template.Context) -> SafeString:
        key: tuple[Any, ...] = (translation.get_language(), context.autoescape)
        if self.has_addresses:
            key += (get_script_prefix(), get_urlconf())
        try:
            return self.rendered[key]
        except KeyError:
            # Rendered twice at worst when two threads meet here: the same text either way.
            text = self.rendered[key] = self.nodelist.render(context)
            return text


@register.tag("per_language")
def per_language(parser: template.base.Parser, token: template.base.Token) -> PerLanguageNode:
    nodelist = parser.parse(("endper_language",))
    parser.delete_first_token()
    for node in nodelist:
        if not _fixed(node):
            raise template.TemplateSyntaxError(
                f"{{% per_language %}} holds only fixed text, translations of fixed text, "
                f"static files and URLs with fixed arguments, not {node!r} "
                f"(line {token.lineno})"
            )
    return PerLanguageNode(nodelist)


def _forget(**kwargs: Any) -> None:
    for part in list(_parts):
        part.rendered.clear()


setting_changed.connect(_forget, dispatch_uid="common.per_language.forget")
