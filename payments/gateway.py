"""Bank redirect payments over the VNPay 2.1.0 protocol: the Django side of `providers.vnpay`.

Three ways a bank tells us how a redirect payment ended, trusted differently:
- the IPN (server to server, signed): stored in the inbox and answered at once by
  `ipn_receive`, then applied by a worker through `handle_ipn_message`;
- the return URL (the customer's browser, signed): shown, never applied; it asks for a status
  check (`return_verify`, `payment_request_poll`);
- the status query `querydr` (we ask, the bank answers signed): `payment_poll`, run on a backoff
  schedule by the poller so a payment whose IPN never came still settles.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl

import requests
from django.conf import settings
from django.core.cache import cache
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from payments import inbox, services
from payments.models import InboundMessage, Partner, Payment
from payments.providers import vnpay

logger = logging.getLogger(__name__)

Status = Payment.Status
Result = vnpay.Result

# Statuses a bank's report may still change (expired→succeeded: the bank's word wins).
SETTLEABLE = services.SETTLEABLE


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


# A return page refreshes until the payment is final, and its URL can be replayed from the
# browser's history: one query to the bank per payment in this window is enough.
POLL_REQUEST_SECONDS = 30


def payment_request_poll(*, payment_id: object) -> None:
    """Ask a worker to query the bank about this payment now (after the current commit), at
    most once per POLL_REQUEST_SECONDS for a payment."""
    from payments import tasks
    from payments.queue import enqueue_after_commit

    if cache.add(f"gateway:poll-request:{payment_id}", 1, POLL_REQUEST_SECONDS):
        enqueue_after_commit(tasks.poll_gateway_payment, str(payment_id))


# --- Shared reading of a bank's report ----------------------------------------------------------
_PARTNER_CODE = re.compile(r"[A-Z0-9]{1,20}")


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


def _apply_checked(
    payment: Payment,
    *,
    reported: Mapping[str, Any],
    result: Result,
    report: services.Report,
    transaction_no: str,
    reason: str,
    teller: str,
) -> str:
    """Check the amount a verified IPN or status answer reports, then apply it.

    A bank that says money moved, but not our amount, is not applied: a person must sort it out.
    """
    amount = _amount_of(reported)
    if amount != payment.amount:
        if result is not Result.FAILED:
            services.payment_flag_review(
                payment_id=payment.pk,
                report=report,
                reason=f"{teller} reported {reported.get('vnp_Amount')} (x100) for a payment of "
                f"{payment.amount} VND.",
            )
        return "amount_mismatch"
    return _apply(
        payment,
        result=result,
        report=report,
        amount=amount,
        # A cancelled payment has no bank transaction ("0"): nothing to remember.
        transaction_no=transaction_no if result is Result.SUCCESS else "",
        reason=reason,
        paid_at=_paid_at(str(reported.get("vnp_PayDate", "") or "")),
    )


def _apply(
    payment: Payment,
    *,
    result: Result,
    report: services.Report,
    amount: int | None,
    transaction_no: str,
    reason: str,
    paid_at: datetime | None,
) -> str:
    """Apply one verified report to the payment through the services; returns the outcome."""
    if result is Result.SUCCESS:
        try:
            outcome = services.payment_mark_succeeded(
                payment_id=payment.pk,
                report=report,
                amount=amount,
                provider_txn_id=transaction_no,
                at=paid_at,
            )
        except services.AmountMismatch as exc:
            services.payment_flag_review(payment_id=payment.pk, report=report, reason=exc.message)
            return "amount_mismatch"
        return f"succeeded:{outcome}"
    if result is Result.FAILED:
        outcome = services.payment_mark_failed(payment_id=payment.pk, report=report, reason=reason)
        return f"failed:{outcome}"
    if result is Result.REVIEW:
        services.payment_flag_review(
            payment_id=payment.pk,
            report=report,
            reason=f"The bank reported something to check ({reason}).",
        )
        return "review:flagged"
    return "pending"


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


def _safe(text: str, length: int) -> str:
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
    return f"ipn:{_safe(partner_code, 20)}:{_safe(reference, 40)}:{identity[:40]}"


def ipn_invalid_dedupe_key(partner_code: str, params: Mapping[str, str], raw_query: str) -> str:
    """A key of its own for a message whose signature failed, built from that signature.

    It can never equal the key of a genuine message (different prefix), so a forged message
    stored first cannot make the real one look like a repeat.
    """
    signature = _safe(str(params.get("vnp_SecureHash", "")) or "none", 128)
    return f"ipn-bad:{_safe(partner_code, 20)}:{signature}:{inbox.fingerprint(raw_query)[:32]}"


def _address_allowed(partner: Partner, remote_addr: str) -> bool:
    allowed = [
        address.strip()
        for address in partner.credentials.get("allowed_ips", "").split(",")
        if address.strip()
    ]
    return not allowed or remote_addr in allowed


def ipn_receive(
    *,
    partner_code: str,
    params: Mapping[str, str],
    raw_query: str,
    headers: Mapping[str, str] | None = None,
    remote_addr: str = "",
) -> IpnAnswer:
    """Store a gateway notification, hand it to a worker and decide the protocol's answer.

    Checks run in the order of PROTOCOLS.md §2: signature (97), terminal, order exists (01),
    amount (04), still pending (02), else 00. Every message is stored before it is answered. Of
    several identical messages only the one that stored the row first is answered 00; the
    others, and any message about a payment that is already final, get 02. The answer is
    computed each time, never replayed, so nothing a forger sends can change what the genuine
    message is told. Database errors propagate: the view answers 99 so the bank retries.
    """
    partner = gateway_partner(partner_code)
    kept_headers = inbox.keep_headers(headers or {}, remote_addr)
    code = partner.code if partner else partner_code.upper()
    if partner is None or not vnpay.verify(params, partner.secret):
        refusal = _answer(vnpay.RSP_INVALID_SIGNATURE)
        message, created = inbox.inbox_store(
            kind=InboundMessage.Kind.IPN,
            dedupe_key=ipn_invalid_dedupe_key(code, params, raw_query),
            body=raw_query,
            partner=partner,
            headers=kept_headers,
            signature_valid=False,
            processed=("invalid_signature", "the signature did not verify; nothing applied"),
        )
        if created:
            inbox.inbox_set_response(message_id=message.pk, status=200, body=refusal.as_json())
        return refusal
    if not _address_allowed(partner, remote_addr):
        # A genuine signature from an address we do not know: keep it, apply nothing, and let
        # the bank retry (99) while someone updates PARTNER_<CODE>_ALLOWED_IPS.
        logger.warning("IPN for %s from unlisted address %s", partner.code, remote_addr)
        inbox.inbox_store(
            kind=InboundMessage.Kind.IPN,
            dedupe_key=ipn_invalid_dedupe_key(code, params, raw_query + "|" + remote_addr),
            body=raw_query,
            partner=partner,
            headers=kept_headers,
            signature_valid=True,
            processed=("address_not_allowed", remote_addr),
        )
        return _answer(vnpay.RSP_UNKNOWN_ERROR)

    payment: Payment | None = None
    answer: IpnAnswer | None = None
    # Nothing to apply without a payment of ours: such a row is stored already processed.
    unmatched: tuple[str, str] | None = None
    if params.get("vnp_TmnCode") != _terminal(partner):
        answer = _answer(vnpay.RSP_WRONG_TERMINAL)
        unmatched = ("wrong_terminal", str(params.get("vnp_TmnCode", "")))
    else:
        payment = _payment_for(partner, str(params.get("vnp_TxnRef", "")))
        if payment is None:
            answer = _answer(vnpay.RSP_ORDER_NOT_FOUND)
            unmatched = ("order_not_found", str(params.get("vnp_TxnRef", "")))
        elif _amount_of(params) != payment.amount:
            answer = _answer(vnpay.RSP_INVALID_AMOUNT)
        elif payment.status not in SETTLEABLE:
            answer = _answer(vnpay.RSP_ALREADY_CONFIRMED)

    message, created = inbox.inbox_store(
        kind=InboundMessage.Kind.IPN,
        dedupe_key=ipn_dedupe_key(code, params),
        body=raw_query,
        partner=partner,
        headers=kept_headers,
        signature_valid=True,
        payment=payment,
        processed=unmatched,
    )
    if answer is None:
        # The unique dedupe key decided who was first: that request alone answers 00.
        answer = _answer(vnpay.RSP_CONFIRM_SUCCESS if created else vnpay.RSP_ALREADY_CONFIRMED)
    if created:
        inbox.inbox_set_response(message_id=message.pk, status=200, body=answer.as_json())
        if payment is not None:
            # A broker outage only delays this: the inbox sweeper sends unprocessed rows again.
            inbox.inbox_enqueue(message.pk)
    return answer


def _ipn_params(message: InboundMessage) -> dict[str, str]:
    return {
        name: value
        for name, value in parse_qsl(message.body, keep_blank_values=True)
        if name.startswith("vnp_")
    }


def handle_ipn_message(message: InboundMessage) -> tuple[str, str, Payment | None]:
    """Apply a stored IPN (the inbox calls this with the message row locked, once).

    The checks are made again here, under the payment's row lock (taken by the services),
    because the payment may have changed since the notification was answered.
    """
    params = _ipn_params(message)
    partner = message.partner
    if partner is None or not vnpay.verify(params, partner.secret):
        return "invalid_signature", "the signature did not verify", None
    if params.get("vnp_TmnCode") != _terminal(partner):
        return "wrong_terminal", str(params.get("vnp_TmnCode", "")), None
    payment = _payment_for(partner, params.get("vnp_TxnRef", ""))
    if payment is None:
        return "order_not_found", params.get("vnp_TxnRef", ""), None
    response_code = params.get("vnp_ResponseCode", "")
    status = params.get("vnp_TransactionStatus", "")
    result = vnpay.transaction_result(response_code, status)
    transaction_no = params.get("vnp_TransactionNo", "")
    report = services.Report(
        source=services.Source.IPN,
        message=message,
        detail={
            "vnp_ResponseCode": response_code,
            "vnp_TransactionStatus": status,
            "vnp_TransactionNo": transaction_no,
        },
    )
    outcome = _apply_checked(
        payment,
        reported=params,
        result=result,
        report=report,
        transaction_no=transaction_no,
        reason=f"{_reason(response_code)}, vnp_TransactionStatus {status}",
        teller="The bank",
    )
    return outcome, _reason(response_code), payment


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

    Asks for a status check of a payment that is not final yet: the return is a hint, the
    bank's query API is the proof. Raises InvalidReturn when the signature or terminal is wrong.
    """
    if not vnpay.verify(params, partner.secret) or params.get("vnp_TmnCode") != _terminal(partner):
        raise InvalidReturn
    payment = _payment_for(partner, params.get("vnp_TxnRef", ""))
    response_code = params.get("vnp_ResponseCode", "")
    result = vnpay.transaction_result(response_code, params.get("vnp_TransactionStatus", ""))
    if payment is not None and payment.status in SETTLEABLE:
        payment_request_poll(payment_id=payment.pk)
    return ReturnReport(payment=payment, result=result, response_code=response_code)


