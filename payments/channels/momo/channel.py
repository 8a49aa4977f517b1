"""MoMo captureWallet payments: the Django side of `momo.protocol` (docs/protocols.md §4).

- `start`: the create call, server to server (`http.post`, retried after a timeout: it names its
  order, our payment reference, and repeats its request id, so MoMo never opens two orders for
  one payment). Its answer gives MoMo's web page (payUrl) and the link that opens the MoMo app
  (deeplink): the checkout offers both.
- the IPN (POST JSON, signed): `ipn_receive` stores it in the inbox and answers 204; an applier
  applies it through `read` and the shared `reports.apply_reports`.
- the return (the browser, signed like the IPN): shown, never applied (`return_verify`).
- the status query (`ask`): the poller stores the answer and the applier applies it like an IPN.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.urls import reverse

from payments import notes, services
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
from payments.channels.momo import protocol as momo
from payments.inbox import Applied, Claimed
from payments.models import InboundMessage, Partner, Payment

logger = logging.getLogger(__name__)

PROTOCOL = Partner.Protocol.MOMO
Outcome = InboundMessage.Outcome
# Starting a payment calls the partner (its create call).
START_CALLS_PARTNER = True
# A create that got no answer is sent once more, the same body: MoMo repeats its answer.
CREATE_ATTEMPTS = 2
WEB_SCHEMES = frozenset({"https", "http"})
# MoMo's deep link opens its app (momo://...); an https link opens the app or its web page.
APP_SCHEMES = frozenset({"https", "http", "momo"})


class Unreadable(Exception):
    """The body of a notification is not a JSON object."""


def config_of(partner: Partner) -> momo.Config:
    credentials = partner.credentials
    needed = ("secret", "access_key", "partner_code", "api_url")
    missing = [name for name in needed if not credentials.get(name)]
    if missing:
        raise NotConfigured(f"{partner.code}: set PARTNER_{partner.code}_* ({missing})")
    return momo.Config(
        partner_code=credentials["partner_code"],
        access_key=credentials["access_key"],
        secret_key=credentials["secret"],
        api_url=credentials["api_url"].rstrip("/"),
    )


def _config_or_none(partner: Partner | None) -> momo.Config | None:
    try:
        return config_of(partner) if partner is not None else None
    except NotConfigured:
        return None


def configured(partner: Partner) -> bool:
    return _config_or_none(partner) is not None


# --- Starting a payment: the create call --------------------------------------------------------
def _checkout(data: Mapping[str, Any]) -> Checkout:
    return Checkout(
        pay_url=str(data.get("redirect_url", "")),
        app_url=str(data.get("app_url", "")),
        direct=False,
    )


def start(payment: Payment, *, client_ip: str, locale: str, phone: bool = False) -> Checkout:
    """Have MoMo open the payment's order (once), and give its web page and app link.

    Raises NotConfigured, or PartnerUnavailable when MoMo opened no order that we know of: no
    answer (the order may exist: the payment stays open and the poller asks about it), or a
    refusal that says none was opened (the payment fails)."""
    if payment.partner is None:
        raise NotConfigured("a wallet payment needs a partner")
    config = config_of(payment.partner)
    if payment.provider_data.get("redirect_url") or payment.provider_data.get("app_url"):
        return _checkout(payment.provider_data)  # the order exists: never ask for another
    request_id = str(payment.provider_data.get("momo_request_id") or "")
    if not request_id:
        # Kept before the call: a later attempt, from any request, repeats the same id.
        request_id = uuid.uuid4().hex
        remember(payment, momo_request_id=request_id)
    body = momo.create_request(
        config,
        request_id=request_id,
        order_id=payment.reference,
        amount=payment.amount,
        order_info=order_description(payment),
        redirect_url=settings.PORTAL_BASE_URL + reverse("pay-return", args=[payment.partner.code]),
        ipn_url=settings.PORTAL_BASE_URL + reverse("callback-momo"),
        lang=locale,
    )
    answer = http.post(config.api_url + momo.CREATE_PATH, body, attempts=CREATE_ATTEMPTS)
    if answer is None:
        raise PartnerUnavailable(f"MoMo gave no answer about {payment.reference}")
    code = momo.result_code(answer.get("resultCode"))
    if code != momo.SUCCESS or momo.text(answer.get("orderId")) != payment.reference:
        reason = f"resultCode {code}: {momo.meaning(code)}"
        logger.warning("MoMo did not open %s: %s", payment.reference, reason)
        refused = code in momo.NOT_CREATED
        if refused:
            order_refused(payment, reason=reason, detail={"resultCode": code})
        raise PartnerUnavailable(
            f"MoMo did not open {payment.reference} ({reason})", refused=refused
        )
    pay_url = safe_link(answer.get("payUrl"), schemes=WEB_SCHEMES)
    app_url = safe_link(answer.get("deeplink"), schemes=APP_SCHEMES)
    if not pay_url and not app_url:
        raise PartnerUnavailable(f"MoMo's answer about {payment.reference} has no link to pay")
    remember(payment, redirect_url=pay_url, app_url=app_url)
    return _checkout(payment.provider_data)


# --- The IPN ------------------------------------------------------------------------------------
def _partner_named(partner_code: object) -> Partner | None:
    """The MoMo partner whose merchant code a message names (or the only one there is)."""
    partners = receiving.partners_speaking(PROTOCOL)
    for partner in partners:
        if partner.credentials.get("partner_code") == momo.text(partner_code):
            return partner
    return partners[0] if len(partners) == 1 else None


def ipn_receive(*, raw: str, headers: Mapping[str, str], remote_addr: str) -> Receipt:
    """Verify an IPN, store it in the inbox with its answer (204) and wake an applier.

    MoMo has a single answer (204, "received"): whatever the IPN says (a wrong amount, a payment
    already settled) is for the applier to decide under the payment's lock. An IPN about no
    payment of ours, or for another merchant code, is stored already processed. Raises
    Unreadable when the body is not a JSON object; database errors propagate."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise Unreadable(str(exc)) from None
    if not isinstance(body, dict):
        raise Unreadable("not a JSON object")
    reference = momo.text(body.get("orderId"))
    named = receiving.payment_named(reference, protocol=PROTOCOL)
    partner = named.partner if named is not None else _partner_named(body.get("partnerCode"))
    config = _config_or_none(partner)
    genuine = config is not None and momo.verify_result(body, config)
    unmatched: Applied | None = None
    if config is not None and momo.text(body.get("partnerCode")) != config.partner_code:
        unmatched = Applied(Outcome.WRONG_TERMINAL, momo.text(body.get("partnerCode")))
    elif named is None:
        unmatched = Applied(Outcome.ORDER_NOT_FOUND, reference)
    return receiving.notification_receive(
        code=partner.code if partner is not None else "MOMO",
        raw=raw,
        # One outcome of one MoMo transaction: MoMo's retries of it are stored once.
        identity=[
            reference,
            momo.text(body.get("partnerCode")),
            momo.text(body.get("transId")),
            momo.text(body.get("resultCode")),
            momo.text(body.get("amount")),
        ],
        signature=momo.text(body.get("signature")),
        partner=partner,
        genuine=genuine,
        payment_id=named.pk if named is not None and unmatched is None else None,
        unmatched=unmatched,
        headers=headers,
        remote_addr=remote_addr,
        answer=(204, None),
        refusal=(401, None),
    )


