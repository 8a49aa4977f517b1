"""ZaloPay payments: the Django side of `zalopay.protocol` (docs/protocols.md §4).

- `start`: the create call, server to server (`http.post`, retried after a timeout: it names its
  order, `yyMMdd_` + our payment reference, so ZaloPay never opens two orders for one payment).
  Its answer has one link, `order_url`: on a phone it opens the ZaloPay app (ZaloPay's
  "openinapp" link), elsewhere ZaloPay's web page with a QR code for the app.
- the callback (POST JSON, MAC with KEY2): `callback_receive` stores it in the inbox and answers
  `{"return_code": 1}` (2 for a repeat); an applier applies it through `read` and the shared
  `reports.apply_reports`. ZaloPay calls back only once it has the money.
- the return (the browser, checksum with KEY2): shown, never applied (`return_verify`).
- the status query (`ask`): the poller stores the question and the answer, and the applier
  applies them like a callback.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.urls import reverse
from django.utils import timezone

from payments import notes, services, states
from payments.channels.common import http, receiving, reports
from payments.channels.common.pages import (
    Checkout,
    InvalidReturn,
    NotConfigured,
    PartnerUnavailable,
    ReturnReport,
    order_description,
    order_refused,
    remember,
    safe_link,
)
from payments.channels.common.receiving import Receipt
from payments.channels.common.results import Result
from payments.channels.zalopay import protocol as zalopay
from payments.inbox import Applied, Claimed
from payments.models import InboundMessage, Partner, Payment

logger = logging.getLogger(__name__)

PROTOCOL = Partner.Protocol.ZALOPAY
Outcome = InboundMessage.Outcome
# Starting a payment calls the partner (its create call).
START_CALLS_PARTNER = True
# A create that got no answer is sent once more, the same body: one order per app_trans_id.
CREATE_ATTEMPTS = 2
# ZaloPay's shortest order lifetime.
MIN_EXPIRY_SECONDS = 300
WEB_SCHEMES = frozenset({"https", "http"})
Answer = tuple[int, str]


class Unreadable(Exception):
    """The body of a callback is not ZaloPay's shape (JSON with a `data` JSON string)."""


def config_of(partner: Partner) -> zalopay.Config:
    credentials = partner.credentials
    missing = [name for name in ("key1", "key2", "app_id", "api_url") if not credentials.get(name)]
    if missing:
        raise NotConfigured(f"{partner.code}: set PARTNER_{partner.code}_* ({missing})")
    return zalopay.Config(
        app_id=credentials["app_id"],
        key1=credentials["key1"],
        key2=credentials["key2"],
        api_url=credentials["api_url"].rstrip("/"),
    )


def _config_or_none(partner: Partner | None) -> zalopay.Config | None:
    try:
        return config_of(partner) if partner is not None else None
    except NotConfigured:
        return None


def configured(partner: Partner) -> bool:
    return _config_or_none(partner) is not None


def as_json(answer: Answer) -> dict[str, Any]:
    return {"return_code": answer[0], "return_message": answer[1]}


# --- Starting a payment: the create call --------------------------------------------------------
def _checkout(data: Mapping[str, Any]) -> Checkout:
    return Checkout(
        pay_url=str(data.get("redirect_url", "")),
        app_url=str(data.get("app_url", "")),
        direct=False,
    )


