"""The household's pages: the lookup form, the bills page, and the errors in between."""

from __future__ import annotations

import datetime
import re

import pytest
from django.utils import translation

from customers.selectors import BillLine
from payments.models import Partner, Payment
from portal.views.bills_page import history_rows, kwh_chart
from tests import factories
from tests.portal.demo import household_with_history, months_ago

pytestmark = pytest.mark.django_db


def bills_url(code: str) -> str:
    return f"/bills/{code}/"


def text_of(response) -> str:
    return response.content.decode()


def test_the_home_page_asks_for_the_code_in_vietnamese_by_default(client):
    response = client.get("/")
    assert response.status_code == 200
    html = text_of(response)
    assert '<html lang="vi">' in html
    assert "Mã khách hàng" in html and 'name="code"' in html
    assert "in ở đầu mỗi hóa đơn tiền điện" in html  # where to find the code
    assert "Tra cứu hóa đơn" in html


def test_the_language_switch_turns_the_page_english_and_is_remembered(client):
    response = client.get("/?lang=en")
    assert '<html lang="en">' in text_of(response)
    assert "Customer code" in text_of(response) and "Look up bills" in text_of(response)
    assert response.cookies["django_language"].value == "en"
    again = client.get("/")
    assert '<html lang="en">' in text_of(again)
    assert 'href="?lang=vi"' in text_of(again)


def test_a_typed_code_leads_to_its_bills_page(client):
    response = client.get("/", {"code": " pa14 ht00-12345 "})
    assert response.status_code == 302
    assert response["Location"] == "/bills/PA14HT0012345/"


def test_a_malformed_code_gets_a_clear_error_with_the_form_to_retry(client):
    response = client.get("/", {"code": "PA14HT00"})
    assert response.status_code == 400
    html = text_of(response)
    assert "Mã khách hàng không hợp lệ" in html
    assert 'aria-invalid="true"' in html and 'value="PA14HT00"' in html
    assert 'role="alert"' in html


def test_an_empty_code_asks_for_one(client):
    response = client.get("/", {"code": "  "})
    assert response.status_code == 400
    assert "Vui lòng nhập mã khách hàng" in text_of(response)


def test_an_unknown_code_gets_a_not_found_page(client):
    response = client.get(bills_url("PA14HT9999999"))
    assert response.status_code == 404
    html = text_of(response)
    assert "Không tìm thấy mã khách hàng" in html and 'value="PA14HT9999999"' in html


def test_a_malformed_code_in_the_address_is_a_400_page(client):
    response = client.get(bills_url("hello<b>world"))
    assert response.status_code == 400
    html = text_of(response)
    assert "Mã khách hàng không hợp lệ" in html
    assert "<b>world" not in html  # escaped, not rendered


def test_a_loosely_typed_code_in_the_address_redirects_to_the_canonical_one(client):
    response = client.get(bills_url("pa14ht0012345"))
    assert response.status_code == 302 and response["Location"] == "/bills/PA14HT0012345/"


def test_the_bills_page_shows_what_the_household_owes(client):
    household = household_with_history(unpaid=2)
    response = client.get(bills_url(household.customer.code))
    assert response.status_code == 200
    html = text_of(response)
    assert "Trần T** H** N**" in html
    assert "***, phường Nam Hà, TP Hà Tĩnh" in html
    assert "Điện lực Thành phố Hà Tĩnh" in html
    older, newer = household.unpaid
    total = older.amount + newer.amount
    for bill in (older, newer):
        assert bill.period.strftime("%m/%Y") in html
        assert bill.due_date.strftime("%d/%m/%Y") in html
        assert f'name="bills" value="{bill.number}"' in html
    assert f"{older.amount:,} ₫".replace(",", ".") in html
    assert f"{total:,} ₫".replace(",", ".") in html
    # The older bill is past its due date, and says so; the newer one does not.
    rows = re.findall(r"<tr( class=\"is-overdue\")?>\s*<th scope=\"row\">(\d\d/\d{4})", html)
    overdue = {period for mark, period in rows if mark}
    assert older.period.strftime("%m/%Y") in overdue
    assert newer.period.strftime("%m/%Y") not in overdue
    assert "Quá hạn" in html


