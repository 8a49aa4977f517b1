"""The console's "apply held money to unpaid bills": choose, see what each credit gives, confirm
once; above the threshold only a supervisor confirms (the rules are `services.credit_apply`'s,
tested in tests/payments/test_credits.py)."""

from __future__ import annotations

import datetime
import re

import pytest
from django.urls import reverse

from customers.models import AuditEntry, Bill
from payments.models import BankTransfer, CreditUse, Payment
from tests.console import factories
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _threshold(settings):
    settings.CREDIT_APPROVAL_ABOVE_VND = 2_000_000


def apply_url(customer, transfer=None) -> str:
    url = reverse("console:credit-apply", args=[customer.code])
    return f"{url}?transfer={transfer.pk}" if transfer else url


def review(client, customer, *, credits, bills, reason="Chủ hộ xác nhận", transfer=None):
    data = {
        "step": "review",
        "credits": credits,
        "bills": [bill.number for bill in bills],
        "reason": reason,
    }
    if transfer:
        data["transfer"] = str(transfer.pk)
    return client.post(apply_url(customer), data)


def confirmation(response) -> dict:
    """The fields the confirmation form posts back, read from the review page."""
    text = response.content.decode()
    form = text[text.index('name="step" value="confirm"') :]
    fields: dict = {"step": "confirm"}
    for name, value in re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', form):
        if name in ("credits", "bills"):
            fields.setdefault(name, []).append(value)
        elif name != "csrfmiddlewaretoken":
            fields[name] = value
    return fields


def test_an_agent_pays_a_bill_with_a_transfer_nobody_could_match(agent_client, agent):
    customer, bills = customer_with_bills(unpaid=2, amounts=[452_160, 300_000])
    transfer = factories.transfer(amount=500_000, content="TIEN DIEN NHA ONG TUAN")

    # From the transfer's page: the agent looks the customer up, and is offered the money.
    page = agent_client.get(
        reverse("console:transfer", args=[transfer.pk]), {"q": customer.code}
    ).content.decode()
    assert apply_url(customer, transfer) in page

    choose = agent_client.get(apply_url(customer, transfer))
    assert choose.status_code == 200
    text = choose.content.decode()
    assert f'value="transfer:{transfer.pk}"' in text and "500.000" in text

    reviewed = review(
        agent_client,
        customer,
        credits=[f"transfer:{transfer.pk}"],
        bills=[bills[0]],
        transfer=transfer,
    )
    assert reviewed.status_code == 200
    text = reviewed.content.decode()
    assert "452.160" in text and "47.840" in text  # given, and still held after
    fields = confirmation(reviewed)
    assert fields["transfer"] == str(transfer.pk) and fields["key"]

    done = agent_client.post(apply_url(customer), fields)
    payment = Payment.objects.get(credits_in__transfer=transfer)
    assert done.status_code == 302
    assert done["Location"] == (
        reverse("console:customer", args=[customer.code]) + f"#p-{payment.reference}"
    )
    assert Bill.objects.get(pk=bills[0].pk).paid_by == payment
    entry = AuditEntry.objects.get(action="credit_apply")
    assert entry.actor == agent and entry.reason == "Chủ hộ xác nhận"

    # The confirmation sent again (a double click, a reload) applies nothing more.
    again = agent_client.post(apply_url(customer), fields)
    assert again.status_code == 302 and again["Location"] == done["Location"]
    assert (
        CreditUse.objects.count() == 1
        and Payment.objects.filter(credits_in__isnull=False).count() == 1
    )

    # What is left is still held, shown on the customer's page with the way to apply it.
    page = agent_client.get(reverse("console:customer", args=[customer.code])).content.decode()
    assert "Tiền đang giữ cho khách hàng này" not in page  # an unmatched transfer names nobody
    transfer.refresh_from_db()
    assert transfer.status == BankTransfer.Status.UNMATCHED
    page = agent_client.get(reverse("console:transfer", args=[transfer.pk])).content.decode()
    assert "47.840" in page


def test_the_customer_page_lists_held_money_and_the_audit_says_what_was_done(agent_client):
    refund = factories.payment_needing_refund()
    customer = refund.customer
    bill = factories.billed(customer, datetime.date(2030, 1, 1), amount=200_000)
    page = agent_client.get(reverse("console:customer", args=[customer.code])).content.decode()
    assert "Tiền đang giữ cho khách hàng này" in page
    assert apply_url(customer) in page

    reviewed = review(agent_client, customer, credits=[f"payment:{refund.pk}"], bills=[bill])
    agent_client.post(apply_url(customer), confirmation(reviewed))

    refund.refresh_from_db()
    assert refund.refund_amount == refund.amount - 200_000
    page = agent_client.get(reverse("console:customer", args=[customer.code])).content.decode()
    assert "Đã dùng tiền đang giữ để trả hóa đơn" in page


def test_above_the_threshold_an_agent_is_sent_to_a_supervisor(
    agent_client, supervisor_client, settings
):
    settings.CREDIT_APPROVAL_ABOVE_VND = 400_000
    customer, [bill] = customer_with_bills(unpaid=1, amounts=[452_160])
    transfer = factories.transfer(amount=452_160)
    credits = [f"transfer:{transfer.pk}"]

    reviewed = review(agent_client, customer, credits=credits, bills=[bill], transfer=transfer)
    text = reviewed.content.decode()
    assert "chỉ do trưởng nhóm dùng để trả" in text
    assert 'name="step" value="confirm"' not in text
    # Posting the confirmation by hand changes nothing either.
    forged = {
        "step": "confirm",
        "credits": credits,
        "bills": [bill.number],
        "reason": "x",
        "transfer": str(transfer.pk),
        "key": "forged",
    }
    response = agent_client.post(apply_url(customer), forged, follow=True)
    assert "Số tiền này cần trưởng nhóm thực hiện" in response.content.decode()
    assert Bill.objects.get(pk=bill.pk).status == Bill.Status.UNPAID

    reviewed = review(supervisor_client, customer, credits=credits, bills=[bill], transfer=transfer)
    supervisor_client.post(apply_url(customer), confirmation(reviewed))
    assert Bill.objects.get(pk=bill.pk).status == Bill.Status.PAID


def test_too_little_money_is_said_on_the_form(agent_client):
    customer, bills = customer_with_bills(unpaid=2, amounts=[452_160, 300_000])
    transfer = factories.transfer(amount=500_000)
    response = review(
        agent_client,
        customer,
        credits=[f"transfer:{transfer.pk}"],
        bills=bills,
        transfer=transfer,
    )
    assert response.status_code == 400
    assert "ít hơn tiền hóa đơn" in response.content.decode()


def test_finance_cannot_apply_money(finance_client):
    customer, _ = customer_with_bills(unpaid=1)
    assert finance_client.get(apply_url(customer)).status_code == 403