def start(payment: Payment, *, client_ip: str, locale: str, phone: bool = False) -> Checkout:
    """Have ZaloPay open the payment's order (once), and give its link.

    Raises NotConfigured, or PartnerUnavailable when ZaloPay opened no order that we know of:
    no answer, or a refusal we cannot read (the order may exist: the payment stays open for the
    poller), or a refusal that says none was opened (the payment fails)."""
    if payment.partner is None:
        raise NotConfigured("a wallet payment needs a partner")
    config = config_of(payment.partner)
    if payment.provider_data.get("redirect_url"):
        return _checkout(payment.provider_data)  # the order exists: never ask for another
    now = timezone.now()
    trans_id = str(payment.provider_data.get("zalopay_app_trans_id") or "")
    app_time = str(payment.provider_data.get("zalopay_app_time") or "")
    if not trans_id:
        # Kept before the call: a later attempt, from any request, names the same order.
        trans_id = zalopay.app_trans_id(payment.reference, now)
        app_time = str(int(now.timestamp() * 1000))
        remember(payment, zalopay_app_trans_id=trans_id, zalopay_app_time=app_time)
    expires_at = payment.expires_at or now + settings.PAYMENT_TTL
    body = zalopay.create_request(
        config,
        app_trans_id=trans_id,
        app_user=payment.customer.code,
        app_time=int(app_time),
        amount=payment.amount,
        description=order_description(payment),
        callback_url=settings.PORTAL_BASE_URL + reverse("callback-zalopay"),
        redirect_url=settings.PORTAL_BASE_URL + reverse("pay-return", args=[payment.partner.code]),
        expire_seconds=max(MIN_EXPIRY_SECONDS, int((expires_at - now).total_seconds())),
    )
    answer = http.post(
        config.api_url + zalopay.CREATE_PATH, body, form=True, attempts=CREATE_ATTEMPTS
    )
    if answer is None:
        raise PartnerUnavailable(f"ZaloPay gave no answer about {payment.reference}")
    code = zalopay.number(answer.get("return_code"))
    if code != zalopay.CREATED:
        sub_code = zalopay.number(answer.get("sub_return_code"))
        reason = (
            f"return_code {code}, sub_return_code {sub_code}: "
            f"{zalopay.text(answer.get('sub_return_message') or answer.get('return_message'))}"
        )
        logger.warning("ZaloPay did not open %s: %s", payment.reference, reason)
        refused = code == 2 and sub_code in zalopay.CREATE_REFUSED
        if refused:
            order_refused(payment, reason=reason, detail={"return_code": code, "sub": sub_code})
        raise PartnerUnavailable(
            f"ZaloPay did not open {payment.reference} ({reason})", refused=refused
        )
    order_url = safe_link(answer.get("order_url"), schemes=WEB_SCHEMES)
    if not order_url:
        raise PartnerUnavailable(f"ZaloPay's answer about {payment.reference} has no link to pay")
    # One link for both: on a phone it opens the ZaloPay app, elsewhere ZaloPay's web page.
    remember(payment, redirect_url=order_url, app_url=order_url)
    return _checkout(payment.provider_data)


# --- The callback -------------------------------------------------------------------------------
def _partner_named(app_id: object) -> Partner | None:
    """The ZaloPay partner whose app id a message names (or the only one there is)."""
    partners = receiving.partners_speaking(PROTOCOL)
    for partner in partners:
        if partner.credentials.get("app_id") == zalopay.text(app_id):
            return partner
    return partners[0] if len(partners) == 1 else None


def _read_body(raw: str) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The callback's body, its `data` string exactly as received, and that string read."""
    try:
        body = json.loads(raw)
        data_text = body.get("data") if isinstance(body, dict) else None
        data = json.loads(data_text) if isinstance(data_text, str) else None
    except (ValueError, RecursionError) as exc:
        raise Unreadable(str(exc)) from None
    if not isinstance(data, dict) or not isinstance(data_text, str):
        raise Unreadable("not {'data': '<JSON object>', 'mac': ..., 'type': ...}")
    return body, data_text, data