def test_the_bills_page_offers_vietqr_and_each_usable_gateway(client):
    household = household_with_history()
    Partner.objects.filter(code="VNPAY").update(offers_redirect=True)  # no secret: not usable
    html = text_of(client.get(bills_url(household.customer.code)))
    assert 'action="/pay/start/"' in html
    assert 'name="customer_code" value="PA14HT0012345"' in html
    assert re.search(r'name="method" value="vietqr" checked', html)
    assert 'value="redirect:SANDBOX"' in html
    assert 'value="redirect:VNPAY"' not in html
    assert "csrfmiddlewaretoken" in html


def test_the_bills_page_shows_twelve_months_of_history_and_a_chart(client):
    household = household_with_history(months=14)
    html = text_of(client.get(bills_url(household.customer.code)))
    history = html[html.index('id="history-title"') :]
    assert history.count('<th scope="row">') == 12
    assert months_ago(12).strftime("%m/%Y") in history
    assert months_ago(13).strftime("%m/%Y") not in history
    svg = history[history.index("<svg") : history.index("</svg>")]
    assert svg.count("<rect") == 12
    assert 'role="img"' in svg and "<title" in svg and "<desc" in svg
    assert "http" not in svg.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_a_household_with_nothing_to_pay_is_thanked(client):
    household = household_with_history(unpaid=0)
    html = text_of(client.get(bills_url(household.customer.code)))
    assert "Tất cả hóa đơn đã được thanh toán" in html
    assert 'action="/pay/start/"' not in html


def test_the_bills_page_never_reveals_a_phone_an_email_or_the_full_address(client):
    household = household_with_history(phone="0983 111 222", email="hong.nhung@example.vn")
    for lang in ("vi", "en"):
        html = text_of(client.get(bills_url(household.customer.code), {"lang": lang}))
        for secret in ("0983 111 222", "0983111222", "hong.nhung", "Hà Huy Tập", "Số 45", "Nhung"):
            assert secret not in html


def test_the_bills_page_takes_one_query(client, django_assert_num_queries):
    household = household_with_history()
    other = factories.CustomerFactory()
    client.get(bills_url(other.code))  # the partner list is kept from here on
    with django_assert_num_queries(1):
        response = client.get(bills_url(household.customer.code))
    assert response.status_code == 200


def test_the_bills_page_is_kept_out_of_caches_and_search_engines(client):
    household = household_with_history()
    response = client.get(bills_url(household.customer.code))
    assert "no-store" in response["Cache-Control"]
    assert "noindex" in response["X-Robots-Tag"]
    assert '<meta name="robots" content="noindex, nofollow">' in text_of(response)


def test_the_bills_page_speaks_english_when_asked(client):
    household = household_with_history()
    html = text_of(client.get(bills_url(household.customer.code), {"lang": "en"}))
    assert "Electricity bills" in html and "How would you like to pay?" in html
    assert "Overdue" in html and "The last 12 months" in html


def test_too_many_lookups_get_a_friendly_429_page(client, settings):
    settings.LOOKUP_RATE_LIMIT = "2/m"
    household = household_with_history()
    for _ in range(2):
        assert client.get(bills_url(household.customer.code)).status_code == 200
    response = client.get(bills_url(household.customer.code))
    assert response.status_code == 429
    retry_after = int(response["Retry-After"])
    assert 1 <= retry_after <= 61
    html = text_of(response)
    assert "Vui lòng đợi một chút" in html
    assert f"{retry_after} giây" in html
    assert "Trần T**" not in html


def test_the_lookup_form_itself_is_not_rate_limited(client, settings):
    settings.LOOKUP_RATE_LIMIT = "1/m"
    for _ in range(3):
        assert client.get("/").status_code == 200


def test_a_pay_start_error_shows_up_on_the_bills_page(client):
    household = household_with_history(unpaid=1)
    response = client.post(
        "/pay/start/",
        {"customer_code": household.customer.code, "method": "carrier-pigeon"},
        follow=True,
    )
    assert response.status_code == 200
    assert response.redirect_chain[-1][0] == bills_url(household.customer.code)
    assert 'class="alert alert-error"' in text_of(response)


def test_the_unknown_page_is_the_friendly_404(client):
    response = client.get("/no-such-page/")
    assert response.status_code == 404
    assert "Không tìm thấy trang" in text_of(response)


