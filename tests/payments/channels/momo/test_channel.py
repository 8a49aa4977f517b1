"""MoMo's create call, status query and browser return, against the sandbox's MoMo over HTTP."""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlencode, urlsplit

import pytest
from django.db import transaction

from payments import poller, services
from payments.channels import registry
from payments.channels.common.pages import PartnerUnavailable
from payments.channels.momo import protocol as momo
from payments.models import InboundMessage, Payment
from sandbox import momo as sandbox_momo
from sandbox.models import WalletOrder
from tests.factories import customer_with_bills
from tests.sandbox.wallets import (
    MOMO,
    configure_wallets,
    momo_result,
    wallet_payment,
    wallets,  # noqa: F401 - fixture
    wallets_on_live_server,  # noqa: F401 - fixture
)

Status = Payment.Status
transactional = pytest.mark.django_db(transaction=True)


def _payment(amounts: list[int] | None = None) -> Payment:
    customer, _bills = customer_with_bills(amounts=amounts or [452_160, 310_000])
    return services.payment_start(
        customer_code=customer.code, method=Payment.Method.REDIRECT, partner_code="MOMO"
    ).payment


def _start(payment: Payment, *, locale: str = "vi"):
    checkout = registry.start(payment, client_ip="203.0.113.9", locale=locale, phone=True)
    payment.refresh_from_db()
    return checkout


# --- The create call ------------------------------------------------------------------------
@transactional
def test_the_create_call_opens_one_order_with_momos_page_and_app_link(wallets_on_live_server):  # noqa: F811
    payment = _payment()
    checkout = _start(payment)
    base = wallets_on_live_server.url
    assert not checkout.direct
    assert checkout.pay_url.startswith(f"{base}/sandbox/momo/pay/")
    assert checkout.app_url.startswith(f"{base}/sandbox/momo/app/")
    order = WalletOrder.objects.get()
    assert (order.wallet, order.order_id, order.amount) == ("momo", payment.reference, 762_160)
    assert order.notify_url == f"{base}/callbacks/momo/ipn/"
    assert order.redirect_url == f"{base}/pay/return/MOMO/"
    assert payment.provider_data["redirect_url"] == checkout.pay_url
    # Starting it again (a second click, the household coming back) asks for no other order.
    assert _start(payment) == checkout
    assert WalletOrder.objects.count() == 1


@transactional
def test_the_same_create_request_again_gets_the_same_order(wallets_on_live_server):  # noqa: F811
    """What a retry after a lost answer sends: MoMo repeats its answer to the same requestId."""
    payment = _payment()
    _start(payment)
    payment.provider_data = {"momo_request_id": payment.provider_data["momo_request_id"]}
    payment.save(update_fields=["provider_data"])
    again = _start(payment)
    assert WalletOrder.objects.count() == 1
    assert again.pay_url.endswith(f"/sandbox/momo/pay/{WalletOrder.objects.get().token}/")


@transactional
def test_another_request_for_the_same_order_is_refused_and_the_payment_left_open(
    wallets_on_live_server,  # noqa: F811
):
    payment = _payment()
    _start(payment)
    payment.provider_data = {"momo_request_id": "another-request"}
    payment.save(update_fields=["provider_data"])
    with pytest.raises(PartnerUnavailable) as refused:
        _start(payment)
    assert not refused.value.refused  # 41, duplicate orderId: an order exists
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and WalletOrder.objects.count() == 1


@transactional
def test_a_refusal_that_opened_no_order_fails_the_payment(wallets_on_live_server):  # noqa: F811
    payment = _payment(amounts=[60_000_000])  # above MoMo's 50,000,000 VND: resultCode 22
    with pytest.raises(PartnerUnavailable) as refused:
        _start(payment)
    assert refused.value.refused
    payment.refresh_from_db()
    assert payment.status == Status.FAILED
    assert "resultCode 22" in payment.events.get(to_status=Status.FAILED).detail["reason"]


@transactional
def test_no_answer_leaves_the_payment_open_with_its_request_id_kept(wallets, settings):  # noqa: F811
    settings.GATEWAY_HTTP_TIMEOUT = (0.5, 0.5)
    payment = _payment()  # MoMo's API is out of reach (port 9)
    with pytest.raises(PartnerUnavailable) as unavailable:
        _start(payment)
    assert not unavailable.value.refused
    payment.refresh_from_db()
    assert payment.status == Status.PENDING
    assert len(payment.provider_data["momo_request_id"]) == 32
    assert "redirect_url" not in payment.provider_data


