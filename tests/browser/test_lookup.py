"""A household on a phone: look up a code, see the bills, switch language, mistype a code.

Also the page budget (under 60 KB on first load, nothing from another host), axe-core with no
WCAG 2.1 AA violation in either language, and the screenshots reviewers look at.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from payments.models import Payment
from tests.conftest import DESKTOP, PHONE, axe_violations, screenshot
from tests.portal.demo import household_with_history

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

CODE = "PA14HT0012345"
PAGE_BUDGET = 60 * 1024


@pytest.fixture(autouse=True)
def _generous_rate_limit(settings: Any) -> None:
    # These tests load many pages from one address; the limit itself is tested on its own.
    settings.LOOKUP_RATE_LIMIT = "1000/m"


def vnd(amount: int) -> str:
    return f"{amount:,} ₫".replace(",", ".")


def test_a_household_looks_up_its_bills_and_switches_to_english(page, live_server):
    household = household_with_history(unpaid=2)
    total = sum(bill.amount for bill in household.unpaid)
    page.goto(live_server.url + "/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Tra cứu và thanh toán tiền điện")
    page.get_by_label("Mã khách hàng", exact=True).fill("pa14 ht00 12345")
    page.get_by_role("button", name="Tra cứu hóa đơn").click()

    expect(page).to_have_url(f"{live_server.url}/bills/{CODE}/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Hóa đơn tiền điện")
    expect(page.locator("#total-due")).to_have_text(vnd(total))
    expect(page.get_by_text("Trần T** H** N**")).to_be_visible()
    unpaid_rows = page.locator(".unpaid-table tbody tr")
    expect(unpaid_rows).to_have_count(2)
    expect(unpaid_rows.first.get_by_text("Quá hạn")).to_be_visible()
    expect(page.get_by_role("radio", name=re.compile("VietQR"))).to_be_checked()
    expect(page.get_by_role("button", name=f"Thanh toán {vnd(total)}")).to_be_visible()
    expect(page.get_by_role("img", name="Điện năng tiêu thụ theo tháng (kWh)")).to_be_visible()

    page.get_by_role("link", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.get_by_role("heading", level=1)).to_have_text("Electricity bills")
    expect(page.get_by_role("button", name=f"Pay {vnd(total)}")).to_be_visible()
    # The choice is remembered on the next page, without ?lang= in the address.
    page.get_by_role("link", name="Look up another code").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Look up and pay your electricity bill"
    )
    page.get_by_role("link", name="Tiếng Việt").click()
    expect(page.locator("html")).to_have_attribute("lang", "vi")


def test_a_wrong_code_gets_a_clear_answer_and_a_second_chance(page, live_server):
    household_with_history()
    page.goto(live_server.url + "/")
    field = page.get_by_label("Mã khách hàng", exact=True)
    field.fill("PA14HT9999999")
    field.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Không tìm thấy mã khách hàng")
    expect(page.get_by_role("alert")).to_contain_text("Vui lòng đối chiếu")
    field = page.get_by_label("Mã khách hàng", exact=True)
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_value("PA14HT9999999")

    field.fill("12345")
    field.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text("Mã khách hàng không hợp lệ")

    field = page.get_by_label("Mã khách hàng", exact=True)
    field.fill(CODE)
    field.press("Enter")
    expect(page).to_have_url(f"{live_server.url}/bills/{CODE}/")


def test_the_pay_button_starts_the_chosen_payment(page, live_server):
    household = household_with_history(unpaid=2)
    page.goto(f"{live_server.url}/bills/{CODE}/")
    page.get_by_role("button", name=re.compile("^Thanh toán")).click()
    page.wait_for_url(re.compile(r"/pay/[0-9a-f-]{36}/$"))
    payment = Payment.objects.get(pk=page.url.rstrip("/").rsplit("/", 1)[-1])
    assert payment.method == Payment.Method.VIETQR
    assert sorted(line.bill.number for line in payment.lines.all()) == sorted(
        bill.number for bill in household.unpaid
    )


@pytest.mark.parametrize("lang", ["vi", "en"])
def test_the_public_pages_have_no_accessibility_violations(page, live_server, lang):
    household_with_history()
    pages = {
        "home": "/",
        "bills": f"/bills/{CODE}/",
        "unknown code": "/bills/PA14HT9999999/",
        "malformed code": "/?code=12345",
        "missing page": "/no-such-page/",
    }
    page.goto(f"{live_server.url}/?lang={lang}")
    for name, path in pages.items():
        page.goto(live_server.url + path)
        expect(page.locator("html")).to_have_attribute("lang", lang)
        assert axe_violations(page) == [], f"{name} ({lang})"
        # Mobile first: nothing sticks out sideways on a phone.
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{name} ({lang}) is {width}px wide"
    # The bills page with its history table opened, and on a desktop screen.
    page.set_viewport_size(DESKTOP)
    page.goto(f"{live_server.url}/bills/{CODE}/")
    page.locator("details.history-details summary").click()
    assert axe_violations(page) == [], f"bills, history open ({lang})"


def test_the_rate_limit_page_is_accessible_too(page, live_server, settings):
    settings.LOOKUP_RATE_LIMIT = "1/m"
    page.goto(f"{live_server.url}/bills/PA14HT9999999/")
    response = page.goto(f"{live_server.url}/bills/PA14HT9999999/")
    assert response is not None and response.status == 429
    assert int(response.headers["retry-after"]) >= 1
    expect(page.get_by_role("heading", level=1)).to_have_text("Vui lòng đợi một chút")
    assert axe_violations(page) == []


def test_the_bills_page_is_light_and_needs_no_other_host(page, live_server):
    household_with_history(months=12)
    requests: list[Any] = []
    page.on("requestfinished", lambda request: requests.append(request))
    page.on("requestfailed", lambda request: requests.append(request))
    page.goto(f"{live_server.url}/bills/{CODE}/", wait_until="networkidle")
    assert requests, "nothing was loaded"
    foreign = [r.url for r in requests if not r.url.startswith((live_server.url, "data:"))]
    assert foreign == []
    transferred = 0
    for request in requests:
        sizes = request.sizes()
        transferred += sizes["responseBodySize"] + sizes["responseHeadersSize"]
    print(f"bills page first load: {len(requests)} requests, {transferred} bytes")
    assert transferred < PAGE_BUDGET
    # Nothing is pulled in by script: the page works without any.
    assert not [r for r in requests if r.resource_type == "script"]


def test_screenshots_for_reviewers(page, live_server):
    household_with_history(unpaid=2)
    for width_name, viewport in (("phone", PHONE), ("desktop", DESKTOP)):
        page.set_viewport_size(viewport)
        page.goto(f"{live_server.url}/?lang=vi")
        screenshot(page, f"home-{width_name}")
        page.goto(f"{live_server.url}/bills/{CODE}/")
        expect(page.locator("#total-due")).to_be_visible()
        screenshot(page, f"bills-{width_name}")
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server.url}/bills/{CODE}/?lang=en")
    screenshot(page, "bills-phone-en")
    page.goto(f"{live_server.url}/bills/PA14HT9999999/?lang=vi")
    screenshot(page, "home-phone-unknown-code")
