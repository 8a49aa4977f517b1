"""The sandbox bank's pages and endpoints: pay, decide, querydr, pay a QR, and its back office."""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import redirect, render
from django.utils import timezone, translation
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from sandbox import bank, delivery, protocol, sms
from sandbox.models import BankTransaction, Notification, TextMessage, WalletOrder

# Translatable names of the decline reasons the page offers (protocol.DECLINE_CODES).
DECLINE_LABELS = {
    "24": gettext_lazy("Customer cancelled"),
    "51": gettext_lazy("Insufficient balance"),
    "11": gettext_lazy("Payment window expired"),
    "12": gettext_lazy("Account locked"),
    "13": gettext_lazy("Wrong OTP"),
    "65": gettext_lazy("Daily limit exceeded"),
    "75": gettext_lazy("Bank under maintenance"),
    "79": gettext_lazy("Wrong password too many times"),
    "09": gettext_lazy("Internet banking not enabled"),
    "10": gettext_lazy("Authentication failed 3 times"),
    "99": gettext_lazy("Other error"),
}
IPN_LABELS = {
    BankTransaction.IpnMode.DELIVER: gettext_lazy("Send it now"),
    BankTransaction.IpnMode.DELAY: gettext_lazy("Send it late"),
    BankTransaction.IpnMode.DROP: gettext_lazy("Never send it (a lost notification)"),
}


# A host[:port] that cannot smuggle anything into a Content-Security-Policy header.
_HOST = re.compile(r"[A-Za-z0-9.\-]+(:\d{1,5})?|\[[0-9A-Fa-f:.]+\](:\d{1,5})?")


def _language(locale: str) -> str:
    return "en" if locale == "en" else "vi"


def _bank_page_policy(return_url: str) -> str:
    # The decision is a form post answered by a redirect to the merchant, which browsers check
    # against form-action: allow exactly the merchant's return origin, nothing else.
    parts = urlsplit(return_url)
    target = ""
    if parts.scheme in ("http", "https") and _HOST.fullmatch(parts.netloc):
        target = f" {parts.scheme}://{parts.netloc}"
    return (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        f"object-src 'none'; base-uri 'self'; form-action 'self'{target}; frame-ancestors 'none'"
    )


def _problem(request: HttpRequest, *, code: str, reason: str, status: int = 400) -> HttpResponse:
    return render(request, "sandbox/problem.html", {"code": code, "reason": reason}, status=status)


@never_cache
@require_GET
def pay(request: HttpRequest) -> HttpResponse:
    """The bank's payment page, at the pay URL the merchant signs (vpcpay.html)."""
    params = {name: str(value) for name, value in request.GET.items()}
    with translation.override(_language(params.get("vnp_Locale", "vn"))):
        try:
            shop = bank.check_pay_request(params)
            tx = bank.transaction_open(params)
        except bank.Refused as refused:
            return _problem(request, code=refused.code, reason=refused.reason)
        if tx.state != BankTransaction.State.OPEN:
            response = render(
                request,
                "sandbox/done.html",
                {"tx": tx, "merchant": shop, "back_url": bank.return_redirect_url(tx, shop.secret)},
            )
        else:
            response = render(
                request,
                "sandbox/pay.html",
                {
                    "tx": tx,
                    "merchant": shop,
                    "amount": protocol.dong(tx.amount),
                    "expires": protocol.read_stamp(tx.expire_date),
                    "decline_codes": list(DECLINE_LABELS.items()),
                    "ipn_modes": list(IPN_LABELS.items()),
                    "ipn_default": bank.default_ipn_mode(),
                    "ipn_delay_minutes": max(1, round(bank.ipn_delay().total_seconds() / 60)),
                },
            )
    response["Content-Security-Policy"] = _bank_page_policy(tx.return_url)
    return response


@require_POST
def decide(request: HttpRequest) -> HttpResponse:
    """Approve or Decline: record the decision, queue the IPN, send the browser back."""
    choice = request.POST.get("decision", "")
    ipn_mode = request.POST.get("ipn", bank.default_ipn_mode())
    reason = request.POST.get("reason", "24")
    transaction_id = _uuid_or_none(request.POST.get("transaction"))
    tx = BankTransaction.objects.filter(pk=transaction_id).first() if transaction_id else None
    if tx is None:
        raise Http404
    with translation.override(_language(tx.locale)):
        if choice not in ("approve", "decline") or ipn_mode not in BankTransaction.IpnMode.values:
            return _problem(request, code="03", reason=_("Choose Approve or Decline."))
        try:
            tx = bank.transaction_decide(
                transaction_id=tx.pk,
                approve=choice == "approve",
                decline_code=reason,
                ipn_mode=ipn_mode,
            )
        except bank.Refused as refused:
            return _problem(request, code=refused.code, reason=refused.reason)
        shop = bank.merchant()
        if shop is None:  # the configuration changed under us
            return _problem(request, code="99", reason=_("The bank is not configured."))
        return redirect(bank.return_redirect_url(tx, shop.secret))


def _uuid_or_none(value: str | None) -> str | None:
    try:
        return str(uuid.UUID(str(value)))
    except ValueError:
        return None


