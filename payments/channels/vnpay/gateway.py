"""Bank redirect payments over the VNPay 2.1.0 protocol: the Django side of `vnpay.protocol`.

Three ways a bank tells us how a redirect payment ended, trusted differently:
- the IPN (server to server, signed): stored in the inbox and answered at once by
  `ipn_receive` (two queries), then applied by an applier through `apply_reports`;
- the return URL (the customer's browser, signed): shown, never applied; it asks for a status
  check (`return_verify`, `payments.poller.payment_request_poll`);
- the status query `querydr` (we ask, the bank answers signed): `payments.poller` stores the
  answer, and `apply_reports` applies it like an IPN.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from urllib.parse import parse_qsl

from django.conf import settings
from django.db import connection
from django.db.models import F, Q
from django.urls import reverse

from payments import inbox, notes, services, states
from payments.bulk import AnyOf
from payments.channels.vnpay import protocol as vnpay
from payments.inbox import Applied, Claimed
from payments.models import InboundMessage, Partner, Payment

logger = logging.getLogger(__name__)

Status = Payment.Status
Result = vnpay.Result
Outcome = InboundMessage.Outcome


class GatewayNotConfigured(Exception):
    pass


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


def order_info(payment: Payment) -> str:
    # ASCII only: some banks mangle anything else in the order description.
    return f"Thanh toan tien dien {payment.customer.code} {payment.reference}"


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
    payment.provider_data = {
        **payment.provider_data,
        "vnp_CreateDate": vnpay.format_time(payment.created_at),
        "vnp_OrderInfo": order_info(payment),
        "redirect_url": url,
    }
    payment.save(update_fields=["provider_data", "updated_at"])
    return url


# --- Shared reading of a bank's report ----------------------------------------------------------
_PARTNER_CODE = re.compile(r"[A-Z0-9]{1,20}")
# Wider than our references (`payments.references`), so a bank's junk is still "not found".
_REFERENCE = re.compile(r"[A-Za-z0-9_.-]{1,40}")


def gateway_partner(code: str) -> Partner | None:
    """The redirect partner named in a callback URL, or None (also for junk in the URL)."""
    code = code.strip().upper()
    if not _PARTNER_CODE.fullmatch(code):
        return None
    return Partner.objects.filter(code=code, offers_redirect=True).first()


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


_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_.-]")


def safe_key(text: str, length: int) -> str:
    """`text` cut to `length`, with anything but letters, digits and `_.-` made `_`."""
    return _UNSAFE_KEY_CHARS.sub("_", text)[:length]


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


@dataclass(frozen=True)
class _Named:
    """What answering an IPN needs of the payment it names: read with its partner at once."""

    pk: Any
    amount: int
    status: str
    partner: Partner


def _ipn_payment(code: str, reference: str) -> _Named | None:
    """The redirect payment an IPN names, with its partner: one query for both, written out
    because building it with the ORM cost more than running it, on every IPN."""
    if not _REFERENCE.fullmatch(reference) or not _PARTNER_CODE.fullmatch(code):
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT p.id, p.amount, p.status, pa.id, pa.name, pa.kind, pa.enabled "
            "FROM payments_payment p JOIN payments_partner pa ON pa.id = p.partner_id "
            "WHERE p.reference = %s AND p.method = %s AND pa.code = %s AND pa.offers_redirect",
            [reference, Payment.Method.REDIRECT, code],
        )
        row = cursor.fetchone()
    if row is None:
        return None
    pk, amount, status, partner_id, name, kind, enabled = row
    partner = Partner(
        id=partner_id, code=code, name=name, kind=kind, enabled=enabled, offers_redirect=True
    )
    return _Named(pk, amount, status, partner)


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
    payment = _ipn_payment(code, str(params.get("vnp_TxnRef", "")))
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
@dataclass(frozen=True)
class _Report:
    """A verified report about one of our payments, read from a stored message."""

    reference: str
    reported: Mapping[str, Any]  # the values the bank signed
    result: Result | None  # None: the bank had nothing to say about it (yet)
    report: services.Report
    transaction_no: str
    reason: str
    teller: str


def _ipn_params(message: Claimed) -> dict[str, str]:
    return {
        name: value
        for name, value in parse_qsl(message.body, keep_blank_values=True)
        if name.startswith("vnp_")
    }


def _read_ipn(message: Claimed, partner: Partner | None) -> _Report | Applied:
    params = _ipn_params(message)
    if partner is None or not vnpay.verify(params, partner.secret):
        return Applied(Outcome.INVALID_SIGNATURE, "the signature did not verify")
    if params.get("vnp_TmnCode") != _terminal(partner):
        return Applied(Outcome.WRONG_TERMINAL, str(params.get("vnp_TmnCode", "")))
    response_code = params.get("vnp_ResponseCode", "")
    status = params.get("vnp_TransactionStatus", "")
    transaction_no = params.get("vnp_TransactionNo", "")
    return _Report(
        reference=params.get("vnp_TxnRef", ""),
        reported=params,
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


def _read_query_answer(message: Claimed, partner: Partner | None) -> _Report | Applied:
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
    return _Report(
        reference=str(body.get("vnp_TxnRef", "")),
        reported=body,
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


_READERS: dict[str, Any] = {
    InboundMessage.Kind.IPN: _read_ipn,
    InboundMessage.Kind.QUERY: _read_query_answer,
}


def apply_reports(messages: Sequence[Claimed]) -> dict[int, Applied]:
    """The gateway channel of the applier: apply stored IPNs and status answers (claimed,
    locked), in message order; returns what each came to.

    The checks are made again here, under the payments' row locks, because a payment may have
    changed since its notification was answered. The payments named are locked in id order
    first; the successes are settled together (`services.payments_mark_succeeded`), and a
    failure or a report to flag waits for the successes before it.
    """
    partners = {partner.pk: partner for partner in Partner.objects.filter(offers_redirect=True)}
    read: dict[int, _Report | Applied] = {
        message.pk: _READERS[message.kind](message, partners.get(message.partner_id or 0))
        for message in messages
    }
    wanted = {
        (message.partner_id, report.reference)
        for message in messages
        if isinstance(report := read[message.pk], _Report)
    }
    locked = (
        {
            (payment.partner_id, payment.reference): payment
            for payment in services.payments_lock(
                AnyOf(F("reference"), sorted({reference for _partner, reference in wanted})),
                Q(method=Payment.Method.REDIRECT),
                extra=("partner",),
            )
        }
        if wanted
        else {}
    )
    results: dict[int, Applied] = {}
    settling: list[tuple[int, Payment, _Report]] = []

    def settle() -> None:
        settled = services.payments_mark_succeeded(
            settlements=[
                services.Settlement(
                    payment_id=payment.pk,
                    report=report.report,
                    amount=payment.amount,
                    provider_txn_id=report.transaction_no,
                    at=_paid_at(str(report.reported.get("vnp_PayDate", "") or "")),
                )
                for _message, payment, report in settling
            ],
            locked={payment.pk: payment for _message, payment, _report in settling},
        )
        for (message_id, payment, _report), result in zip(settling, settled, strict=True):
            outcome = Outcome(f"succeeded:{result.outcome}")
            results[message_id] = Applied(outcome, _reason("00"), payment.pk)
        settling.clear()

    for message in messages:
        report = read[message.pk]
        if isinstance(report, Applied):
            results[message.pk] = report
            continue
        payment = locked.get((message.partner_id, report.reference))
        if payment is None or (message.payment_id and message.payment_id != payment.pk):
            if payment is None and not message.payment_id:
                results[message.pk] = Applied(Outcome.ORDER_NOT_FOUND, report.reference)
            else:
                results[message.pk] = Applied(
                    Outcome.WRONG_PAYMENT, "the answer is about another payment"
                )
            continue
        if report.result is None:
            results[message.pk] = Applied(Outcome.NOTHING_YET, report.reason, payment.pk)
            continue
        if report.result is Result.PENDING:
            results[message.pk] = Applied(Outcome.PENDING, report.reason, payment.pk)
            continue
        if report.result is Result.SUCCESS and _amount_of(report.reported) == payment.amount:
            settling.append((message.pk, payment, report))
            continue
        if settling:
            settle()  # what came before this report, first
        results[message.pk] = Applied(_apply_other(payment, report), report.reason, payment.pk)
        # The service wrote the row: what the next report of this batch sees is read again.
        payment.refresh_from_db(fields=[f for f in services.SETTLING_FIELDS if f != "id"])
    if settling:
        settle()
    return results


def _apply_other(payment: Payment, report: _Report) -> Outcome:
    """A verified report that is not a success for the right amount: flag it or fail it."""
    if _amount_of(report.reported) != payment.amount:
        if report.result is not Result.FAILED:
            services.payment_flag_review(
                payment_id=payment.pk,
                report=report.report,
                reason=notes.GATEWAY_AMOUNT.say(
                    teller=report.teller,
                    reported=report.reported.get("vnp_Amount"),
                    payment_amount=payment.amount,
                ),
            )
        return Outcome.AMOUNT_MISMATCH
    if report.result is Result.FAILED:
        outcome = services.payment_mark_failed(
            payment_id=payment.pk, report=report.report, reason=report.reason
        )
        return Outcome(f"failed:{outcome}")
    services.payment_flag_review(
        payment_id=payment.pk,
        report=report.report,
        reason=notes.GATEWAY_CHECK.say(reason=report.reason),
    )
    return Outcome.REVIEW_FLAGGED


# --- Return URL ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class ReturnReport:
    """What the customer's browser brought back, once its signature checked out."""

    payment: Payment | None
    result: Result
    response_code: str


class InvalidReturn(Exception):
    """The signature or the terminal of a return did not check out."""


def return_verify(*, partner: Partner, params: Mapping[str, str]) -> ReturnReport:
    """Verify a return over the values as received; never changes the payment.

    The return is a hint, the bank's query API is the proof: the page asks for a status check
    of a payment that is not final yet. Raises InvalidReturn when the signature or terminal is
    wrong.
    """
    if not vnpay.verify(params, partner.secret) or params.get("vnp_TmnCode") != _terminal(partner):
        raise InvalidReturn
    payment = _payment_for(partner, params.get("vnp_TxnRef", ""))
    response_code = params.get("vnp_ResponseCode", "")
    result = vnpay.transaction_result(response_code, params.get("vnp_TransactionStatus", ""))
    return ReturnReport(payment=payment, result=result, response_code=response_code)