def test_the_chart_scales_bars_to_the_busiest_month():
    household_bills = [
        type("B", (), {"period": months_ago(age), "kwh": kwh, "is_paid": age > 1})()
        for age, kwh in ((3, 100), (2, 400), (1, 200))
    ]
    chart = kwh_chart(household_bills)  # type: ignore[arg-type]
    assert chart is not None
    heights = [bar.height for bar in chart.bars]
    assert heights[1] == max(heights) and heights[0] * 4 == pytest.approx(heights[1], abs=0.2)
    assert [bar.paid for bar in chart.bars] == [True, True, False]
    assert chart.highest_kwh == 400 and chart.lowest_kwh == 100
    assert kwh_chart([]) is None


def test_the_chart_and_the_history_rows_are_drawn_as_the_page_shows_them():
    bills = [
        BillLine(2, "HD2", datetime.date(2026, 1, 1), 300, 540_000, datetime.date(2026, 2, 20), "paid"),
        BillLine(1, "HD1", datetime.date(2025, 12, 1), 150, 270_000, datetime.date(2026, 1, 20), "paid"),
    ]  # fmt: skip
    chart = kwh_chart(bills)
    assert chart is not None
    assert chart.bars_svg == (
        '<g class="bar-paid"><rect x="3.0" y="86.0" width="54.0" height="64.0" rx="3"/>'
        '<text class="value" x="30.0" y="86.0" dy="-5">150</text>'
        '<text class="month" x="30.0" y="165">12</text>'
        '<text class="year" x="30.0" y="180">2025</text></g>'
        '<g class="bar-paid"><rect x="63.0" y="22.0" width="54.0" height="128.0" rx="3"/>'
        '<text class="value" x="90.0" y="22.0" dy="-5">300</text>'
        '<text class="month" x="90.0" y="165">01</text>'
        '<text class="year" x="90.0" y="180">2026</text></g>'
    )
    unpaid = [
        bills[0]._replace(period=datetime.date(2020, 1, 1), status="unpaid"),  # due long ago
        bills[0]._replace(due_date=datetime.date(2999, 1, 1), status="unpaid"),
    ]
    with translation.override("en"):
        rows = history_rows([bills[0], *unpaid])
    row = (
        "<tr>\n"
        '        <th scope="row">{}<span class="sub">300 kWh</span></th>\n'
        '        <td class="num money">540.000 ₫</td>\n'
        '        <td><span class="badge {}">{}</span></td>\n'
        "      </tr>"
    )
    assert rows == (
        row.format("01/2026", "badge-ok", "Paid")
        + row.format("01/2020", "badge-bad", "Overdue")
        + row.format("01/2026", "badge-warn", "Not paid yet")
    )


@pytest.mark.parametrize(
    "path",
    [
        "/bills/PA14HT00%0012345/",
        "/bills/%F0%9F%92%A9/",
        "/bills/" + "P" * 3000 + "/",
        "/?code=%00",
        "/?code=" + "A" * 5000,
        "/?code=%27%20OR%201%3D1--",
    ],
)
def test_hostile_input_gets_a_400_page_never_a_500(client, path):
    response = client.get(path)
    assert response.status_code == 400
    assert "Mã khách hàng không hợp lệ" in text_of(response)


def test_starting_a_payment_counts_against_the_lookup_budget(client, settings):
    settings.LOOKUP_RATE_LIMIT = "2/m"
    household = household_with_history(unpaid=1)
    assert client.get(bills_url(household.customer.code)).status_code == 200
    start = {"customer_code": household.customer.code, "method": "vietqr"}
    assert client.post("/pay/start/", start).status_code == 302
    refused = client.post("/pay/start/", start)
    assert refused.status_code == 429
    retry_after = int(refused["Retry-After"])
    html = text_of(refused)
    assert "Có nhiều yêu cầu thanh toán và tra cứu từ kết nối của bạn" in html
    assert f"Bạn có thể thử lại sau {retry_after} giây" in html
    assert Payment.objects.filter(status="pending").count() == 1


def test_starting_the_same_payment_twice_continues_to_the_same_checkout(client):
    household = household_with_history(unpaid=2)
    start = {"customer_code": household.customer.code, "method": "vietqr"}
    first = client.post("/pay/start/", start)
    second = client.post("/pay/start/", start)
    assert first.status_code == second.status_code == 302
    assert first["Location"] == second["Location"]
    assert Payment.objects.filter(status="pending").count() == 1
    assert client.get(second["Location"]).status_code == 200
