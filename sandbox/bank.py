"""The simulated bank's own rules: its merchant, payment decisions, status answers, transfers.

It knows the portal only as a merchant with a terminal code and a secret
(`settings.PARTNER_CREDENTIALS["SANDBOX"]`), a base URL (`settings.SANDBOX_PORTAL_URL`) and a
transfer-webhook key (`settings.TRANSFER_WEBHOOK_API_KEY`), like a real bank would.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode, urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from sandbox import protocol
from sandbox.models import BankTransaction, Notification, QueryRequest

# Where the merchant registered its notification endpoints with the bank.
IPN_PATH = "/callbacks/SANDBOX/ipn/"
TRANSFER_PATH = "/callbacks/transfers/"
BANK_CODE = "SANDBOX"
# Brand names of receiving banks, as transfer-notification services print them.
BANK_NAMES = {
    "970436": "Vietcombank",
    "970415": "VietinBank",
    "970418": "BIDV",
    "970405": "Agribank",
    "970407": "Techcombank",
    "970422": "MBBank",
    "970416": "ACB",
    "970432": "VPBank",
    "970423": "TPBank",
    "970403": "Sacombank",
    "970443": "SHB",
}


@dataclass(frozen=True)
class Merchant:
    tmn_code: str
    secret: str
    name: str


def merchant() -> Merchant | None:
    """The one merchant this bank serves, or None when it has no secret configured."""
    credentials = settings.PARTNER_CREDENTIALS.get("SANDBOX", {})
    if not credentials.get("secret") or not credentials.get("tmn_code"):
        return None
    return Merchant(
        tmn_code=credentials["tmn_code"],
        secret=credentials["secret"],
        name=str(settings.SANDBOX_MERCHANT_NAME),
    )


def portal_url() -> str:
    return str(settings.SANDBOX_PORTAL_URL).rstrip("/")


def default_ipn_mode() -> str:
    mode = str(settings.SANDBOX_IPN_MODE)
    return mode if mode in BankTransaction.IpnMode.values else BankTransaction.IpnMode.DELIVER


def ipn_delay() -> timedelta:
    return timedelta(seconds=int(settings.SANDBOX_IPN_DELAY_SECONDS))


# --- The payment page ---------------------------------------------------------------------------
class Refused(Exception):
    """The bank refuses the merchant's request; `code` is the protocol's code, if it has one."""

    def __init__(self, code: str, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


REQUIRED_PAY_FIELDS = (
    "vnp_Version",
    "vnp_Command",
    "vnp_TmnCode",
    "vnp_Amount",
    "vnp_CurrCode",
    "vnp_TxnRef",
    "vnp_OrderInfo",
    "vnp_ReturnUrl",
    "vnp_IpAddr",
    "vnp_CreateDate",
    "vnp_ExpireDate",
    "vnp_SecureHash",
)


def check_pay_request(params: Mapping[str, str], *, now: datetime | None = None) -> Merchant:
    """Everything the bank checks before it shows its payment page; raises Refused."""
    shop = merchant()
    if shop is None:
        raise Refused("99", _("The sandbox bank has no merchant configured."))
    missing = [name for name in REQUIRED_PAY_FIELDS if not params.get(name)]
    if missing:
        raise Refused("03", _("Missing fields: %(fields)s") % {"fields": ", ".join(missing)})
    if params["vnp_TmnCode"] != shop.tmn_code:
        raise Refused("02", _("Unknown merchant terminal."))
    if not protocol.hash_matches(params, shop.secret):
        raise Refused("97", _("Invalid signature."))
    if params["vnp_Version"] != "2.1.0" or params["vnp_Command"] != "pay":
        raise Refused("03", _("Unsupported version or command."))
    if params["vnp_CurrCode"] != "VND":
        raise Refused("03", _("Only VND is accepted."))
    amount = params["vnp_Amount"]
    if not (amount.isascii() and amount.isdigit()) or int(amount) <= 0 or int(amount) % 100:
        raise Refused("03", _("The amount must be a positive whole number of dong, times 100."))
    scheme = urlsplit(params["vnp_ReturnUrl"]).scheme
    if scheme not in ("http", "https"):
        raise Refused("03", _("The return URL must be http or https."))
    try:
        protocol.read_stamp(params["vnp_CreateDate"])
        expires = protocol.read_stamp(params["vnp_ExpireDate"])
    except ValueError as exc:
        raise Refused("03", _("Dates must be yyyyMMddHHmmss.")) from exc
    if expires <= (now or timezone.now()):
        raise Refused("11", _("The payment window has expired."))
    return shop


def transaction_open(params: Mapping[str, str]) -> BankTransaction:
    """The bank's record of this payment: new, or the one the merchant sent before."""
    fields = {
        "amount": int(params["vnp_Amount"]),
        "order_info": params["vnp_OrderInfo"],
        "order_type": params.get("vnp_OrderType", ""),
        "locale": params.get("vnp_Locale", "vn"),
        "return_url": params["vnp_ReturnUrl"],
        "ip_addr": params.get("vnp_IpAddr", ""),
        "create_date": params["vnp_CreateDate"],
        "expire_date": params["vnp_ExpireDate"],
        "bank_code": params.get("vnp_BankCode", ""),
    }
    try:
        with transaction.atomic():
            return BankTransaction.objects.create(
                tmn_code=params["vnp_TmnCode"], txn_ref=params["vnp_TxnRef"], **fields
            )
    except IntegrityError:
        existing = BankTransaction.objects.get(
            tmn_code=params["vnp_TmnCode"], txn_ref=params["vnp_TxnRef"]
        )
    if existing.amount != fields["amount"] or existing.create_date != fields["create_date"]:
        raise Refused("94", _("This merchant reference was already used for another payment."))
    return existing