# --- Reading stored IPNs and status answers (the applier) ---------------------------------------
def _moment(value: object) -> datetime | None:
    """A MoMo time (milliseconds since the epoch) as an aware datetime; None when unreadable."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        milliseconds = int(value)
        return datetime.fromtimestamp(milliseconds / 1000, tz=UTC) if milliseconds > 0 else None
    except (ValueError, OverflowError, OSError):
        return None


def _amount(value: object) -> int | None:
    try:
        return momo.parse_amount(value)
    except ValueError:
        return None


def _report(
    body: Mapping[str, Any], *, message: Claimed, result: Result | None, query: bool
) -> reports.Report:
    code = momo.result_code(body.get("resultCode"))
    transaction_no = momo.text(body.get("transId"))
    transaction_no = "" if transaction_no == "0" else transaction_no
    reason = f"resultCode {code}: {momo.meaning(code)}"
    return reports.Report(
        reference=momo.text(body.get("orderId")),
        amount=_amount(body.get("amount")),
        result=result,
        report=services.Report(
            source=services.Source.QUERY if query else services.Source.IPN,
            message=message,
            detail={"resultCode": code, "transId": transaction_no},
        ),
        transaction_no=transaction_no,
        paid_at=_moment(body.get("lastUpdated") if query else body.get("responseTime")),
        reason=f"query: {reason}" if query else reason,
        settled=f"resultCode 0: {momo.meaning(momo.SUCCESS)}",
        teller=notes.THE_WALLET_QUERY if query else notes.THE_WALLET,
        amount_note=notes.WALLET_AMOUNT,
        reported_amount=momo.text(body.get("amount")),
        check_note=notes.WALLET_CHECK,
    )


def read(message: Claimed, partner: Partner | None) -> reports.Report | Applied:
    """A stored IPN (verified again) or status answer, read into a report."""
    try:
        body = json.loads(message.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return Applied(Outcome.UNREADABLE)
    config = _config_or_none(partner)
    if message.kind == InboundMessage.Kind.QUERY:
        # The answer of MoMo's own HTTPS API to our question: nothing to verify but its subject.
        if config is None:
            return Applied(Outcome.INVALID_SIGNATURE, "no credentials to read it with")
        if momo.text(body.get("partnerCode")) != config.partner_code:
            return Applied(Outcome.WRONG_PAYMENT, "the answer is about another merchant")
        code = momo.result_code(body.get("resultCode"))
        # A code about the query itself (42: MoMo has no such order yet) says nothing.
        result = momo.result_of(code) if code is not None else None
        return _report(body, message=message, result=result, query=True)
    if config is None or not momo.verify_result(body, config):
        return Applied(Outcome.INVALID_SIGNATURE, "the signature did not verify")
    if momo.text(body.get("partnerCode")) != config.partner_code:
        return Applied(Outcome.WRONG_TERMINAL, momo.text(body.get("partnerCode")))
    # An IPN always speaks of the payment: a code that says nothing of it is for a person.
    result = momo.result_of(momo.result_code(body.get("resultCode"))) or Result.REVIEW
    return _report(body, message=message, result=result, query=False)


# --- The status query, for the poller -----------------------------------------------------------
def ask(payment: Payment, *, now: datetime) -> reports.Answer | None:
    """Ask MoMo how the payment's order ended; its answer, or None when it gave none."""
    if payment.partner is None:
        raise NotConfigured("a wallet payment needs a partner")
    config = config_of(payment.partner)
    request_id = uuid.uuid4().hex
    body = momo.query_request(config, request_id=request_id, order_id=payment.reference)
    answer = http.post(config.api_url + momo.QUERY_PATH, body)
    if answer is None:
        return None
    return reports.Answer(body=answer, request_id=request_id, genuine=None)


# --- The return ---------------------------------------------------------------------------------
def return_verify(*, partner: Partner, params: Mapping[str, str]) -> ReturnReport:
    """Verify what the browser brought back from MoMo (signed like the IPN); never applied.
    Raises InvalidReturn when the signature or the merchant code is wrong."""
    config = _config_or_none(partner)
    values = {name: str(value) for name, value in params.items()}
    if config is None or not momo.verify_result(values, config):
        raise InvalidReturn
    if values.get("partnerCode") != config.partner_code:
        raise InvalidReturn
    payment = Payment.objects.filter(
        reference=values.get("orderId", ""), partner=partner, method=Payment.Method.REDIRECT
    ).first()
    code = momo.result_code(values.get("resultCode"))
    result = momo.result_of(code) or Result.REVIEW
    return ReturnReport(payment=payment, result=result, code="" if code is None else str(code))
