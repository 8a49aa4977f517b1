"""Bank redirect payments over the VNPay 2.1.0 protocol: the Django side of `vnpay.protocol`,
one of the payment-page channels of `payments.channels.registry`.

Three ways a bank tells us how a redirect payment ended, trusted differently:
- the IPN (server to server, signed): stored in the inbox and answered at once by
  `ipn_receive` (two queries), then read by `read` and applied by an applier through the shared
  `reports.apply_reports`;
- the return URL (the customer's browser, signed): shown, never applied; it asks for a status
  check (`return_verify`, `payments.poller.payment_request_poll`);
- the status query `querydr` (`ask`: we ask, the bank answers signed): `payments.poller` stores
  the answer, and the applier applies it like an IPN.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.urls import reverse

from payments import inbox, notes, services, states
from payments.channels.common import http, receiving, reports
from payments.channels.common.pages import (
    Checkout,
    InvalidReturn,
    NotConfigured,
    ReturnReport,
    order_description,
    remember,
)
from payments.channels.common.receiving import PARTNER_CODE, safe_key
from payments.channels.vnpay import protocol as vnpay
from payments.inbox import Applied, Claimed
from payments.models import InboundMessage, Partner, Payment

logger = logging.getLogger(__name__)

Status = Payment.Status
Result = vnpay.Result
Outcome = InboundMessage.Outcome
# Starting a payment only signs the pay URL.
START_CALLS_PARTNER = False


PROTOCOL = Partner.Protocol.VNPAY


class GatewayNotConfigured(NotConfigured):
    pass


def configured(partner: Partner) -> bool:
    """Whether the partner's credentials let it take payments on its page."""
    try:
        gateway_config(partner)
    except GatewayNotConfigured:
        return False
    return True


def gateway_config(partner: Partner) -> vnpay.GatewayConfig:
    credentials = partner.credentials
    missing = [name for name in ("secret", "tmn_code", "pay_url") if not credentials.get(name)]
    if missing:
        raise GatewayNotConfigured(f"{partner.code}: set PARTNER_{partner.code}_* ({missing})")
    return vnpay.GatewayConfig(
        tmn_code=credentials["tmn_code"],
        secret=credentials["secret"],
        pay_url=credentials["pay_url"],
        api_url=credentials.get("api_url", ""),
    )


order_info = order_description


def payment_start_redirect(payment: Payment, *, client_ip: str, locale: str) -> str:
    """Sign the pay URL for a pending redirect payment and remember what querydr must repeat."""
    if payment.partner is None or payment.expires_at is None:
        raise GatewayNotConfigured("a redirect payment needs a partner and an expiry time")
    config = gateway_config(payment.partner)
    return_url = settings.PORTAL_BASE_URL + reverse("pay-return", args=[payment.partner.code])
    url = vnpay.build_pay_url(
        config,
        txn_ref=payment.reference,
        amount=payment.amount,
        order_info=order_info(payment),
        return_url=return_url,
        ip_address=client_ip or "127.0.0.1",
        created_at=payment.created_at,
        expires_at=payment.expires_at,
        locale="en" if locale == "en" else "vn",
    )
    remember(
        payment,
        vnp_CreateDate=vnpay.format_time(payment.created_at),
        vnp_OrderInfo=order_info(payment),
        redirect_url=url,
    )
    return url


def start(payment: Payment, *, client_ip: str, locale: str, phone: bool = False) -> Checkout:
    """The bank's page, signed: the household's browser goes straight there."""
    return Checkout(pay_url=payment_start_redirect(payment, client_ip=client_ip, locale=locale))


# --- Shared reading of a bank's report ----------------------------------------------------------
def gateway_partner(code: str) -> Partner | None:
    """The VNPay redirect partner named in a callback URL, or None (also for junk in the URL)."""
    code = code.strip().upper()
    if not PARTNER_CODE.fullmatch(code):
        return None
    return Partner.objects.filter(
        code=code, offers_redirect=True, redirect_protocol=PROTOCOL
    ).first()


def _terminal(partner: Partner) -> str:
    return partner.credentials.get("tmn_code", "")


def _payment_for(partner: Partner, reference: str) -> Payment | None:
    if not reference:
        return None
    return Payment.objects.filter(
        reference=reference, partner=partner, method=Payment.Method.REDIRECT
    ).first()


