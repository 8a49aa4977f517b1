"""What the bills page shows, whichever way it is drawn: the text a household reads in order, the
form's fields, the escaping of what comes from billing files, and the parts rendered once per
language (common/templatetags/per_language.py)."""

from __future__ import annotations

import datetime
import html as html_lib
import re

import pytest
from django.template import Context, Template, TemplateSyntaxError
from django.utils import timezone, translation

from tests import factories
from tests.portal.demo import bill_amount, household_with_history, months_ago

pytestmark = pytest.mark.django_db


def _vnd(amount: int) -> str:
    return f"{amount:,} ₫".replace(",", ".")


def _text(page: str) -> str:
    """What a reader sees: no tags, no scripts, entities decoded, whitespace collapsed."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return " ".join(html_lib.unescape(re.sub(r"<[^>]+>", " ", page)).split())


def _in_order(text: str, parts: list[str]) -> None:
    position = 0
    for part in parts:
        found = text.find(part, position)
        assert found >= 0, (
            f"{part!r} missing after {text[max(0, position - 80) : position]!r} in {text[position:]!r}"
        )
        position = found + len(part)


def test_a_household_with_an_overdue_bill_reads_the_whole_page_in_vietnamese(client):
    household = household_with_history(unpaid=2)
    older, newer = household.unpaid
    page = client.get(f"/bills/{household.customer.code}/").content.decode()
    total = _vnd(older.amount + newer.amount)
    history = sorted(household.bills, key=lambda bill: bill.period, reverse=True)
    kwhs = [bill.kwh for bill in household.bills]
    lowest = min(household.bills, key=lambda bill: bill.kwh)
    highest = max(household.bills, key=lambda bill: bill.kwh)
    _in_order(
        _text(page),
        [
            "Hóa đơn của khách hàng PA14HT0012345 · Công ty Điện lực Hà Tĩnh",
            "Tra cứu mã khác",
            "Hóa đơn tiền điện",
            "Mã khách hàng PA14HT0012345",
            "Trần T** H** N**",
            "***, phường Nam Hà, TP Hà Tĩnh",
            "Điện lực Thành phố Hà Tĩnh",
            "2 hóa đơn chưa thanh toán, tổng cộng",
            total,
            "Có hóa đơn đã quá hạn thanh toán.",
            f"{older.period:%m/%Y} {older.kwh} kWh Mã QR và liên kết của hóa đơn này "
            f"{older.due_date:%d/%m/%Y} Quá hạn {_vnd(older.amount)}",
            f"{newer.period:%m/%Y} {newer.kwh} kWh Mã QR và liên kết của hóa đơn này "
            f"{newer.due_date:%d/%m/%Y} {_vnd(newer.amount)}",
            f"Tổng cộng {total}",
            "Chuyển khoản bằng mã VietQR",
            f"Thanh toán {total}",
            "12 kỳ gần nhất",
            f"Từ kỳ {history[-1].period:%m/%Y} đến kỳ {history[0].period:%m/%Y}: "
            f"thấp nhất {min(kwhs)} kWh (kỳ {lowest.period:%m/%Y}), "
            f"cao nhất {max(kwhs)} kWh (kỳ {highest.period:%m/%Y}).",
            f"{newer.period:%m/%Y} {newer.kwh} kWh {_vnd(newer.amount)} Chưa thanh toán",
            f"{older.period:%m/%Y} {older.kwh} kWh {_vnd(older.amount)} Quá hạn",
            *[
                f"{bill.period:%m/%Y} {bill.kwh} kWh {_vnd(bill.amount)} Đã thanh toán"
                for bill in history[2:]
            ],
            "Các cách thanh toán khác",
            "Chúng tôi không bao giờ yêu cầu bạn cung cấp số thẻ",
        ],
    )
    # The overdue row is marked as such, the other one not; each has its box and pay link.
    assert re.search(r'<tr class="is-overdue">\s*<th scope="row">' + f"{older.period:%m/%Y}", page)
    assert re.search(r"<tr>\s*<th scope=\"row\">" + f"{newer.period:%m/%Y}<input", page)
    for bill in (older, newer):
        assert f'<input type="hidden" name="bills" value="{bill.number}">' in page
        assert f'data-bill-link="{bill.number}">Mã QR và liên kết của hóa đơn này</a>' in page
    assert page.count('<span class="badge badge-ok">Đã thanh toán</span>') == 10
    assert page.count('<g class="bar-unpaid">') == 2 and page.count("<rect ") == 12


def test_the_same_page_reads_in_english_with_a_payment_in_progress(client):
    household = household_with_history(unpaid=1)
    bill = household.unpaid[0]
    started = client.post(
        "/pay/start/",
        {"customer_code": household.customer.code, "bills": [bill.number], "method": "vietqr"},
    )
    assert started.status_code == 302
    page = client.get(f"/bills/{household.customer.code}/", {"lang": "en"}).content.decode()
    _in_order(
        _text(page),
        [
            "Bills of customer PA14HT0012345 · Ha Tinh Power Company",
            "Look up another code",
            "Electricity bills",
            "You have a payment in progress",
            f"of {_vnd(bill.amount)} is waiting for your money.",
            "Continue this payment",
            "Cancel this payment",
            "1 unpaid bill, in total",
            f"{bill.period:%m/%Y} {bill.kwh} kWh This bill's QR and link",
            f"Pay {_vnd(bill.amount)}",
            "The last 12 months",
            "Paid",
            "Not paid yet",
            "Other ways to pay",
        ],
    )
    assert '<html lang="en">' in page and 'href="?lang=vi"' in page


def test_a_paid_up_household_is_thanked_and_offered_no_form(client):
    household = household_with_history(unpaid=0)
    page = client.get(f"/bills/{household.customer.code}/").content.decode()
    _in_order(_text(page), ["Tất cả hóa đơn đã được thanh toán. Xin cảm ơn!", "12 kỳ gần nhất"])
    assert "<form" not in page and "bar-unpaid" not in page and "Chưa thanh toán" not in page


def test_what_comes_from_billing_files_is_escaped(client):
    hostile = '<script>alert("x")</script>'
    customer = factories.CustomerFactory(
        code="PA14HT0099999",
        name=f"{hostile} An",
        address="<b>Số 1</b> & 'đường' \"Hà Huy Tập\", phường <i>Nam Hà</i>",
    )
    service_area = customer.service_area
    service_area.name = "<img src=x onerror=alert(1)>"
    service_area.save()
    today = timezone.localdate()
    factories.BillFactory(
        customer=customer,
        number="HD<i>1</i>&\"x'",
        period=months_ago(2),
        kwh=123,
        amount=bill_amount(123),
        due_date=today - datetime.timedelta(days=3),
    )
    for lang in ("vi", "en"):
        page = client.get(f"/bills/{customer.code}/", {"lang": lang, "q": hostile}).content.decode()
        assert "<script>" not in page and "<b>" not in page and "<i>" not in page
        assert "<img src=x" not in page
        assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
        assert "&lt;img src=x onerror=alert(1)&gt;" in page
        number = "HD&lt;i&gt;1&lt;/i&gt;&amp;&quot;x&#x27;"
        assert f'name="bills" value="{number}"' in page
        assert f'data-bill-link="{number}"' in page


# --- {% per_language %} --------------------------------------------------------------------------
PART = (
    "{% load i18n per_language %}"
    '{% per_language %}<a href="{% url "home" %}">{% translate "Paid" %}</a>{% endper_language %}'
)


def test_a_fixed_part_is_rendered_in_each_language():
    template = Template(PART)
    with translation.override("vi"):
        assert template.render(Context()) == '<a href="/">Đã thanh toán</a>'
    with translation.override("en"):
        assert template.render(Context()) == '<a href="/">Paid</a>'
    with translation.override("vi"):
        assert template.render(Context()) == '<a href="/">Đã thanh toán</a>'


@pytest.mark.parametrize(
    "inside",
    [
        "{{ name }}",
        "{% translate name %}",
        '{% translate "Paid" as paid %}',
        '{% translate "Paid"|upper %}',
        "{% blocktranslate %}Hello {{ name }}{% endblocktranslate %}",
        "{% if name %}x{% endif %}",
        "{% url 'bills' code %}",
        "{% csrf_token %}",
    ],
)
def test_a_fixed_part_refuses_anything_that_varies(inside):
    with pytest.raises(TemplateSyntaxError, match="per_language"):
        Template(
            "{% load i18n per_language %}{% per_language %}" + inside + "{% endper_language %}"
        )


# --- The page from its skeleton (common/skeleton.py) ------------------------------------------
def _skeleton_kept() -> list[object]:
    from portal.views.bills_page import skeletons

    return [skeleton for skeleton in skeletons.kept.values() if skeleton is not None]


def _one_skeleton_kept() -> bool:
    """One kind of page seen, and its skeleton kept (None marks a kind rendered as usual)."""
    from portal.views.bills_page import skeletons

    kept = list(skeletons.kept.values())
    return len(kept) == 1 and kept[0] is not None


def test_a_second_household_of_the_same_shape_is_filled_with_its_own_values(client):
    from portal.views.bills_page import skeletons

    skeletons.kept.clear()
    first = household_with_history(unpaid=1)
    second = household_with_history(
        code="PA14HT0054321", name="Lê Văn Bình", address="Số 9 đường Phan Đình Phùng", unpaid=1
    )
    client.get(f"/bills/{first.customer.code}/")
    assert _one_skeleton_kept()  # checked against Django's rendering, then kept
    page = client.get(f"/bills/{second.customer.code}/").content.decode()
    assert _one_skeleton_kept()  # the second page was of the same kind, filled from it
    bill = second.unpaid[0]
    _in_order(
        _text(page),
        [
            "Hóa đơn của khách hàng PA14HT0054321",
            "Mã khách hàng PA14HT0054321",
            "Lê V** B**",
            "1 hóa đơn chưa thanh toán, tổng cộng",
            f"Thanh toán {_vnd(bill.amount)}",
        ],
    )
    assert first.customer.code not in page and "Trần" not in page
    assert 'name="customer_code" value="PA14HT0054321"' in page
    assert "?remember=PA14HT0054321" in page


def test_each_shape_and_language_has_its_own_skeleton(client):
    from portal.views.bills_page import skeletons

    skeletons.kept.clear()
    paid_up = household_with_history(unpaid=0)
    owing = household_with_history(code="PA14HT0054321", unpaid=2)
    for _ in range(2):
        thanked = client.get(f"/bills/{paid_up.customer.code}/").content.decode()
        owed = client.get(f"/bills/{owing.customer.code}/").content.decode()
    assert "<form" not in thanked and "Xin cảm ơn!" in thanked
    assert "<form" in owed and "Có hóa đơn đã quá hạn thanh toán." in owed
    client.cookies["django_language"] = "en"
    english = client.get(f"/bills/{owing.customer.code}/").content.decode()
    assert "2 unpaid bills, in total" in english and '<html lang="en">' in english
    assert len(_skeleton_kept()) == 3


def test_pages_from_a_skeleton_are_the_pages_django_renders(monkeypatch):
    """Households of every shape, each page filled from its kind's skeleton and rendered by
    Django as usual (the token set aside: each rendering masks it anew)."""
    from django.test import RequestFactory

    from customers.selectors import customer_bills_lookup
    from portal.views import bills_page
    from portal.views.lookup import usable_gateways

    monkeypatch.setattr(bills_page.skeletons, "kept", {})
    households = [
        household_with_history(code=f"PA14HT00{index:05d}", name=name, unpaid=unpaid)
        for index, (name, unpaid) in enumerate(
            [
                ("Trần Thị Hồng Nhung", 2),
                ("Lê Văn Bình", 2),
                ("Hồ Sĩ <b>Hùng</b>", 1),
                ("Nguyễn Văn An", 0),
                ("Phạm Thị Lan", 0),
                ("Võ Minh & Con", 1),
            ]
        )
    ]
    token = re.compile(r'name="csrfmiddlewaretoken" value="[^"]+"')
    for language in ("vi", "en"):
        with translation.override(language):
            for household in households:
                page = bills_page.bills_page(
                    customer_bills_lookup(code=household.customer.code),
                    gateways=usable_gateways(),
                    in_progress=None,
                )
                request = RequestFactory().get(f"/bills/{household.customer.code}/")
                filled = bills_page.render(request, page)
                plain = bills_page.skeletons.render(
                    request, shape=page.shape, slots=page.slots, extra=page.extra, plain=True
                )
                assert token.sub("<token>", filled) == token.sub("<token>", plain)
    assert len(_skeleton_kept()) == len(bills_page.skeletons.kept) >= 4


def test_the_form_from_a_skeleton_carries_a_token_that_starts_the_payment():
    from django.test import Client

    household = household_with_history(unpaid=1)
    visitor = Client(enforce_csrf_checks=True)
    visitor.get(f"/bills/{household.customer.code}/")  # the skeleton is kept here at the latest
    visitor.cookies.clear()  # a new visitor: no cookie yet
    response = visitor.get(f"/bills/{household.customer.code}/")
    assert "csrftoken" in response.cookies
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', response.content.decode())
    assert token
    started = visitor.post(
        "/pay/start/",
        {
            "csrfmiddlewaretoken": token[1],
            "customer_code": household.customer.code,
            "bills": [household.unpaid[0].number],
            "method": "vietqr",
        },
    )
    assert started.status_code == 302


def test_a_page_without_a_form_sets_no_token_cookie(client):
    household = household_with_history(unpaid=0)
    for _ in range(2):
        response = client.get(f"/bills/{household.customer.code}/")
        assert "csrftoken" not in response.cookies


def test_what_comes_from_billing_files_is_escaped_in_a_skeletons_values_too(client):
    from portal.views.bills_page import skeletons

    skeletons.kept.clear()
    household_with_history(unpaid=1)
    client.get("/bills/PA14HT0012345/")
    hostile = household_with_history(
        code="PA14HT0099999",
        name='<script>alert("x")</script> An',
        address="<b>Số 1</b>, phường <i>Nam Hà</i>",
        unpaid=1,
    )
    page = client.get(f"/bills/{hostile.customer.code}/").content.decode()
    assert _one_skeleton_kept()
    assert "<script>" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in page