# --- Status queries (the poller) ----------------------------------------------------------------
def poll_next_at(*, payment: Payment, now: datetime) -> datetime | None:
    """When to ask the bank next: the schedule's steps after the start, then every last step,
    until expiry plus the grace period; None once that has passed."""
    steps: list[timedelta] = list(settings.GATEWAY_POLL_SCHEDULE) or [timedelta(minutes=15)]
    start = payment.created_at
    expires_at = payment.expires_at or start + settings.PAYMENT_TTL
    horizon = expires_at + settings.GATEWAY_POLL_GRACE
    moment = next((start + step for step in steps if start + step > now), None)
    if moment is None:
        interval = steps[-1]
        last = start + steps[-1]
        periods = (now - last) // interval + 1
        moment = last + periods * interval
    if moment > horizon:
        # One last question exactly at the horizon, then the bank has had its chance.
        return horizon if horizon > now else None
    return moment


def payments_due_for_poll(*, now: datetime | None = None, limit: int = 500) -> list[Any]:
    """Ids of pending or expired redirect payments whose next status check is due."""
    now = now or timezone.now()
    return list(
        Payment.objects.filter(
            method=Payment.Method.REDIRECT,
            status__in=list(SETTLEABLE),
            next_poll_at__lte=now,
        )
        .order_by("next_poll_at")
        .values_list("id", flat=True)[:limit]
    )