def _amount_of(params: Mapping[str, Any]) -> int | None:
    try:
        return vnpay.parse_amount(str(params.get("vnp_Amount", "")))
    except ValueError:
        return None


def _paid_at(text: str) -> datetime | None:
    try:
        return vnpay.parse_time(text) if text else None
    except ValueError:
        return None


def _reason(response_code: str) -> str:
    meaning = vnpay.RESPONSE_CODES.get(response_code, "unknown code")
    return f"vnp_ResponseCode {response_code}: {meaning}"


# --- IPN ----------------------------------------------------------------------------------------
@dataclass(frozen=True)
class IpnAnswer:
    code: str
    message: str

    def as_json(self) -> dict[str, str]:
        return {"RspCode": self.code, "Message": self.message}


def _answer(pair: tuple[str, str]) -> IpnAnswer:
    return IpnAnswer(*pair)


def ipn_dedupe_key(partner_code: str, params: Mapping[str, str]) -> str:
    """One key per bank transaction outcome, so the bank's retries of it are stored once."""
    reference = str(params.get("vnp_TxnRef", ""))
    # The terminal too: a validly signed message naming another terminal must not take the
    # genuine one's key (it is answered 01 and kept, and the genuine one must still apply).
    identity = inbox.fingerprint(
        reference,
        str(params.get("vnp_TmnCode", "")),
        str(params.get("vnp_TransactionNo", "")),
        str(params.get("vnp_ResponseCode", "")),
        str(params.get("vnp_TransactionStatus", "")),
        str(params.get("vnp_Amount", "")),
    )
    return f"ipn:{safe_key(partner_code, 20)}:{safe_key(reference, 40)}:{identity[:40]}"


def ipn_invalid_dedupe_key(partner_code: str, params: Mapping[str, str], raw_query: str) -> str:
    """A key of its own for a message whose signature failed, built from that signature.

    It can never equal the key of a genuine message (different prefix), so a forged message
    stored first cannot make the real one look like a repeat.
    """
    signature = safe_key(str(params.get("vnp_SecureHash", "")) or "none", 128)
    return f"ipn-bad:{safe_key(partner_code, 20)}:{signature}:{inbox.fingerprint(raw_query)[:32]}"