def test_the_create_call_is_refused_inside_a_transaction(transactional_db, wallets):  # noqa: F811
    payment = _payment()
    with transaction.atomic(), pytest.raises(RuntimeError, match="transaction"):
        _start(payment)


class _Recorder(BaseHTTPRequestHandler):
    """Answers after `delays` (one per request, then none) with `answer(body)`."""

    delays: list[float] = []
    received: list[dict] = []
    answer = staticmethod(lambda body: {})

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
        type(self).received.append(body)
        delay = type(self).delays.pop(0) if type(self).delays else 0
        time.sleep(delay)
        payload = json.dumps(type(self).answer(body)).encode()
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.end_headers()
            self.wfile.write(payload)
        except OSError:
            pass  # the client gave up waiting

    def log_message(self, *args):
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, type[_Recorder]]]:
    handler = type("MoMo", (_Recorder,), {"received": [], "delays": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def _momo_at(settings, url: str) -> None:
    settings.PARTNER_CREDENTIALS = {
        **settings.PARTNER_CREDENTIALS,
        "MOMO": {**settings.PARTNER_CREDENTIALS["MOMO"], "api_url": url},
    }


@transactional
def test_a_create_call_that_timed_out_is_sent_again_naming_the_same_order(
    wallets,  # noqa: F811
    settings,
    recorder,
):
    url, handler = recorder
    _momo_at(settings, url)
    settings.GATEWAY_HTTP_TIMEOUT = (1.0, 0.5)
    handler.delays = [1.5]  # the first answer comes too late
    handler.answer = staticmethod(
        lambda body: {
            "partnerCode": body["partnerCode"],
            "orderId": body["orderId"],
            "requestId": body["requestId"],
            "amount": body["amount"],
            "resultCode": 0,
            "payUrl": "https://test-payment.momo.vn/v2/gateway/pay?t=abc",
            "deeplink": "momo://app?action=payWithApp&sid=abc",
        }
    )
    payment = _payment()
    checkout = _start(payment)
    first, second = handler.received
    assert first == second  # the same request: the same requestId, orderId and signature
    assert first["orderId"] == payment.reference and first["requestType"] == "captureWallet"
    assert checkout.app_url == "momo://app?action=payWithApp&sid=abc"
    assert urlsplit(checkout.pay_url).netloc == "test-payment.momo.vn"


@transactional
@pytest.mark.parametrize(
    ("links", "expected"),
    [
        ({"payUrl": "javascript:alert(1)", "deeplink": "momo://ok"}, ("", "momo://ok")),
        (
            {"payUrl": "https://ok.example/p", "deeplink": "data:text/html,x"},
            ("https://ok.example/p", ""),
        ),
    ],
)
def test_links_from_momos_answer_are_only_ever_web_or_momo_links(
    wallets,  # noqa: F811
    settings,
    recorder,
    links,
    expected,
):
    url, handler = recorder
    _momo_at(settings, url)
    handler.answer = staticmethod(
        lambda body: {"orderId": body["orderId"], "resultCode": 0, **links}
    )
    checkout = _start(_payment())
    assert (checkout.pay_url, checkout.app_url) == expected


# --- The status query -------------------------------------------------------------------------
def _decide(payment: Payment, *, approve: bool, code: int = 1006) -> WalletOrder:
    order = WalletOrder.objects.get(order_id=payment.reference)
    return sandbox_momo.decide(
        order_id=order.pk, approve=approve, decline_code=code, ipn_mode="drop"
    )


@transactional
def test_a_payment_approved_in_momo_with_the_ipn_lost_settles_on_poll(wallets_on_live_server):  # noqa: F811
    payment = _payment()
    _start(payment)
    order = _decide(payment, approve=True)
    assert poller.payment_poll(payment_id=payment.pk) == "succeeded:applied"
    payment.refresh_from_db()
    assert payment.status == Status.SUCCEEDED and payment.provider_txn_id == order.trans_id
    message = InboundMessage.objects.get(kind=InboundMessage.Kind.QUERY)
    # MoMo's API answered our question over HTTPS: nothing signed to check, its subject checked.
    assert message.signature_valid is None and message.outcome == "succeeded:applied"
    assert json.loads(message.body)["orderId"] == payment.reference
    assert poller.payment_poll(payment_id=payment.pk) == "not_pollable"


@transactional
@pytest.mark.parametrize(
    ("approve", "outcome", "status"),
    [(False, "failed:applied", Status.FAILED), (None, "pending", Status.PENDING)],
)
def test_a_decline_fails_the_payment_and_an_open_order_is_asked_again(
    wallets_on_live_server,  # noqa: F811
    approve,
    outcome,
    status,
):
    payment = _payment()
    _start(payment)
    if approve is not None:
        _decide(payment, approve=approve)
    assert poller.payment_poll(payment_id=payment.pk) == outcome
    payment.refresh_from_db()
    assert payment.status == status


@transactional
def test_an_order_momo_never_saw_is_not_failed(wallets_on_live_server):  # noqa: F811
    payment = _payment()
    assert poller.payment_poll(payment_id=payment.pk) == "nothing_yet"  # resultCode 42
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and payment.next_poll_at is not None


@transactional
def test_the_query_is_signed_and_an_answer_about_another_merchant_changes_nothing(
    wallets,  # noqa: F811
    settings,
    recorder,
):
    url, handler = recorder
    _momo_at(settings, url)
    handler.answer = staticmethod(
        lambda body: {"partnerCode": "SOMEONEELSE", "orderId": body["orderId"], "resultCode": 0}
    )
    payment = wallet_payment("MOMO")
    assert poller.payment_poll(payment_id=payment.pk) == "wrong_payment"
    (request,) = handler.received
    config = momo.Config(MOMO["partner_code"], MOMO["access_key"], MOMO["secret"], url)
    assert request["signature"] == momo.sign(request, momo.QUERY_FIELDS, config)
    assert request["orderId"] == payment.reference
    payment.refresh_from_db()
    assert payment.status == Status.PENDING


# --- The return -------------------------------------------------------------------------------
def _return(client, values: dict, partner: str = "MOMO"):
    return client.get(f"/pay/return/{partner}/?{urlencode({k: str(v) for k, v in values.items()})}")


@pytest.mark.django_db
def test_a_signed_success_shows_the_page_without_settling_anything(client, wallets):  # noqa: F811
    payment = wallet_payment("MOMO")
    response = _return(client, momo_result(payment))
    assert response.status_code == 302 and response["Location"] == f"/pay/{payment.pk}/?bank=ok"
    payment.refresh_from_db()
    assert payment.status == Status.PENDING and not InboundMessage.objects.exists()


@pytest.mark.django_db
def test_a_signed_decline_says_why_in_the_households_words(client, wallets):  # noqa: F811
    payment = wallet_payment("MOMO")
    response = _return(client, momo_result(payment, result_code=1006))
    assert response["Location"] == f"/pay/{payment.pk}/?bank=declined&reason=1006"
    page = client.get(response["Location"], HTTP_COOKIE="django_language=en")
    assert (
        "Ví MoMo did not complete the payment: you declined the payment." in page.content.decode()
    )
    payment.refresh_from_db()
    assert payment.status == Status.PENDING


@pytest.mark.django_db
def test_a_tampered_return_or_an_unknown_order_is_refused(client, wallets):  # noqa: F811
    payment = wallet_payment("MOMO")
    assert (
        _return(client, {**momo_result(payment), "resultCode": "0", "amount": "1"}).status_code
        == 400
    )
    assert _return(client, momo_result(payment), partner="ZALOPAY").status_code == 400
    payment.reference = "EVNNOTOURS22"
    assert _return(client, momo_result(payment)).status_code == 404


@pytest.mark.django_db
def test_without_complete_credentials_momo_is_not_offered(settings):
    configure_wallets(settings)
    from payments.models import Partner

    momo_partner = Partner.objects.get(code="MOMO")
    assert registry.offered(momo_partner)
    settings.PARTNER_CREDENTIALS = {
        **settings.PARTNER_CREDENTIALS,
        "MOMO": {"secret": MOMO["secret"]},  # a collection partner's secret only
    }
    assert momo_partner.is_usable and not registry.offered(momo_partner)
    settings.PARTNER_CREDENTIALS = {
        c: v for c, v in settings.PARTNER_CREDENTIALS.items() if c != "MOMO"
    }
    assert not registry.offered(momo_partner)


def test_nothing_listens_where_the_unreachable_api_points():
    with socket.socket() as sock:
        assert sock.connect_ex(("127.0.0.1", 9)) != 0
