"""Remembering a code on this device: kept in the browser only, shown on the home page with what
is due, and forgotten with one tap."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.conftest import axe_violations, screenshot
from tests.factories import customer_with_bills

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _generous_rate_limit(settings: Any) -> None:
    settings.LOOKUP_RATE_LIMIT = "1000/m"


def test_a_remembered_code_shows_on_the_home_page_with_its_total_until_forgotten(page, live_server):
    customer, _bills = customer_with_bills(amounts=[452_160, 310_000], name="Lê Văn Cường")
    other, _paid = customer_with_bills(unpaid=0)
    page.goto(f"{live_server.url}/")
    expect(page.locator("[data-remembered]")).to_be_hidden()

    for code in (other.code, customer.code):
        page.goto(f"{live_server.url}/bills/{code}/")
        page.get_by_role("link", name="Ghi nhớ mã này trên thiết bị này").click()
        # Stored, and the address cleaned: a reload or a bookmark stores nothing again.
        expect(page).to_have_url(f"{live_server.url}/")

    # Nothing of it went to the server: no cookie carries the codes.
    assert not any(customer.code in cookie["value"] for cookie in page.context.cookies())
    page.goto(f"{live_server.url}/")
    remembered = page.locator("[data-remembered]")
    expect(remembered).to_be_visible()
    first = remembered.locator(f'li[data-code="{customer.code}"]')
    expect(first).to_contain_text("762.160 ₫")
    expect(first).to_contain_text("Lê V** C**")  # masked, as the bills page shows it
    expect(remembered.locator(f'li[data-code="{other.code}"]')).to_contain_text("đã thanh toán hết")
    assert axe_violations(page) == []
    screenshot(page, "home-remembered-codes")

    first.get_by_role("button", name="Bỏ ghi nhớ").click()
    expect(remembered.locator(f'li[data-code="{customer.code}"]')).to_have_count(0)
    page.reload()
    expect(remembered.locator("li")).to_have_count(1)
    # A link from elsewhere cannot plant a code: only the code's own bills page remembers it.
    planted, _ = customer_with_bills(unpaid=1)
    page.goto(f"{live_server.url}/?remember={planted.code}")
    expect(remembered.locator(f'li[data-code="{planted.code}"]')).to_have_count(0)
    expect(remembered.locator("li")).to_have_count(1)
    first_link = remembered.locator("a").first
    first_link.click()
    expect(page).to_have_url(f"{live_server.url}/bills/{other.code}/")