def ipn_receive(
    *,
    partner_code: str,
    params: Mapping[str, str],
    raw_query: str,
    headers: Mapping[str, str] | None = None,
    remote_addr: str = "",
) -> IpnAnswer:
    """Store a gateway notification, decide the protocol's answer and wake an applier.

    Checks run in the protocol's order: signature (97), terminal, order exists (01), amount
    (04), still pending (02), else 00. Every message is stored, with its answer, before it is
    answered: two queries for a genuine notification (its payment with its partner, then the
    inbox row), and no task of its own. Of several identical messages only the one that stored
    the row first is answered 00; the others, and any message about a payment that is already
    final, get 02. The answer is computed each time, never replayed, so nothing a forger sends
    can change what the genuine message is told. Database errors propagate: the view answers
    99 so the bank retries.
    """
    code = partner_code.strip().upper()
    payment = receiving.payment_named(
        str(params.get("vnp_TxnRef", "")), protocol=PROTOCOL, code=code
    )
    partner = payment.partner if payment is not None else gateway_partner(code)
    kept_headers = inbox.keep_headers(headers or {}, remote_addr)
    partner_id = partner.pk if partner else None
    if partner is None or not vnpay.verify(params, partner.secret):
        refusal = _answer(vnpay.RSP_INVALID_SIGNATURE)
        inbox.inbox_refuse(
            kind=InboundMessage.Kind.IPN,
            dedupe_key=ipn_invalid_dedupe_key(code, params, raw_query),
            body=raw_query,
            address=remote_addr,
            refusal=Applied(
                Outcome.INVALID_SIGNATURE, "the signature did not verify; nothing applied"
            ),
            partner_id=partner_id,
            headers=kept_headers,
            signature_valid=False,
            response=(200, refusal.as_json()),
        )
        return refusal
    if not partner.address_allowed(remote_addr):
        # A genuine signature from an address we do not know: keep it, apply nothing, and let
        # the bank retry (99) while someone updates PARTNER_<CODE>_ALLOWED_IPS.
        logger.warning("IPN for %s from unlisted address %s", partner.code, remote_addr)
        inbox.inbox_refuse(
            kind=InboundMessage.Kind.IPN,
            dedupe_key=ipn_invalid_dedupe_key(code, params, raw_query + "|" + remote_addr),
            body=raw_query,
            address=remote_addr,
            refusal=Applied(Outcome.ADDRESS_NOT_ALLOWED, remote_addr),
            partner_id=partner_id,
            headers=kept_headers,
            signature_valid=True,
        )
        return _answer(vnpay.RSP_UNKNOWN_ERROR)

    answer: IpnAnswer | None = None
    # Nothing to apply without a payment of ours: such a row is stored already processed.
    unmatched: Applied | None = None
    if params.get("vnp_TmnCode") != _terminal(partner):
        payment = None
        answer = _answer(vnpay.RSP_WRONG_TERMINAL)
        unmatched = Applied(Outcome.WRONG_TERMINAL, str(params.get("vnp_TmnCode", "")))
    elif payment is None:
        answer = _answer(vnpay.RSP_ORDER_NOT_FOUND)
        unmatched = Applied(Outcome.ORDER_NOT_FOUND, str(params.get("vnp_TxnRef", "")))
    elif _amount_of(params) != payment.amount:
        answer = _answer(vnpay.RSP_INVALID_AMOUNT)
    elif payment.status not in states.SETTLEABLE:
        answer = _answer(vnpay.RSP_ALREADY_CONFIRMED)
    first = answer or _answer(vnpay.RSP_CONFIRM_SUCCESS)
    message_id = inbox.inbox_receive(
        kind=InboundMessage.Kind.IPN,
        dedupe_key=ipn_dedupe_key(code, params),
        body=raw_query,
        partner_id=partner_id,
        headers=kept_headers,
        signature_valid=True,
        payment_id=payment.pk if payment is not None else None,
        processed=unmatched,
        response=(200, first.as_json()),
    )
    if message_id is None:
        # The unique dedupe key decided who was first: that request alone answers 00.
        return answer or _answer(vnpay.RSP_ALREADY_CONFIRMED)
    if unmatched is None:
        # A broker outage only delays this: the inbox sweeper wakes an applier again.
        inbox.inbox_wake()
    return first


# --- Applying notifications and status answers (the gateway channel of the applier) -----------
def _ipn_params(message: Claimed) -> dict[str, str]:
    return {
        name: value
        for name, value in parse_qsl(message.body, keep_blank_values=True)
        if name.startswith("vnp_")
    }


def _report(
    *,
    values: Mapping[str, Any],
    result: Result | None,
    report: services.Report,
    transaction_no: str,
    reason: str,
    teller: str,
) -> reports.Report:
    return reports.Report(
        reference=str(values.get("vnp_TxnRef", "")),
        amount=_amount_of(values),
        result=result,
        report=report,
        transaction_no=transaction_no,
        paid_at=_paid_at(str(values.get("vnp_PayDate", "") or "")),
        reason=reason,
        settled=_reason("00"),
        teller=teller,
        amount_note=notes.GATEWAY_AMOUNT,
        reported_amount=str(values.get("vnp_Amount")),
        check_note=notes.GATEWAY_CHECK,
    )


def _read_ipn(message: Claimed, partner: Partner | None) -> reports.Report | Applied:
    params = _ipn_params(message)
    if partner is None or not vnpay.verify(params, partner.secret):
        return Applied(Outcome.INVALID_SIGNATURE, "the signature did not verify")
    if params.get("vnp_TmnCode") != _terminal(partner):
        return Applied(Outcome.WRONG_TERMINAL, str(params.get("vnp_TmnCode", "")))
    response_code = params.get("vnp_ResponseCode", "")
    status = params.get("vnp_TransactionStatus", "")
    transaction_no = params.get("vnp_TransactionNo", "")
    return _report(
        values=params,
        result=vnpay.transaction_result(response_code, status),
        report=services.Report(
            source=services.Source.IPN,
            message=message,
            detail={
                "vnp_ResponseCode": response_code,
                "vnp_TransactionStatus": status,
                "vnp_TransactionNo": transaction_no,
            },
        ),
        transaction_no=transaction_no,
        reason=f"{_reason(response_code)}, vnp_TransactionStatus {status}",
        teller=notes.THE_BANK,
    )