def _new_transaction_no() -> str:
    while True:
        number = str(10_000_000 + secrets.randbelow(90_000_000))
        if not BankTransaction.objects.filter(transaction_no=number).exists():
            return number


def result_params(tx: BankTransaction, secret: str) -> dict[str, str]:
    """The signed parameters the bank sends back (return URL and IPN carry the same)."""
    values = {
        "vnp_Amount": str(tx.amount),
        "vnp_BankCode": tx.bank_code or BANK_CODE,
        "vnp_BankTranNo": tx.bank_tran_no,
        "vnp_CardType": tx.card_type,
        "vnp_OrderInfo": tx.order_info,
        "vnp_PayDate": tx.pay_date,
        "vnp_ResponseCode": tx.response_code,
        "vnp_TmnCode": tx.tmn_code,
        "vnp_TransactionNo": tx.transaction_no,
        "vnp_TransactionStatus": tx.transaction_status,
        "vnp_TxnRef": tx.txn_ref,
    }
    return protocol.signed({name: value for name, value in values.items() if value}, secret)


def return_redirect_url(tx: BankTransaction, secret: str) -> str:
    separator = "&" if "?" in tx.return_url else "?"
    return f"{tx.return_url}{separator}{urlencode(result_params(tx, secret))}"


def transaction_decide(
    *,
    transaction_id: Any,
    approve: bool,
    decline_code: str = "24",
    ipn_mode: str = BankTransaction.IpnMode.DELIVER,
    now: datetime | None = None,
) -> BankTransaction:
    """The customer approved or declined on the bank's page: record it once and queue the IPN.

    A second decision on the same payment changes nothing (the first one stands).
    """
    shop = merchant()
    if shop is None:
        raise Refused("99", _("The sandbox bank has no merchant configured."))
    now = now or timezone.now()
    with transaction.atomic():
        tx = BankTransaction.objects.select_for_update().get(pk=transaction_id)
        if tx.state != BankTransaction.State.OPEN:
            return tx
        if approve and tx.expire_date and protocol.read_stamp(tx.expire_date) <= now:
            approve, decline_code = False, "11"  # too late: the bank times the payment out
        if not approve and decline_code not in protocol.DECLINE_CODES:
            decline_code = "99"
        tx.state = BankTransaction.State.APPROVED if approve else BankTransaction.State.DECLINED
        tx.response_code = "00" if approve else decline_code
        tx.transaction_status = "00" if approve else "02"
        # A payment the customer cancelled never reached the bank's core: VNPay numbers it 0.
        tx.transaction_no = "0" if decline_code == "24" and not approve else _new_transaction_no()
        tx.bank_tran_no = f"SBX{tx.transaction_no}" if approve else ""
        tx.card_type = "ATM"
        tx.pay_date = protocol.stamp(now)
        tx.decided_at = now
        tx.ipn_mode = ipn_mode
        tx.save()
        if ipn_mode == BankTransaction.IpnMode.DROP:
            state, due = Notification.State.DROPPED, now
        elif ipn_mode == BankTransaction.IpnMode.DELAY:
            state, due = Notification.State.PENDING, now + ipn_delay()
        else:
            state, due = Notification.State.PENDING, now
        Notification.objects.create(
            kind=Notification.Kind.IPN,
            transaction=tx,
            url=portal_url() + IPN_PATH,
            payload=result_params(tx, shop.secret),
            state=state,
            next_attempt_at=due,
        )
    return tx


# --- querydr ------------------------------------------------------------------------------------
QUERY_FIELDS = (*protocol.QUERY_REQUEST_ORDER, "vnp_SecureHash")
QUERY_MESSAGES = {
    "00": "Request processed successfully",
    "02": "Invalid merchant terminal",
    "03": "Invalid request format",
    "91": "Transaction not found",
    "94": "Duplicate request",
    "97": "Invalid checksum",
    "99": "Unknown error",
}


