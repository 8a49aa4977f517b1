"""The VietQR checkout page as the server renders it (the browser test drives it live)."""

from __future__ import annotations

import datetime
import re

import pytest

from payments import services
from payments.models import Payment
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _receiving_account(settings):
    settings.VIETQR_BIN = "970436"
    settings.VIETQR_ACCOUNT = "0011004321987"
    settings.VIETQR_ACCOUNT_NAME = "Công ty Điện lực Hà Tĩnh"


def _payment(amounts=(452_160, 389_500)) -> Payment:
    customer, _ = customer_with_bills(unpaid=len(amounts), amounts=list(amounts))
    return services.payment_start(customer_code=customer.code, method="vietqr").payment


def _page(client, payment, lang="vi"):
    response = client.get(f"/pay/{payment.pk}/?lang={lang}")
    assert response.status_code == 200
    return response.content.decode()


def test_it_shows_the_qr_and_every_transfer_detail_with_copy_buttons(client):
    payment = _payment()
    html = _page(client, payment)
    # The amount in the address: a QR cached for an hour changes when money arrives short.
    assert f'src="/api/v1/payments/{payment.pk}/qr.svg?amount=841660"' in html
    assert f'href="/api/v1/payments/{payment.pk}/qr.png?amount=841660"' in html  # for the gallery
    for value in ("Vietcombank", "0011004321987", "CONG TY DIEN LUC HA TINH", "841.660 ₫"):
        assert value in html
    assert f'<code class="detail-value mono" data-detail="note">{payment.reference}</code>' in html
    copies = re.findall(r'data-copy="([^"]+)"', html)
    assert copies == ["0011004321987", "CONG TY DIEN LUC HA TINH", "841660", payment.reference]


def test_it_is_in_vietnamese_by_default_and_in_english_on_request(client):
    payment = _payment()
    vietnamese = _page(client, payment)
    assert "Quét mã để thanh toán" in vietnamese and "Nội dung chuyển khoản" in vietnamese
    assert "Sao chép" in vietnamese and "Đang chờ bạn chuyển khoản" in vietnamese
    english = _page(client, payment, lang="en")
    assert "Scan to pay with any banking app" in english and "Transfer note" in english


def test_the_page_has_no_inline_script_or_style(client):
    html = _page(client, _payment())
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert "style=" not in html and "<style" not in html
    assert re.search(r'<script src="/static/js/copy.js" defer>', html)


def test_the_countdown_and_the_live_status_are_ready_for_the_script(client):
    payment = _payment()
    html = _page(client, payment)
    assert f'data-status-url="/api/v1/payments/{payment.pk}/"' in html
    assert f'data-receipt-url="/receipts/{payment.pk}/"' in html
    assert f'data-expires-at="{payment.expires_at.isoformat()}"' in html
    assert 'role="timer"' in html and 'role="status"' in html


def test_an_expired_payment_no_longer_offers_its_qr(client):
    payment = _payment()
    services.payment_expire(
        payment_id=payment.pk, now=payment.expires_at + datetime.timedelta(seconds=1)
    )
    html = _page(client, payment)
    assert "qr.svg" not in html and "data-copy=" not in html
    assert "Đã hết thời gian thanh toán." in html


def test_a_settled_payment_links_to_its_receipt(client):
    payment = _payment()
    services.payment_mark_succeeded(
        payment_id=payment.pk, report=services.Report(source=services.Source.TRANSFER)
    )
    html = _page(client, payment)
    assert f'href="/receipts/{payment.pk}/"' in html and "qr.svg" not in html


def test_money_that_arrived_short_is_shown_with_a_qr_for_the_rest(client):
    from payments.channels.vietqr import payload as emv
    from payments.models import BankTransfer

    payment = _payment()
    BankTransfer.objects.create(
        source=BankTransfer.Source.WEBHOOK,
        external_id="FT-SHORT",
        account_number="0011004321987",
        amount=100_000,
        occurred_at=payment.created_at,
        status=BankTransfer.Status.WRONG_AMOUNT,
        payment=payment,
        reason="short",
    )
    html = _page(client, payment)
    assert "Chúng tôi đã nhận 100.000 ₫" in html and "còn thiếu 741.660 ₫" in html
    assert 'qr.svg?amount=741660"' in html
    copies = re.findall(r'data-copy="([^"]+)"', html)
    assert "741660" in copies and "841660" not in copies
    api = client.get(f"/api/v1/payments/{payment.pk}/").json()
    assert emv.parse_payload(api["qr"]["payload"]).amount == 741_660
    assert f'data-qr-payload="{api["qr"]["payload"]}"' in html  # the page reloads when it changes