def _read_query_answer(message: Claimed, partner: Partner | None) -> reports.Report | Applied:
    try:
        body = json.loads(message.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Applied(Outcome.UNREADABLE)
    if partner is None or not vnpay.verify_query_response(body, partner.secret):
        return Applied(Outcome.INVALID_SIGNATURE)
    if str(body.get("vnp_TmnCode", "")) != _terminal(partner):
        return Applied(Outcome.WRONG_PAYMENT, "the answer is about another terminal")
    transaction_no = str(body.get("vnp_TransactionNo", "") or "")
    status = str(body.get("vnp_TransactionStatus", ""))
    result = vnpay.query_result(body)
    reason = f"querydr: vnp_TransactionStatus {status}"
    if result is None:
        # 91 and friends: the bank has nothing to say about it (yet). Never a failure.
        reason = f"vnp_ResponseCode {body.get('vnp_ResponseCode', '')}: " + str(
            body.get("vnp_Message", "")
        )
    return _report(
        values=body,
        result=result,
        report=services.Report(
            source=services.Source.QUERY,
            message=message,
            detail={"vnp_TransactionStatus": status, "vnp_TransactionNo": transaction_no},
        ),
        transaction_no=transaction_no,
        reason=reason,
        teller=notes.THE_STATUS_QUERY,
    )


_READERS: dict[str, reports.Reader] = {
    InboundMessage.Kind.IPN: _read_ipn,
    InboundMessage.Kind.QUERY: _read_query_answer,
}


def read(message: Claimed, partner: Partner | None) -> reports.Report | Applied:
    """A stored IPN or querydr answer, verified again and read into a report."""
    return _READERS[message.kind](message, partner)


def apply_reports(messages: Sequence[Claimed]) -> dict[int, Applied]:
    """Apply stored IPNs and status answers of VNPay partners (claimed, locked): see
    `reports.apply_reports`, the one way every payment-page channel's reports are applied."""
    return reports.apply_reports(messages, read)


# --- The status query (querydr), for the poller -------------------------------------------------
def ask(payment: Payment, *, now: datetime) -> reports.Answer | None:
    """Ask the bank how the payment ended (querydr); its answer, signature checked, or None
    when it gave none. Raises GatewayNotConfigured without an API URL."""
    if payment.partner is None:
        raise GatewayNotConfigured("a redirect payment needs a partner")
    config = gateway_config(payment.partner)
    if not config.api_url:
        raise GatewayNotConfigured(f"{payment.partner.code}: no PARTNER_*_API_URL")
    request_id = vnpay.new_request_id()
    body = vnpay.build_query_request(
        config,
        request_id=request_id,
        txn_ref=payment.reference,
        order_info=payment.provider_data.get("vnp_OrderInfo") or order_info(payment),
        transaction_date=payment.provider_data.get("vnp_CreateDate")
        or vnpay.format_time(payment.created_at),
        created_at=now,
        ip_address=str(settings.GATEWAY_SERVER_IP),
    )
    answer = http.post(config.api_url, body)
    if answer is None:
        return None
    return reports.Answer(
        body=answer,
        request_id=request_id,
        genuine=vnpay.verify_query_response(answer, config.secret),
        signature=str(answer.get("vnp_SecureHash", "")),
    )


# --- Return URL ---------------------------------------------------------------------------------
def return_verify(*, partner: Partner, params: Mapping[str, str]) -> ReturnReport:
    """Verify a return over the values as received; never changes the payment.

    The return is a hint, the bank's query API is the proof: the page asks for a status check
    of a payment that is not final yet. Raises InvalidReturn when the signature or terminal is
    wrong.
    """
    params = {name: str(value) for name, value in params.items() if name.startswith("vnp_")}
    if not vnpay.verify(params, partner.secret) or params.get("vnp_TmnCode") != _terminal(partner):
        raise InvalidReturn
    payment = _payment_for(partner, params.get("vnp_TxnRef", ""))
    response_code = params.get("vnp_ResponseCode", "")
    result = vnpay.transaction_result(response_code, params.get("vnp_TransactionStatus", ""))
    return ReturnReport(payment=payment, result=result, code=response_code)