def callback_receive(
    *, raw: str, headers: Mapping[str, str], remote_addr: str
) -> tuple[Receipt, Answer]:
    """Verify a callback, store it in the inbox with its answer and wake an applier.

    Checks in this order: MAC (-1), app id and order (kept, answered 1: ZaloPay has no code for
    them), amount (kept for an agent, answered 1), payment still open (2), else 1. Of several
    identical callbacks only the one that stored the row first is answered 1; the others get 2.
    Raises Unreadable; database errors propagate (the view answers 0: ZaloPay retries)."""
    body, data_text, data = _read_body(raw)
    reference = zalopay.reference_of(data.get("app_trans_id"))
    named = receiving.payment_named(reference, protocol=PROTOCOL) if reference else None
    partner = named.partner if named is not None else _partner_named(data.get("app_id"))
    config = _config_or_none(partner)
    genuine = config is not None and zalopay.verify_callback(data_text, body.get("mac"), config)
    answer: Answer | None = None
    unmatched: Applied | None = None
    if zalopay.number(body.get("type")) != zalopay.ORDER_CALLBACK:
        unmatched = Applied(Outcome.NO_HANDLER, "not an order callback: kept for the record")
    elif config is not None and zalopay.text(data.get("app_id")) != config.app_id:
        answer = zalopay.ANSWER_NOT_FOUND
        unmatched = Applied(Outcome.WRONG_TERMINAL, zalopay.text(data.get("app_id")))
    elif named is None:
        answer = zalopay.ANSWER_NOT_FOUND
        unmatched = Applied(Outcome.ORDER_NOT_FOUND, zalopay.text(data.get("app_trans_id")))
    elif zalopay.number(data.get("amount")) != named.amount:
        answer = zalopay.ANSWER_WRONG_AMOUNT
    elif named.status not in states.SETTLEABLE:
        answer = zalopay.ANSWER_ALREADY
    first = answer or zalopay.ANSWER_SUCCESS
    receipt = receiving.notification_receive(
        code=partner.code if partner is not None else "ZALOPAY",
        raw=raw,
        # One ZaloPay transaction: its retries are stored once.
        identity=[
            reference or zalopay.text(data.get("app_trans_id")),
            zalopay.text(data.get("app_id")),
            zalopay.text(data.get("zp_trans_id")),
            zalopay.text(data.get("amount")),
        ],
        signature=zalopay.text(body.get("mac")),
        partner=partner,
        genuine=genuine,
        payment_id=named.pk if named is not None and unmatched is None else None,
        unmatched=unmatched,
        headers=headers,
        remote_addr=remote_addr,
        answer=(200, as_json(first)),
        refusal=(200, as_json(zalopay.ANSWER_BAD_MAC)),
    )
    if receipt is Receipt.FORGED:
        return receipt, zalopay.ANSWER_BAD_MAC
    if receipt is Receipt.UNLISTED:
        return receipt, zalopay.ANSWER_RETRY
    if receipt is Receipt.REPEAT:
        # The unique dedupe key decided who was first: that request alone answers 1.
        return receipt, zalopay.ANSWER_ALREADY
    return receipt, first