def _query_answer(code: str, body: Mapping[str, Any], secret: str, **found: str) -> dict[str, str]:
    answer = {
        "vnp_ResponseId": uuid.uuid4().hex,
        "vnp_Command": "querydr",
        "vnp_ResponseCode": code,
        "vnp_Message": QUERY_MESSAGES[code],
        "vnp_TmnCode": str(body.get("vnp_TmnCode", ""))[:20],
        "vnp_TxnRef": str(body.get("vnp_TxnRef", ""))[:100],
        **found,
    }
    answer["vnp_SecureHash"] = protocol.query_response_hash(answer, secret) if secret else ""
    return answer


def query_answer(body: Any, *, now: datetime | None = None) -> dict[str, str]:
    """Answer a merchant's querydr: checks in the order 03, 02, 97, 94, 91; signed."""
    shop = merchant()
    secret = shop.secret if shop else ""
    if not isinstance(body, dict):
        return _query_answer("03", {}, secret)
    if shop is None:
        return _query_answer("99", body, secret)
    if any(not isinstance(body.get(name), str) or not body[name] for name in QUERY_FIELDS):
        return _query_answer("03", body, secret)
    if body["vnp_Command"] != "querydr" or len(body["vnp_RequestId"]) > 32:
        return _query_answer("03", body, secret)
    if body["vnp_TmnCode"] != shop.tmn_code:
        return _query_answer("02", body, secret)
    expected = protocol.query_request_hash(body, shop.secret)
    given = body["vnp_SecureHash"].lower()
    if not given.isascii() or not secrets.compare_digest(expected, given):
        return _query_answer("97", body, secret)
    today = timezone.localdate(now or timezone.now(), protocol.VIETNAM)
    try:
        with transaction.atomic():
            QueryRequest.objects.create(
                tmn_code=shop.tmn_code, request_id=body["vnp_RequestId"], day=today
            )
    except IntegrityError:
        return _query_answer("94", body, secret)
    tx = BankTransaction.objects.filter(
        tmn_code=shop.tmn_code,
        txn_ref=body["vnp_TxnRef"],
        create_date=body["vnp_TransactionDate"],
    ).first()
    if tx is None:
        return _query_answer("91", body, secret)
    status = {
        BankTransaction.State.OPEN: "01",
        BankTransaction.State.APPROVED: "00",
        BankTransaction.State.DECLINED: "02",
    }[BankTransaction.State(tx.state)]
    return _query_answer(
        "00",
        body,
        secret,
        vnp_Amount=str(tx.amount),
        vnp_BankCode=tx.bank_code or BANK_CODE,
        vnp_PayDate=tx.pay_date,
        vnp_TransactionNo=tx.transaction_no,
        vnp_TransactionType="01",
        vnp_TransactionStatus=status,
        vnp_OrderInfo=tx.order_info,
        vnp_PromotionCode="",
        vnp_PromotionAmount="",
    )


# --- Transfers to a VietQR ----------------------------------------------------------------------
def transfer_queue(
    *, account: str, amount: int, content: str, bank_bin: str = "", now: datetime | None = None
) -> Notification:
    """A credit to `account`, announced to the portal like SePay does (docs/protocols.md §3)."""
    now = now or timezone.now()
    with transaction.atomic():
        notification = Notification.objects.create(
            kind=Notification.Kind.TRANSFER, url=portal_url() + TRANSFER_PATH, next_attempt_at=now
        )
        earlier = sum(
            int(item.payload.get("transferAmount", 0))
            for item in Notification.objects.filter(kind=Notification.Kind.TRANSFER).exclude(
                pk=notification.pk
            )
            if item.payload.get("accountNumber") == account
        )
        notification.payload = {
            # The sender's id: the same on every retry, so the portal applies it once; random
            # (and JavaScript-safe) so that a reset sandbox never reuses one the portal has seen.
            "id": 10**12 + secrets.randbelow(9 * 10**12),
            "gateway": BANK_NAMES.get(bank_bin, "SandboxBank"),
            "transactionDate": now.astimezone(protocol.VIETNAM).strftime("%Y-%m-%d %H:%M:%S"),
            "accountNumber": account,
            "code": None,
            "content": content,
            "transferType": "in",
            "transferAmount": amount,
            "accumulated": earlier + amount,
            "subAccount": None,
            "referenceCode": f"SBX.{now.astimezone(protocol.VIETNAM):%y%m%d}."
            f"{secrets.randbelow(10**10):010d}",
        }
        notification.save(update_fields=["payload"])
    return notification