def _http_timeout() -> tuple[float, float]:
    connect, read = settings.GATEWAY_HTTP_TIMEOUT
    return (float(connect), float(read))


def _server_ip() -> str:
    return str(settings.GATEWAY_SERVER_IP)


def _ask_bank(url: str, body: dict[str, str]) -> dict[str, Any] | None:
    """POST a querydr; the bank's JSON answer, or None when it did not answer usefully."""
    if connection.in_atomic_block:
        # Holding locks while a bank takes its time would stall every other worker.
        raise RuntimeError("HTTP to a bank must not run inside a database transaction")
    try:
        response = requests.post(url, json=body, timeout=_http_timeout())
        answer = response.json()
    except (requests.RequestException, ValueError) as exc:
        logger.warning("querydr to %s got no usable answer: %s", url, exc)
        return None
    return answer if isinstance(answer, dict) else None


def handle_query_message(message: InboundMessage) -> tuple[str, str, Payment | None]:
    """Apply a stored querydr answer (called with the message row locked, once)."""
    try:
        body = _message_json(message)
    except ValueError:
        return "unreadable", "", None
    partner = message.partner
    if partner is None or not vnpay.verify_query_response(body, partner.secret):
        return "invalid_signature", "", None
    payment = message.payment or _payment_for(partner, str(body.get("vnp_TxnRef", "")))
    if payment is None:
        return "order_not_found", str(body.get("vnp_TxnRef", "")), None
    reference, terminal = str(body.get("vnp_TxnRef", "")), str(body.get("vnp_TmnCode", ""))
    if reference != payment.reference or terminal != _terminal(partner):
        return "wrong_payment", "the answer is about another payment or terminal", payment
    result = vnpay.query_result(body)
    query_code = str(body.get("vnp_ResponseCode", ""))
    if result is None:
        # 91 and friends: the bank has nothing to say about it (yet). Never a failure.
        return f"query:{query_code}", str(body.get("vnp_Message", "")), payment
    if result is Result.PENDING:
        return "pending", "", payment
    transaction_no = str(body.get("vnp_TransactionNo", "") or "")
    report = services.Report(
        source=services.Source.QUERY,
        message=message,
        detail={
            "vnp_TransactionStatus": str(body.get("vnp_TransactionStatus", "")),
            "vnp_TransactionNo": transaction_no,
        },
    )
    outcome = _apply_checked(
        payment,
        reported=body,
        result=result,
        report=report,
        transaction_no=transaction_no,
        reason=f"querydr: vnp_TransactionStatus {body.get('vnp_TransactionStatus', '')}",
        teller="The bank's status query",
    )
    return outcome, "", payment