# --- Reading stored callbacks and status answers (the applier) ----------------------------------
def _moment(value: object) -> datetime | None:
    milliseconds = zalopay.number(value)
    if milliseconds is None or milliseconds <= 0:
        return None
    try:
        return datetime.fromtimestamp(milliseconds / 1000, tz=UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _report(
    *,
    reference: str,
    values: Mapping[str, Any],
    result: Result | None,
    message: Claimed,
    reason: str,
    query: bool,
) -> reports.Report:
    transaction_no = zalopay.text(values.get("zp_trans_id"))
    transaction_no = "" if transaction_no == "0" else transaction_no
    return reports.Report(
        reference=reference,
        amount=zalopay.number(values.get("amount")),
        result=result,
        report=services.Report(
            source=services.Source.QUERY if query else services.Source.IPN,
            message=message,
            detail={"zp_trans_id": transaction_no, "reason": reason},
        ),
        transaction_no=transaction_no,
        paid_at=_moment(values.get("server_time")),
        reason=reason,
        settled="paid" if not query else "query: paid",
        teller=notes.THE_WALLET_QUERY if query else notes.THE_WALLET,
        amount_note=notes.WALLET_AMOUNT,
        reported_amount=zalopay.text(values.get("amount")),
        check_note=notes.WALLET_CHECK,
    )


def _read_answer(message: Claimed, config: zalopay.Config) -> reports.Report | Applied:
    try:
        stored = json.loads(message.body)
    except ValueError:
        stored = None
    asked = stored.get("asked") if isinstance(stored, dict) else None
    answer = stored.get("answer") if isinstance(stored, dict) else None
    if not isinstance(asked, dict) or not isinstance(answer, dict):
        return Applied(Outcome.UNREADABLE)
    if zalopay.text(asked.get("app_id")) != config.app_id:
        return Applied(Outcome.WRONG_PAYMENT, "the answer is about another app")
    result = zalopay.query_result(answer)
    code = zalopay.text(answer.get("return_code"))
    sub_code = zalopay.text(answer.get("sub_return_code"))
    return _report(
        reference=zalopay.reference_of(asked.get("app_trans_id")),
        values=answer,
        result=result,
        message=message,
        reason=f"query: return_code {code}, sub_return_code {sub_code}",
        query=True,
    )


def read(message: Claimed, partner: Partner | None) -> reports.Report | Applied:
    """A stored callback (verified again) or status answer, read into a report."""
    config = _config_or_none(partner)
    if config is None:
        return Applied(Outcome.INVALID_SIGNATURE, "no credentials to read it with")
    if message.kind == InboundMessage.Kind.QUERY:
        # The answer of ZaloPay's own HTTPS API to our question (ZaloPay signs none).
        return _read_answer(message, config)
    try:
        body, data_text, data = _read_body(message.body)
    except Unreadable:
        return Applied(Outcome.UNREADABLE)
    if not zalopay.verify_callback(data_text, body.get("mac"), config):
        return Applied(Outcome.INVALID_SIGNATURE, "the signature did not verify")
    if zalopay.text(data.get("app_id")) != config.app_id:
        return Applied(Outcome.WRONG_TERMINAL, zalopay.text(data.get("app_id")))
    return _report(
        reference=zalopay.reference_of(data.get("app_trans_id")),
        values=data,
        # ZaloPay calls back only once it has the money.
        result=Result.SUCCESS,
        message=message,
        reason="paid",
        query=False,
    )


# --- The status query, for the poller -----------------------------------------------------------
def ask(payment: Payment, *, now: datetime) -> reports.Answer | None:
    """Ask ZaloPay how the payment's order ended. What is stored is the question with its answer:
    ZaloPay's answer does not name the order, nor is it signed."""
    if payment.partner is None:
        raise NotConfigured("a wallet payment needs a partner")
    config = config_of(payment.partner)
    trans_id = str(payment.provider_data.get("zalopay_app_trans_id") or "")
    if not trans_id:
        return None  # no order was ever asked for: nothing to ask about
    answer = http.post(
        config.api_url + zalopay.QUERY_PATH,
        zalopay.query_request(config, app_trans_id=trans_id),
        form=True,
    )
    if answer is None:
        return None
    asked = {"app_id": config.app_id, "app_trans_id": trans_id}
    return reports.Answer(
        body={"asked": asked, "answer": answer},
        request_id=f"{trans_id}-{int(now.timestamp() * 1000)}",
        genuine=None,
    )


# --- The return ---------------------------------------------------------------------------------
def return_verify(*, partner: Partner, params: Mapping[str, str]) -> ReturnReport:
    """Verify what the browser brought back from ZaloPay (checksum with KEY2); never applied.
    Raises InvalidReturn when the checksum or the app id is wrong."""
    config = _config_or_none(partner)
    values = {name: str(value) for name, value in params.items()}
    if config is None or not zalopay.verify_return(values, config):
        raise InvalidReturn
    if values.get("appid") != config.app_id:
        raise InvalidReturn
    payment = Payment.objects.filter(
        reference=zalopay.reference_of(values.get("apptransid")),
        partner=partner,
        method=Payment.Method.REDIRECT,
    ).first()
    status = values.get("status", "")
    result = Result.SUCCESS if status == zalopay.RETURN_SUCCESS else Result.PENDING
    return ReturnReport(payment=payment, result=result, code=status)
