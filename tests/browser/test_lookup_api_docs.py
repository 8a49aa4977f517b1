"""The API's docs UI at /api/docs/ works under the portal's Content-Security-Policy."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_docs_ui_shows_the_lookup_operation_from_this_site_only(page, live_server):
    urls: list[str] = []
    blocked: list[str] = []
    page.on("request", lambda request: urls.append(request.url))

    def on_console(message: Any) -> None:
        if "Content Security Policy" in message.text and "script" in message.text:
            blocked.append(message.text)

    page.on("console", on_console)
    page.goto(live_server.url + "/api/docs/", wait_until="networkidle")
    expect(page.get_by_text("/api/v1/customers/{code}/bills/", exact=True)).to_be_visible()
    expect(page.get_by_text("Bills of a customer", exact=True)).to_be_visible()
    assert blocked == []
    assert [url for url in urls if not url.startswith((live_server.url, "data:"))] == []
