"""The console in a real browser at desk width: sign in, the home with its queues, a customer's
whole story, cash at the counter with a printed receipt, and the managers' dashboard.

Each page is checked with axe-core (WCAG 2.1 AA) and photographed for reviewers under
docs/screenshots/console-*.png. The province comes from `seed_demo` (console/demo.py),
with one showcase customer whose history has every kind of event.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
from django.core.management import call_command
from django.utils import timezone
from playwright.sync_api import expect

from customers.models import Bill, Customer, ServiceArea
from payments import services
from payments.models import BankTransfer, InboundMessage, Partner
from tests.conftest import DESKTOP, axe_violations, screenshot
from tests.console import factories
from tests.factories import BillFactory, CustomerFactory, customer_with_bills, staff_user

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

PASSWORD = "S3cure-pass-2026"


def showcase_customer() -> Customer:
    """A household of the seeded province with a telling history: August was paid on a bank's
    page after an abandoned VietQR attempt (confirmed by the bank's IPN, kept raw in the inbox);
    September and October are still unpaid."""
    periods = sorted(Bill.objects.values_list("period", flat=True).distinct())
    customer = CustomerFactory(
        code="PA14HT9000123",
        name="Nguyễn Văn Anh",
        address="Số 27, ngõ 5 đường Phan Đình Phùng, phường Bắc Hà, TP Hà Tĩnh",
        phone="0915276318",
        email="anh.nguyen@example.vn",
        service_area=ServiceArea.objects.get(code="PA14HT"),
    )
    bills = [
        BillFactory(customer=customer, period=period, kwh=kwh, amount=amount)
        for period, kwh, amount in zip(
            periods, (376, 291, 214), (1_056_924, 772_042, 522_569), strict=False
        )
    ]
    attempt = factories.vietqr_payment(customer, bill_numbers=[bills[0].number])
    services.payment_cancel(
        payment_id=attempt.id, report=services.Report(source=services.Source.API)
    )
    payment = factories.redirect_payment(customer, bill_numbers=[bills[0].number])
    message = InboundMessage.objects.create(
        partner=Partner.objects.get(code="SANDBOX"),
        kind=InboundMessage.Kind.IPN,
        dedupe_key=f"ipn:SANDBOX:{payment.reference}",
        headers={"Content-Type": "application/x-www-form-urlencoded", "User-Agent": "sandbox"},
        body=(
            f"vnp_Amount={payment.amount * 100}&vnp_BankCode=NCB&vnp_ResponseCode=00"
            f"&vnp_TmnCode=EVNHT001&vnp_TransactionNo=14422574&vnp_TransactionStatus=00"
            f"&vnp_TxnRef={payment.reference}&vnp_SecureHash=649982421beb4225…"
        ),
        signature_valid=True,
        payment=payment,
        processed_at=timezone.now(),
        outcome="applied",
    )
    services.payment_mark_succeeded(
        payment_id=payment.id,
        report=services.Report(source=services.Source.IPN, message=message),
        amount=payment.amount,
        provider_txn_id="14422574",
    )
    return customer


def work_in_the_queues() -> None:
    factories.transfer(amount=412_000, content="IBFT TIEN DIEN THANG 10 NHA ONG TUAN")
    factories.transfer(amount=99_000, status=BankTransfer.Status.WRONG_AMOUNT)
    # A code the seeded province never gives (the factory's numbering may, after other tests).
    factories.payment_needing_refund(customer_with_bills(unpaid=1, code="PA14HT9000999")[0])


@pytest.fixture
def province(live_server: Any) -> dict[str, Any]:
    call_command("seed_demo", customers=1500, months=3, seed=2026, stdout=open("/dev/null", "w"))  # noqa: SIM115
    work_in_the_queues()
    return {"customer": showcase_customer()}


def sign_in(page: Any, base: str, username: str) -> None:
    page.goto(base + "/console/")
    expect(page.get_by_role("heading", level=1)).to_have_text("Đăng nhập trang nghiệp vụ")
    assert_accessible(page)
    page.get_by_label("Tên đăng nhập").fill(username)
    page.get_by_label("Mật khẩu").fill(PASSWORD)
    page.get_by_role("button", name="Đăng nhập").click()


def assert_accessible(page: Any) -> None:
    assert axe_violations(page) == []


def test_an_agent_and_a_manager_work_through_the_console(page, live_server, province, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    staff_user("supervisor", username="tp.nguyen")
    customer = province["customer"]
    page.set_viewport_size(DESKTOP)
    sign_in(page, live_server.url, "tp.nguyen")

    # Home: the queues with their counts.
    expect(page.get_by_role("heading", level=1)).to_have_text("Trang nghiệp vụ")
    expect(page.locator(".queue-tile.has-work")).to_have_count(3)
    assert_accessible(page)
    screenshot(page, "console-home")

    # Search without accents, open the customer.
    page.get_by_label("Tìm khách hàng").fill("0915 276 318")
    page.get_by_role("button", name="Tìm kiếm").click()
    expect(page.get_by_role("heading", name=re.compile("Tìm thấy"))).to_be_visible()
    page.get_by_role("link", name=customer.code).click()
    expect(page.get_by_role("heading", level=1)).to_contain_text(customer.name)
    page.locator("details").first.evaluate("d => d.open = true")
    page.locator("details.messages").first.evaluate("d => d.open = true")
    expect(page.get_by_text("vnp_TransactionNo=14422574", exact=False)).to_be_visible()
    assert_accessible(page)
    screenshot(page, "console-customer")

    # Cash at the counter for what is still unpaid, then the printed receipt.
    page.get_by_role("link", name="Thu tiền mặt").click()
    page.get_by_label("Ghi chú").fill("Chủ hộ nộp tại quầy")
    page.get_by_role("button", name="Tiếp tục").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Xác nhận thu tiền mặt")
    assert_accessible(page)
    page.get_by_role("button", name=re.compile("Đã nhận tiền mặt")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Biên nhận thanh toán tiền điện")
    expect(page.get_by_role("button", name="In biên nhận")).to_be_visible()
    assert_accessible(page)
    page.emulate_media(media="print")
    expect(page.locator(".console-nav")).to_be_hidden()
    page.emulate_media(media="screen")
    assert not customer.bills.filter(status=Bill.Status.UNPAID).exists()

    # The managers' dashboard of the last complete month.
    page.get_by_role("link", name="Thanh toán không tiền mặt").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Khách hàng thanh toán không dùng tiền mặt"
    )
    expect(
        page.get_by_role("img", name=re.compile("Tỷ lệ thanh toán không dùng tiền mặt theo đơn vị"))
    ).to_be_visible()
    expect(page.locator(".rate-chart rect")).to_have_count(13)  # 12 areas and the province
    # The trend: one column per billing month there is (three in the seeded province).
    expect(
        page.get_by_role("img", name=re.compile("không dùng tiền mặt 12 tháng gần nhất: toàn tỉnh"))
    ).to_be_visible()
    expect(page.locator(".trend-chart rect")).to_have_count(3)
    page.get_by_label("Xu hướng và kênh thanh toán của").select_option(label="Điện lực Hồng Lĩnh")
    page.get_by_role("button", name="Xem").click()
    expect(
        page.get_by_role("heading", name="12 tháng gần nhất: Điện lực Hồng Lĩnh")
    ).to_be_visible()
    assert_accessible(page)
    screenshot(page, "console-dashboard")

    page.get_by_role("link", name="English").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Customers paying without cash")
    assert_accessible(page)


def test_an_agent_puts_two_short_transfers_onto_a_bill(page, live_server, settings):
    """A household sent 300.000 of a 452.160 bill with the payment's reference, then the rest
    with a note nobody could read. The agent finds the second transfer in its queue, recognises
    the customer, and pays the bill with both."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    staff_user("agent", username="gdv.tran")
    customer = CustomerFactory(code="PA14HT9000456", name="Trần Thị Bình")
    bill = BillFactory(customer=customer, amount=452_160)
    started = factories.vietqr_payment(customer)
    first = factories.transfer(
        amount=300_000,
        content=f"TIEN DIEN {started.reference}",
        status=BankTransfer.Status.WRONG_AMOUNT,
    )
    BankTransfer.objects.filter(pk=first.pk).update(payment=started)
    factories.transfer(amount=152_160, content="CK PHAN CON LAI TIEN DIEN THANG 11")
    page.set_viewport_size(DESKTOP)
    sign_in(page, live_server.url, "gdv.tran")

    page.get_by_role("link", name=re.compile("Chuyển khoản chưa đối soát được")).click()
    page.get_by_role("link", name=re.compile("Mở")).first.click()
    page.get_by_label("Mã giao dịch hoặc mã khách hàng").fill(customer.code)
    page.get_by_role("button", name="Tra cứu").click()
    page.get_by_role("link", name=re.compile("Dùng khoản tiền này trả hóa đơn")).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Dùng tiền đang giữ để trả hóa đơn chưa thanh toán"
    )
    page.get_by_label(re.compile("Chuyển khoản FT")).first.check()
    page.get_by_label(re.compile("Chuyển khoản FT")).last.check()
    page.get_by_label("Lý do dùng khoản tiền này trả các hóa đơn").fill(
        "Chủ hộ gọi điện: chuyển hai lần cho hóa đơn tháng này"
    )
    assert_accessible(page)
    page.get_by_role("button", name="Tiếp tục").click()

    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Xác nhận dùng tiền đang giữ trả hóa đơn"
    )
    expect(page.get_by_role("table").last).to_contain_text("152.160")
    assert_accessible(page)
    screenshot(page, "console-held-money")
    page.get_by_role("button", name=re.compile("Trả hóa đơn bằng tiền đang giữ")).click()

    expect(page.get_by_role("heading", level=1)).to_contain_text(customer.name)
    expect(page.get_by_text("Đã dùng tiền đang giữ để trả hóa đơn: giao dịch")).to_be_visible()
    assert_accessible(page)
    bill.refresh_from_db()
    assert bill.status == Bill.Status.PAID
    assert not BankTransfer.objects.exclude(status=BankTransfer.Status.APPLIED).exists()

    # What happened reads in Vietnamese: the states, the event's details, the transfer's note.
    article = page.locator(f"#p-{bill.paid_by.reference}")
    article.locator("details.timeline").evaluate("d => d.open = true")
    expect(article).to_contain_text("đang chờ → thành công")
    expect(article).to_contain_text(f"Tiền đang giữ đã dùng: {first.external_id}: 300.000 ₫")
    page.goto(f"{live_server.url}/console/transfers/{first.pk}/")
    expect(page.locator(".facts")).to_contain_text(
        "Nhân viên đã dùng 300.000 đồng để trả hóa đơn qua giao dịch"
    )
    expect(page.locator(".facts")).to_contain_text("nhân viên đã dùng để trả hóa đơn")
    assert_accessible(page)
