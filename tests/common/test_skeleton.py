"""Pages filled from a skeleton kept per kind: kept only when it gives exactly what Django
renders, so a template reading anything but its kind and its slots is rendered as usual."""

from __future__ import annotations

import pytest
from django.test import RequestFactory, override_settings

from common.skeleton import PageSkeletons

TEMPLATES = {
    "page.html": "<h1>{{ title }}</h1>{% if note %}<p>{{ note }}</p>{% endif %}"
    "{% for item in items %}<i>{{ item }}</i>{% endfor %}",
    "reads_request.html": "<h1>{{ title }}</h1><a href='{{ request.path }}'>here</a>",
    "filters_a_slot.html": "<h1>{{ title|upper }}</h1>",
    "cuts_a_slot.html": "<h1>{{ title|truncatechars:12 }}</h1>",
    "reads_another.html": "<h1>{{ title }}</h1>{{ other }}",
    "form.html": "<form>{% csrf_token %}{{ title }}</form>",
}


@pytest.fixture(autouse=True)
def _templates():
    with override_settings(
        TEMPLATES=[
            {
                "BACKEND": "django.template.backends.django.DjangoTemplates",
                "OPTIONS": {
                    "loaders": [("django.template.loaders.locmem.Loader", TEMPLATES)],
                    "context_processors": ["django.template.context_processors.request"],
                },
            }
        ]
    ):
        yield


def _request(path: str = "/page/"):
    return RequestFactory().get(path)


def test_a_kind_is_kept_after_its_first_page_and_fills_the_next_ones():
    pages = PageSkeletons("page.html")
    shape = {"items": ("a", "b")}
    first = pages.render(_request(), shape=shape, slots={"title": "One", "note": "x"})
    second = pages.render(_request(), shape=shape, slots={"title": "<Two>", "note": "y & z"})
    assert first == "<h1>One</h1><p>x</p><i>a</i><i>b</i>"
    assert second == "<h1>&lt;Two&gt;</h1><p>y &amp; z</p><i>a</i><i>b</i>"
    assert list(pages.kept.values()) != [None] and len(pages.kept) == 1


def test_an_empty_slot_and_each_shape_are_kinds_of_their_own():
    pages = PageSkeletons("page.html")
    assert pages.render(_request(), shape={"items": ()}, slots={"title": "A", "note": ""}) == (
        "<h1>A</h1>"
    )
    assert pages.render(_request(), shape={"items": ("c",)}, slots={"title": "B", "note": "n"}) == (
        "<h1>B</h1><p>n</p><i>c</i>"
    )
    assert pages.render(_request(), shape={"items": ()}, slots={"title": "C", "note": ""}) == (
        "<h1>C</h1>"
    )
    assert len(pages.kept) == 2


@pytest.mark.parametrize(
    ("name", "slots", "expected"),
    [
        ("reads_request.html", {"title": "T"}, "<h1>T</h1><a href='{path}'>here</a>"),
        ("filters_a_slot.html", {"title": "t{path}"}, "<h1>T{upper}</h1>"),
        # Short values come out whole: only the longer marker shows the cut.
        ("cuts_a_slot.html", {"title": "t{path}"}, "<h1>t{path}</h1>"),
        ("reads_another.html", {"title": "T"}, "<h1>T</h1>{path}"),
    ],
)
def test_a_template_reading_anything_else_is_rendered_as_usual(name, slots, expected, caplog):
    pages = PageSkeletons(name)
    for path in ("/one/", "/two/"):
        values = {key: value.format(path=path) for key, value in slots.items()}
        page = pages.render(_request(path), shape={}, slots=values, extra={"other": path})
        assert page == expected.format(path=path, upper=path.upper())
    assert list(pages.kept.values()) == [None]
    assert "renders differently from its skeleton" in caplog.text


def test_the_token_of_a_form_is_the_requests_and_sets_its_cookie():
    from django.middleware.csrf import _check_token_format, _unmask_cipher_token

    pages = PageSkeletons("form.html")
    for _ in range(2):
        request = _request()
        page = pages.render(request, shape={}, slots={"title": "T"})
        token = page.split('value="')[1].split('"')[0]
        _check_token_format(token)
        assert _unmask_cipher_token(token) == request.META["CSRF_COOKIE"]
        assert request.META["CSRF_COOKIE_NEEDS_UPDATE"]
    assert list(pages.kept.values()) != [None]


def test_a_page_without_a_form_asks_for_no_token():
    pages = PageSkeletons("page.html")
    for _ in range(2):
        request = _request()
        pages.render(request, shape={"items": ()}, slots={"title": "T", "note": ""})
        assert "CSRF_COOKIE" not in request.META


def test_plain_pages_are_rendered_as_usual_and_keep_nothing():
    pages = PageSkeletons("reads_request.html")
    page = pages.render(_request("/x/"), shape={}, slots={"title": "T"}, plain=True)
    assert page == "<h1>T</h1><a href='/x/'>here</a>" and not pages.kept


def test_a_change_of_settings_forgets_every_skeleton():
    pages = PageSkeletons("page.html")
    pages.render(_request(), shape={"items": ()}, slots={"title": "T", "note": ""})
    assert pages.kept
    with override_settings(LANGUAGE_CODE="en"):
        assert not pages.kept
