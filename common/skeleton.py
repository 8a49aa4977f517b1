"""A page rendered once per kind, then filled: the template's output with a marker where each of
the household's values goes, split at the markers and kept; a request of that kind joins the
kept text with its own values, escaped as the template escapes them.

Django's template engine costs a few microseconds for every node it renders, and a page built
from a base template, blocks, conditions, loops and translations costs it hundreds of them on
each request (measured on the bills page: about a third of its CPU), though for one kind of page
everything but a dozen values comes out the same.

What a kind is, the view says: the values that decide the page's shape (which sections show, the
partners offered), hashable. The language, the URL prefix and the URLconf are added here. Each
value to fill (a slot) is either empty, and then part of the kind (an `{% if %}` may test it), or
filled. A request the view cannot describe so (flash messages to show, a query string) is
rendered as usual.

What the template may do with a slot is therefore limited: show it (`{{ slot }}`) or test
whether it is empty (`{% if slot %}`), nothing else. The skeleton is rendered from the kind's
values and the slots' markers only, with a blank request, twice (with markers of two lengths),
and kept only if both give the same text and, filled with the first request's values, it gives
exactly the page Django renders for that request. That check catches a template reading the
request or a variable outside the kind and the slots, and a filter that changes or cuts a slot,
on the first page of each kind; what it cannot catch is a test that differs from one value to
the next (`{% if slot == "x" %}`, a filter that changes only some values), so a template using
this keeps to the rule above, and states so.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Hashable, Mapping
from typing import Any

from django.core.signals import setting_changed
from django.http import HttpRequest
from django.middleware.csrf import get_token
from django.template import Context
from django.template.base import render_value_in_context
from django.template.loader import render_to_string
from django.urls import get_script_prefix, get_urlconf
from django.utils import translation
from django.utils.html import conditional_escape
from django.utils.safestring import mark_safe

logger = logging.getLogger(__name__)

# `{% csrf_token %}`'s value: the request's token, filled like the other slots.
CSRF_SLOT = "csrf_token"
# A slot's marker: NUL, which no text from the database (PostgreSQL refuses it in text) or a
# billing file (the import refuses it) holds, around the slot's name (padded, for the second
# rendering, with \x01: a filter cutting a value would cut the longer marker).
_MARKER = re.compile(r"\x00(\w+)\x01*\x00")
_PADDING = 64
# How `{{ value }}` is rendered: autoescaped, localized, in the current time zone.
_RENDERING = Context(autoescape=True)


def _marker(name: str, padding: int = 0) -> str:
    return mark_safe(f"\x00{name}{chr(1) * padding}\x00")


class Skeleton:
    """The fixed text between the slots, and the slots' names in order."""

    def __init__(self, rendered: str) -> None:
        pieces = _MARKER.split(rendered)
        self.fixed: list[str] = pieces[0::2]
        self.slots: list[str] = pieces[1::2]
        self.has_token = CSRF_SLOT in self.slots

    def fill(self, values: Mapping[str, str]) -> str:
        parts = [self.fixed[0]]
        for slot, fixed in zip(self.slots, self.fixed[1:], strict=True):
            parts.append(values[slot])
            parts.append(fixed)
        return "".join(parts)


class PageSkeletons:
    """The skeletons of one template, per kind."""

    def __init__(self, template_name: str) -> None:
        self.template_name = template_name
        self.kept: dict[Hashable, Skeleton | None] = {}
        self.lock = threading.Lock()
        setting_changed.connect(self._forget, weak=False)

    def render(
        self,
        request: HttpRequest,
        *,
        shape: dict[str, Any],
        slots: dict[str, Any],
        extra: dict[str, Any] | None = None,
        plain: bool = False,
    ) -> str:
        """The page. `shape` holds the values that decide its shape (hashable), `slots` the
        values it shows, `extra` what only a page rendered as usual reads; `plain` renders it
        as usual."""
        context = {**shape, **slots, **(extra or {})}
        if plain:
            return render_to_string(self.template_name, context, request)
        empty = frozenset(name for name, value in slots.items() if not value)
        key = (
            tuple(sorted(shape.items())),
            empty,
            translation.get_language(),
            get_script_prefix(),
            get_urlconf(),
        )
        try:
            skeleton = self.kept[key]
        except KeyError:
            return self._first(request, key, shape, slots, context)
        if skeleton is None:  # the check failed for this kind: rendered as usual
            return render_to_string(self.template_name, context, request)
        return skeleton.fill(self._values(slots, _token(request) if skeleton.has_token else ""))

    def _first(
        self,
        request: HttpRequest,
        key: Hashable,
        shape: dict[str, Any],
        slots: dict[str, Any],
        context: dict[str, Any],
    ) -> str:
        skeleton, padded = (
            Skeleton(
                render_to_string(
                    self.template_name,
                    {
                        **shape,
                        **{
                            name: _marker(name, padding) if value else value
                            for name, value in slots.items()
                        },
                        CSRF_SLOT: _marker(CSRF_SLOT, padding),
                    },
                    HttpRequest(),
                )
            )
            for padding in (0, _PADDING)
        )
        token = ""
        if skeleton.has_token:
            # One masking of the token for both: each call of get_token masks it anew.
            token = _token(request)
            context = {**context, CSRF_SLOT: token}
        page = render_to_string(self.template_name, context, request)
        kept: Skeleton | None = skeleton
        values = self._values(slots, token)
        # A marker a filter changed names no slot: that template is rendered as usual too.
        if (
            (padded.fixed, padded.slots) != (skeleton.fixed, skeleton.slots)
            or not values.keys() >= set(skeleton.slots)
            or skeleton.fill(values) != page
        ):
            logger.warning(
                "%s renders differently from its skeleton for %r: rendered as usual",
                self.template_name,
                key,
            )
            kept = None
        with self.lock:
            self.kept.setdefault(key, kept)
        return page

    def _values(self, slots: dict[str, Any], token: str) -> dict[str, str]:
        values = {name: render_value_in_context(value, _RENDERING) for name, value in slots.items()}
        # As `{% csrf_token %}` puts it in the page: format_html escapes it.
        values[CSRF_SLOT] = conditional_escape(token)
        return values

    def _forget(self, **kwargs: Any) -> None:
        with self.lock:
            self.kept.clear()


def _token(request: HttpRequest) -> str:
    """The request's CSRF token, asked for only where the page holds a form, as the template
    asks for it: the cookie is then set."""
    return get_token(request)