def _message_json(message: InboundMessage) -> dict[str, Any]:
    value = json.loads(message.body)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    return value


def _process_query_message(message_id: int) -> str:
    """Apply a stored answer exactly once, like `inbox.inbox_process` does for callbacks."""
    with transaction.atomic():
        message = InboundMessage.objects.select_for_update().get(pk=message_id)
        if message.processed_at is not None:
            return message.outcome
        outcome, detail, payment = handle_query_message(message)
        inbox.inbox_mark_processed(
            message_id=message.pk, outcome=outcome, detail=detail, payment=payment
        )
        return outcome


def payment_poll(*, payment_id: Any, now: datetime | None = None) -> str:
    """Ask the bank (querydr) how a redirect payment ended and settle it when it says so.

    The answer is stored in the inbox (kind `query`) before it is acted on, and settles the
    payment only on the bank's definite word: success, or a definite failure. No answer, a
    timeout or an unsigned answer changes nothing but the time of the next check.
    Returns what happened: an inbox outcome, "no_answer", "not_pollable", ...
    """
    payment = Payment.objects.select_related("partner").filter(pk=payment_id).first()
    if payment is None:
        return "not_found"
    if (
        payment.method != Payment.Method.REDIRECT
        or payment.partner is None
        or payment.status not in SETTLEABLE
    ):
        return "not_pollable"
    partner = payment.partner
    now = now or timezone.now()
    try:
        config = gateway_config(partner)
    except GatewayNotConfigured:
        config = None
    if config is None or not config.api_url:
        logger.warning("cannot ask %s about %s: no API URL", partner.code, payment.reference)
        _reschedule(payment, now=now)
        return "not_configured"
    request_id = vnpay.new_request_id()
    body = vnpay.build_query_request(
        config,
        request_id=request_id,
        txn_ref=payment.reference,
        order_info=payment.provider_data.get("vnp_OrderInfo") or order_info(payment),
        transaction_date=payment.provider_data.get("vnp_CreateDate")
        or vnpay.format_time(payment.created_at),
        created_at=now,
        ip_address=_server_ip(),
    )
    answer = _ask_bank(config.api_url, body)
    if answer is None:
        _reschedule(payment, now=now)
        return "no_answer"
    text = _json_text(answer)
    if not vnpay.verify_query_response(answer, config.secret):
        signature = _safe(str(answer.get("vnp_SecureHash", "")) or "none", 128)
        inbox.inbox_store(
            kind=InboundMessage.Kind.QUERY,
            dedupe_key=f"query-bad:{_safe(partner.code, 20)}:{request_id}:{signature}",
            body=text,
            partner=partner,
            signature_valid=False,
            payment=payment,
            processed=("invalid_signature", "the answer's signature did not verify"),
        )
        _reschedule(payment, now=now)
        return "invalid_signature"
    message, _created = inbox.inbox_store(
        kind=InboundMessage.Kind.QUERY,
        dedupe_key=f"query:{_safe(partner.code, 20)}:{request_id}",
        body=text,
        partner=partner,
        signature_valid=True,
        payment=payment,
    )
    try:
        return _process_query_message(message.pk)
    finally:
        # Even if applying the answer failed, the next check stays on the schedule.
        _reschedule(payment, now=now)


def _json_text(answer: Mapping[str, Any]) -> str:
    return json.dumps(answer, ensure_ascii=False, sort_keys=True)


def _reschedule(payment: Payment, *, now: datetime) -> None:
    # Only a payment still open gets a next check; the service ignores settled ones anyway.
    services.payment_set_poll_schedule(
        payment_id=payment.pk, next_poll_at=poll_next_at(payment=payment, now=now)
    )