@csrf_exempt
@require_POST
def querydr(request: HttpRequest) -> JsonResponse:
    """The merchant API's status query (POST JSON), answered signed."""
    try:
        body = json.loads(request.body or b"null")
    except (ValueError, UnicodeDecodeError, RecursionError):
        body = None
    return JsonResponse(bank.query_answer(body))


@dataclass
class _Transfer:
    account: str = ""
    amount: int | None = None
    content: str = ""
    bank_bin: str = ""


def _transfer_from_form(form: dict[str, str]) -> tuple[_Transfer, list[str]]:
    """What the customer wants to send: the typed fields, completed from the pasted code."""
    if any(not value.isprintable() for value in form.values()):
        return _Transfer(), [_("Use printable characters only.")]
    transfer = _Transfer(
        account=form["account"],
        amount=int(form["amount"])
        if form["amount"].isascii() and form["amount"].isdigit()
        else None,
        content=form["content"],
    )
    if form["payload"]:
        try:
            read = protocol.read_vietqr(form["payload"])
        except protocol.NotVietQR as exc:
            return transfer, [_("This is not a valid VietQR code (%(reason)s).") % {"reason": exc}]
        transfer.account = transfer.account or read.account
        transfer.amount = transfer.amount or read.amount
        transfer.content = transfer.content or read.purpose
        transfer.bank_bin = read.bank_bin
    errors = []
    if not transfer.account:
        errors.append(_("Enter the receiving account."))
    if not transfer.amount:
        errors.append(_("Enter the amount in dong."))
    if not transfer.content:
        errors.append(_("Enter the transfer note (the payment reference)."))
    return transfer, errors


@never_cache
@require_http_methods(["GET", "POST"])
def qr(request: HttpRequest) -> HttpResponse:
    """Pay a VietQR from a (pretend) banking app: the portal hears of it as a transfer."""
    form = {"payload": request.GET.get("payload", ""), "account": "", "amount": "", "content": ""}
    errors: list[str] = []
    if request.method == "POST":
        form = {name: request.POST.get(name, "").strip() for name in form}
        transfer, errors = _transfer_from_form(form)
        if not errors and transfer.amount:
            sent = bank.transfer_queue(
                account=transfer.account,
                amount=transfer.amount,
                content=transfer.content,
                bank_bin=transfer.bank_bin,
            )
            messages.success(
                request,
                _("Transfer #%(id)s of %(amount)s queued; the portal is told in a moment.")
                % {"id": sent.pk, "amount": protocol.dong(transfer.amount * 100)},
            )
            return redirect("sandbox:qr")
    recent = Notification.objects.filter(kind=Notification.Kind.TRANSFER)[:10]
    return render(
        request,
        "sandbox/qr.html",
        {"form": form, "errors": errors, "recent": recent},
        status=400 if errors else 200,
    )


@never_cache
@require_GET
def index(request: HttpRequest) -> HttpResponse:
    """The back office: recent payments at the bank and the wallets, and what the outbox did
    with their notifications."""
    return render(
        request,
        "sandbox/index.html",
        {
            "transactions": BankTransaction.objects.all()[:20],
            "orders": WalletOrder.objects.all()[:20],
            "notifications": Notification.objects.select_related("transaction")[:30],
            "now": timezone.now(),
        },
    )


@require_POST
def send_now(request: HttpRequest, notification_id: int) -> HttpResponse:
    """Make a delayed notification due now (the `sandbox_bank` process sends it)."""
    delivery.notification_send_now(notification_id=notification_id)
    return redirect("sandbox:index")


@csrf_exempt
@require_POST
def sms_gateway(request: HttpRequest) -> JsonResponse:
    """The SMS gateway the portal's adapter posts to in development and tests."""
    try:
        message = sms.receive(body=request.body, signature=request.headers.get("X-Signature", ""))
    except sms.Refused as refused:
        return JsonResponse({"error": str(refused)}, status=refused.status)
    return JsonResponse({"id": message.pk, "status": "accepted"})


# The newest e-mails written by Django's file backend shown on the outbox page.
MAIL_FILES_SHOWN = 20


def _mail_files() -> list[dict[str, str]]:
    if not settings.EMAIL_BACKEND.endswith("filebased.EmailBackend"):
        return []
    folder = Path(settings.EMAIL_FILE_PATH)
    files = sorted(folder.glob("*.log"), key=lambda f: f.stat().st_mtime, reverse=True)
    return [
        {"name": f.name, "text": f.read_text(encoding="utf-8", errors="replace")}
        for f in files[:MAIL_FILES_SHOWN]
    ]


@never_cache
@require_GET
def outbox(request: HttpRequest) -> HttpResponse:
    """What would have reached households: the SMS the portal sent to this gateway, and the
    e-mails of Django's file backend when it is the one configured."""
    return render(
        request,
        "sandbox/outbox.html",
        {
            "texts": TextMessage.objects.all()[:100],
            "mails": _mail_files(),
            "mail_backend": settings.EMAIL_BACKEND,
        },
    )
