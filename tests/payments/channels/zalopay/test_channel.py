"""ZaloPay's create call, status query and browser return, against the sandbox's ZaloPay over
HTTP."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlencode

import pytest

from payments import poller, services
from payments.channels import registry
from payments.channels.common.pages import PartnerUnavailable
from payments.channels.zalopay import protocol as zalopay
from payments.models import InboundMessage, Payment
from sandbox import zalopay as sandbox_zalopay
from sandbox.models import WalletOrder
from tests.factories import customer_with_bills
from tests.sandbox.wallets import (
    ZALOPAY,
    wallet_payment,
    wallets,  # noqa: F401 - fixture
    wallets_on_live_server,  # noqa: F401 - fixture
)

Status = Payment.Status
transactional = pytest.mark.django_db(transaction=True)


def _payment(amounts: list[int] | None = None) -> Payment:
    customer, _bills = customer_with_bills(amounts=amounts or [452_160, 310_000])
    return services.payment_start(
        customer_code=customer.code, method=Payment.Method.REDIRECT, partner_code="ZALOPAY"
    ).payment


def _start(payment: Payment, *, phone: bool = False):
    checkout = registry.start(payment, client_ip="203.0.113.9", locale="vi", phone=phone)
    payment.refresh_from_db()
    return checkout


@transactional
def test_the_create_call_opens_one_order_whose_link_opens_the_app_or_the_web_page(
    wallets_on_live_server,  # noqa: F811
):
    payment = _payment()
    checkout = _start(payment)
    base = wallets_on_live_server.url
    assert not checkout.direct
    assert checkout.pay_url.startswith(f"{base}/sandbox/zalopay/openinapp?order=")
    assert checkout.app_url == checkout.pay_url  # ZaloPay gives one link for both
    order = WalletOrder.objects.get()
    assert order.order_id == payment.provider_data["zalopay_app_trans_id"]
    assert zalopay.reference_of(order.order_id) == payment.reference
    assert (order.amount, order.notify_url) == (762_160, f"{base}/callbacks/zalopay/callback/")
    assert order.redirect_url == f"{base}/pay/return/ZALOPAY/"
    assert _start(payment) == checkout and WalletOrder.objects.count() == 1


@transactional
def test_a_create_repeated_after_a_lost_answer_never_opens_a_second_order(
    wallets_on_live_server,  # noqa: F811
):
    payment = _payment()
    _start(payment)
    # The answer was lost: only the order id is known when the household tries again.
    payment.provider_data = {
        key: value for key, value in payment.provider_data.items() if key.startswith("zalopay_")
    }
    payment.save(update_fields=["provider_data"])
    with pytest.raises(PartnerUnavailable) as unavailable:
        _start(payment)
    assert not unavailable.value.refused  # ZaloPay has the order: the payment stays open
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and WalletOrder.objects.count() == 1


class _Recorder(BaseHTTPRequestHandler):
    delays: list[float] = []
    received: list[dict] = []
    answer = staticmethod(lambda body: {})

    def do_POST(self):
        raw = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
        body = dict(parse_qsl(raw, keep_blank_values=True))  # ZaloPay's calls are form-encoded
        type(self).received.append(body)
        time.sleep(type(self).delays.pop(0) if type(self).delays else 0)
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(json.dumps(type(self).answer(body)).encode())
        except OSError:
            pass

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("ZaloPay", (_Recorder,), {"received": [], "delays": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _zalopay_at(settings, url: str) -> None:
    settings.PARTNER_CREDENTIALS = {
        **settings.PARTNER_CREDENTIALS,
        "ZALOPAY": {**settings.PARTNER_CREDENTIALS["ZALOPAY"], "api_url": url},
    }


@transactional
def test_a_create_call_that_timed_out_is_sent_again_naming_the_same_order(
    wallets,  # noqa: F811
    settings,
    recorder,
):
    url, handler = recorder
    _zalopay_at(settings, url)
    settings.GATEWAY_HTTP_TIMEOUT = (1.0, 0.5)
    handler.delays = [1.5]
    handler.answer = staticmethod(
        lambda body: {
            "return_code": 1,
            "order_url": "https://qcgateway.zalopay.vn/openinapp?order=x",
        }
    )
    payment = _payment()
    checkout = _start(payment, phone=True)
    first, second = handler.received
    assert first == second  # the same order id, app_time and MAC
    assert zalopay.reference_of(first["app_trans_id"]) == payment.reference
    assert json.loads(first["embed_data"]) == {
        "redirecturl": "http://127.0.0.1:8000/pay/return/ZALOPAY/"
    }
    assert 300 <= int(first["expire_duration_seconds"]) <= 900
    assert checkout.app_url == "https://qcgateway.zalopay.vn/openinapp?order=x"


@transactional
@pytest.mark.parametrize(
    ("answer", "refused"),
    [
        ({"return_code": 2, "sub_return_code": -402}, True),  # our MAC refused: no order
        ({"return_code": 2, "sub_return_code": -68}, False),  # a duplicate: an order exists
        ({"return_code": 2}, False),
        ({"return_code": 1, "order_url": "javascript:alert(1)"}, False),
    ],
)
def test_what_zalopay_refused_decides_whether_the_payment_fails(
    wallets,  # noqa: F811
    settings,
    recorder,
    answer,
    refused,
):
    url, handler = recorder
    _zalopay_at(settings, url)
    handler.answer = staticmethod(lambda body: answer)
    payment = _payment()
    with pytest.raises(PartnerUnavailable) as unavailable:
        _start(payment)
    assert unavailable.value.refused is refused
    payment.refresh_from_db()
    assert payment.status == (Status.FAILED if refused else Status.PENDING)


# --- The status query -------------------------------------------------------------------------
def _decide(payment: Payment, *, approve: bool) -> WalletOrder:
    order = WalletOrder.objects.get(order_id=payment.provider_data["zalopay_app_trans_id"])
    return sandbox_zalopay.decide(order_id=order.pk, approve=approve, ipn_mode="drop")


@transactional
@pytest.mark.parametrize(
    ("approve", "outcome", "status"),
    [
        (True, "succeeded:applied", Status.SUCCEEDED),
        (False, "failed:applied", Status.FAILED),
        (None, "pending", Status.PENDING),
    ],
)
def test_the_status_query_settles_fails_or_waits(
    wallets_on_live_server,  # noqa: F811
    approve,
    outcome,
    status,
):
    payment = _payment()
    _start(payment)
    order = _decide(payment, approve=approve) if approve is not None else None
    assert poller.payment_poll(payment_id=payment.pk) == outcome
    payment.refresh_from_db()
    assert payment.status == status
    message = InboundMessage.objects.get(kind=InboundMessage.Kind.QUERY)
    stored = json.loads(message.body)
    # The question is kept with the answer: ZaloPay's answer names no order.
    assert stored["asked"] == {
        "app_id": "2553",
        "app_trans_id": order.order_id if order else stored["asked"]["app_trans_id"],
    }
    assert message.signature_valid is None
    if approve:
        assert payment.provider_txn_id == order.trans_id


@transactional
def test_an_order_zalopay_never_saw_is_not_failed(wallets_on_live_server):  # noqa: F811
    payment = wallet_payment("ZALOPAY")  # its order id, but no order at the sandbox
    assert poller.payment_poll(payment_id=payment.pk) == "nothing_yet"
    payment.refresh_from_db()
    assert payment.status == Status.PENDING


@transactional
def test_the_query_is_signed_and_a_refusal_of_our_mac_never_fails_the_payment(
    wallets,  # noqa: F811
    settings,
    recorder,
):
    url, handler = recorder
    _zalopay_at(settings, url)
    handler.answer = staticmethod(lambda body: {"return_code": 2, "sub_return_code": -402})
    payment = wallet_payment("ZALOPAY")
    assert poller.payment_poll(payment_id=payment.pk) == "nothing_yet"
    (request,) = handler.received
    trans_id = payment.provider_data["zalopay_app_trans_id"]
    config = zalopay.Config(ZALOPAY["app_id"], ZALOPAY["key1"], ZALOPAY["key2"], url)
    assert request == zalopay.query_request(config, app_trans_id=trans_id)
    payment.refresh_from_db()
    assert payment.status == Status.PENDING


# --- The return -------------------------------------------------------------------------------
def _return_params(payment: Payment, *, status: str = "1", key2: str | None = None) -> dict:
    params = {
        "appid": ZALOPAY["app_id"],
        "apptransid": payment.provider_data["zalopay_app_trans_id"],
        "pmcid": "38",
        "bankcode": "",
        "amount": str(payment.amount),
        "discountamount": "0",
        "status": status,
    }
    params["checksum"] = sandbox_zalopay.mac(
        key2 or ZALOPAY["key2"], "|".join(params[name] for name in sandbox_zalopay.RETURN_MAC)
    )
    return params


@pytest.mark.django_db
def test_a_paid_return_shows_the_page_without_settling_anything(client, wallets):  # noqa: F811
    payment = wallet_payment("ZALOPAY")
    response = client.get(f"/pay/return/ZALOPAY/?{urlencode(_return_params(payment))}")
    assert response.status_code == 302 and response["Location"] == f"/pay/{payment.pk}/?bank=ok"
    payment.refresh_from_db()
    assert payment.status == Status.PENDING


@pytest.mark.django_db
def test_any_other_status_is_not_called_a_decline(client, wallets):  # noqa: F811
    """ZaloPay's other return codes are not in our facts: the page waits for its word."""
    payment = wallet_payment("ZALOPAY")
    response = client.get(f"/pay/return/ZALOPAY/?{urlencode(_return_params(payment, status='-1'))}")
    assert response.status_code == 302 and response["Location"] == f"/pay/{payment.pk}/"


@pytest.mark.django_db
def test_a_return_with_a_bad_checksum_is_refused(client, wallets):  # noqa: F811
    payment = wallet_payment("ZALOPAY")
    forged = _return_params(payment, key2=ZALOPAY["key1"])
    assert client.get(f"/pay/return/ZALOPAY/?{urlencode(forged)}").status_code == 400
    tampered = {**_return_params(payment), "amount": "1"}
    assert client.get(f"/pay/return/ZALOPAY/?{urlencode(tampered)}").status_code == 400
