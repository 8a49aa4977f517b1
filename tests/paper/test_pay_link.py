"""The signed pay link of a bill: one bill, no code to type, nothing else of the household's."""

from __future__ import annotations

import datetime

import pytest
from django.utils import timezone

from customers import paylinks
from customers.models import Bill
from payments import references, services
from payments.channels.vietqr import image as vietqr
from payments.channels.vietqr.payload import parse_payload
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db


def _bill():
    customer, bills = customer_with_bills(unpaid=2, name="Nguyễn Văn An")
    return bills[0]


def _path(bill):
    return paylinks.pay_path(bill_id=bill.pk, due_date=bill.due_date)


def test_a_token_reads_back_only_as_signed_and_only_until_weeks_after_the_due_date(settings):
    due = datetime.date(2026, 12, 20)
    token = paylinks.pay_link_token(bill_id=42, due_date=due)
    assert paylinks.bill_id_of_token(token, today=due) == 42
    last = due + settings.PAY_LINK_VALID_AFTER_DUE
    assert paylinks.bill_id_of_token(token, today=last) == 42
    assert paylinks.bill_id_of_token(token, today=last + datetime.timedelta(days=1)) is None
    other_bill = token.replace("16-", "17-", 1) if token.startswith("16-") else "2" + token[1:]
    assert paylinks.bill_id_of_token(other_bill, today=due) is None
    longer = token.split("-")
    longer[1] = format(int(longer[1], 36) + 100, "x")
    assert paylinks.bill_id_of_token("-".join(longer), today=due) is None
    settings.PAY_LINK_KEY = "another-key-" + "x" * 40
    assert paylinks.bill_id_of_token(token, today=due) is None


def test_the_link_opens_that_bills_checkout_with_the_full_name_and_its_qr(client):
    bill = _bill()
    response = client.get(_path(bill))
    assert response.status_code == 200
    page = response.content.decode()
    assert "Nguyễn Văn An" in page and bill.number in page
    assert references.bill_reference(bill.pk) in page
    assert response["X-Robots-Tag"] == "noindex, nofollow"
    qr = client.get(_path(bill) + "qr.svg")
    assert qr.status_code == 200 and qr["Content-Type"] == "image/svg+xml"
    payload = parse_payload(vietqr.bill_qr_payload(bill_id=bill.pk, amount=bill.amount))
    assert payload.amount == bill.amount and payload.purpose == references.bill_reference(bill.pk)
    # The other unpaid bill of the same customer is not on this page.
    other = Bill.objects.filter(customer=bill.customer).exclude(pk=bill.pk).get()
    assert other.number not in page


def test_a_tampered_or_expired_link_is_a_plain_not_found(client, settings):
    bill = _bill()
    path = _path(bill)
    assert client.get(path[:-3] + ("A" if path[-3] != "A" else "B") + "/").status_code == 404
    bill.due_date = (
        timezone.localdate() - settings.PAY_LINK_VALID_AFTER_DUE - datetime.timedelta(days=1)
    )
    expired = paylinks.pay_path(bill_id=bill.pk, due_date=bill.due_date)
    response = client.get(expired)
    assert response.status_code == 404 and "Nguyễn" not in response.content.decode()


def test_a_paid_bill_says_so_and_offers_nothing_to_pay(client):
    bill = _bill()
    payment = services.payment_start(
        customer_code=bill.customer.code, method="vietqr", bill_numbers=[bill.number]
    ).payment
    services.payment_mark_succeeded(
        payment_id=payment.pk, report=services.Report(source=services.Source.SYSTEM)
    )
    response = client.get(_path(bill))
    assert response.status_code == 200
    assert 'data-field="bill-status"' in response.content.decode()
    assert "qr.svg" not in response.content.decode()
    assert client.get(_path(bill) + "qr.svg").status_code == 404


def test_the_bills_page_links_each_unpaid_bill(client):
    bill = _bill()
    page = client.get(f"/bills/{bill.customer.code}/").content.decode()
    for unpaid in Bill.objects.filter(customer=bill.customer):
        assert f'data-bill-link="{unpaid.number}"' in page
        assert _path(unpaid) in page


def test_without_a_key_there_are_no_links(client, settings):
    bill = _bill()
    path = _path(bill)
    settings.PAY_LINK_KEY = ""
    assert client.get(path).status_code == 404
    assert "data-bill-link" not in client.get(f"/bills/{bill.customer.code}/").content.decode()
