"""GET /pay/return/{partner}/: verified, shown, never trusted to settle by itself."""

from __future__ import annotations

from urllib.parse import urlencode

import pytest
import requests
from django.conf import settings as django_settings

from customers.models import Bill
from payments.models import Payment
from sandbox import bank
from sandbox.models import BankTransaction
from tests.conftest import wait_until
from tests.sandbox.support import (
    bank_message,
    bank_on_live_server,  # noqa: F401 - fixture
    bank_worker,  # noqa: F401 - fixture
    redirect_payment,
)

Status = Payment.Status


def _return(client, params, partner="SANDBOX", **extra):
    return client.get(f"/pay/return/{partner}/?{urlencode(params)}", **extra)


@pytest.fixture
def english(client):
    client.cookies[django_settings.LANGUAGE_COOKIE_NAME] = "en"
    return client


@pytest.mark.django_db
def test_a_signed_success_shows_the_payment_page_without_marking_anything_paid(english):
    payment = redirect_payment()
    response = _return(english, bank_message(payment))
    assert response.status_code == 302 and response["Location"] == f"/pay/{payment.pk}/?bank=ok"
    payment.refresh_from_db()
    assert payment.status == Status.PENDING
    assert not Bill.objects.filter(customer=payment.customer, status=Bill.Status.PAID).exists()
    page = english.get(response["Location"])
    assert page.status_code == 200
    text = page.content.decode()
    assert "Your bank says the payment went through" in text
    assert 'data-status="pending"' in text
    # One message for the state, and only what makes sense in it: no waiting for a payment
    # the bank says is made, no clock, no way back to the bank, no cancel.
    for contradiction in (
        "Waiting for your payment",
        "data-expires-at",
        "Continue to the bank",
        "Cancel this payment",
    ):
        assert contradiction not in text, contradiction


@pytest.mark.django_db
def test_after_a_decline_the_page_says_why_and_offers_another_try_without_a_spinner(english):
    payment = redirect_payment()
    response = _return(english, bank_message(payment, response_code="51", status="02"))
    text = english.get(response["Location"]).content.decode()
    assert "the account balance is not enough" in text and 'role="alert"' in text
    assert "Try again at the bank" in text and "Choose another way to pay" in text
    assert "Waiting for your payment" not in text and "data-expires-at" not in text


@pytest.mark.django_db
def test_what_the_bank_said_is_not_shown_once_the_payment_is_settled(english):
    from payments import services

    payment = redirect_payment()
    services.payment_mark_succeeded(payment_id=payment.pk, report=services.Report(source="ipn"))
    text = english.get(f"/pay/{payment.pk}/?bank=declined&reason=51").content.decode()
    assert "did not complete" not in text and "Payment received" in text


@pytest.mark.django_db
def test_a_signed_decline_says_why_and_still_waits_for_the_banks_confirmation(english):
    payment = redirect_payment()
    response = _return(english, bank_message(payment, response_code="51", status="02"))
    payment.refresh_from_db()
    assert payment.status == Status.PENDING  # only the IPN or the query API may fail it
    page = english.get(response["Location"]).content.decode()
    assert "Your bank did not complete the payment: the account balance is not enough." in page


@pytest.mark.django_db
def test_the_reason_is_shown_in_vietnamese_by_default(client):
    payment = redirect_payment()
    response = _return(client, bank_message(payment, response_code="24", status="02"))
    page = client.get(response["Location"]).content.decode()
    assert "Ngân hàng chưa hoàn tất thanh toán: bạn đã hủy giao dịch." in page


@pytest.mark.django_db
@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: {**p, "vnp_ResponseCode": "00", "vnp_Amount": "100"},
        lambda p: {**p, "vnp_SecureHash": "0" * 128},
        lambda p: {k: v for k, v in p.items() if k != "vnp_SecureHash"},
    ],
)
def test_it_rejects_a_tampered_return_with_a_clear_page(english, tamper):
    payment = redirect_payment()
    response = _return(english, tamper(bank_message(payment)))
    assert response.status_code == 400
    assert "We could not verify this answer from the bank" in response.content.decode()
    payment.refresh_from_db()
    assert payment.status == Status.PENDING


@pytest.mark.django_db
def test_a_return_for_another_terminal_or_partner_is_refused(english):
    payment = redirect_payment()
    assert _return(english, bank_message(payment, tmn_code="OTHERTMN")).status_code == 400
    assert _return(english, bank_message(payment), partner="VCB").status_code == 400
    assert _return(english, bank_message(payment), partner="NOSUCH").status_code == 400


@pytest.mark.django_db
def test_a_signed_return_for_an_unknown_payment_says_so(english):
    payment = redirect_payment()
    payment.reference = "EVNUNKNOWN22"
    response = _return(english, bank_message(payment))
    assert response.status_code == 404
    assert "We could not find this payment" in response.content.decode()


@pytest.mark.django_db
def test_a_return_for_a_settled_payment_just_shows_it(english):
    from payments import services

    payment = redirect_payment()
    services.payment_mark_succeeded(payment_id=payment.pk, report=services.Report(source="ipn"))
    response = _return(english, bank_message(payment, response_code="24", status="02"))
    assert response["Location"] == f"/pay/{payment.pk}/"
    page = english.get(response["Location"], follow=True).content.decode()
    assert "did not complete" not in page


@pytest.mark.django_db
def test_the_pay_page_hands_over_to_the_bank_while_pending(english):
    payment = redirect_payment()
    page = english.get(f"/pay/{payment.pk}/").content.decode()
    assert "Continue to the bank" in page
    assert payment.provider_data["redirect_url"].replace("&", "&amp;") in page


@pytest.mark.celery_worker
@pytest.mark.django_db(transaction=True)
def test_the_return_asks_the_bank_and_the_worker_settles_what_the_bank_confirms(
    bank_worker,  # noqa: F811
):
    payment = redirect_payment()
    requests.get(payment.provider_data["redirect_url"], timeout=10).raise_for_status()
    tx = BankTransaction.objects.get(txn_ref=payment.reference)
    tx = bank.transaction_decide(
        transaction_id=tx.pk, approve=True, ipn_mode=BankTransaction.IpnMode.DROP
    )
    # The browser comes back; the IPN never does. The return's status check settles it.
    back = requests.get(
        bank.return_redirect_url(tx, bank.merchant().secret), timeout=10, allow_redirects=False
    )
    assert back.status_code == 302
    assert back.headers["Location"] == f"/pay/{payment.pk}/?bank=ok"
    wait_until(lambda: Payment.objects.get(pk=payment.pk).status == Status.SUCCEEDED, 30)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    [
        "/pay/return/SANDBOX/",
        "/pay/return/SAND%00BOX/?vnp_TxnRef=x",
        "/pay/return/SANDBOX/?vnp_TxnRef=%00&vnp_SecureHash=%FF",
    ],
)
def test_junk_returns_get_the_clear_page_not_an_error(english, path):
    response = english.get(path)
    assert response.status_code == 400
    assert "We could not verify this answer from the bank" in response.content.decode()


@pytest.mark.django_db
def test_a_replayed_return_asks_the_bank_once_not_once_per_replay(
    english, django_capture_on_commit_callbacks
):
    payment = redirect_payment()
    message = bank_message(payment)
    with django_capture_on_commit_callbacks() as asked:
        for _replay in range(5):
            assert _return(english, message).status_code == 302
    assert len(asked) == 1
    other = redirect_payment()
    with django_capture_on_commit_callbacks() as asked:
        _return(english, bank_message(other))
    assert len(asked) == 1  # the limit is per payment
