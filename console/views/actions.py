"""Console actions. Each is a GET that shows what will happen and asks for a reason, then a POST
that calls one service (payments.services or console.services), which writes the audit entry.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any
from uuid import UUID

from django.conf import settings
from django.contrib import messages
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy
from django.views.decorators.http import require_http_methods

from common.error_messages import error_message
from console import selectors
from console import services as console_services
from console.forms import (
    CASH_CHANNELS,
    REASON_MAX_LENGTH,
    CashForm,
    CreditForm,
    ReasonForm,
)
from console.permissions import staff_required
from customers.models import Bill
from customers.permissions import (
    ASSIGN_TRANSFER,
    RECHECK_PAYMENT,
    RECORD_CASH,
    REFUND_PAYMENT,
    RESEND_RECEIPT,
    RESOLVE_TRANSFER,
    VIEW_CUSTOMER,
    VIEW_QUEUES,
)
from payments import services as payment_services
from payments.models import BankTransfer, Payment, ReminderMessage


def _error(exc: Exception) -> str:
    """What an agent reads when a rule refuses an action (by the error's `code`)."""
    context = getattr(exc, "context", {})
    return error_message(
        getattr(exc, "code", ""), str(gettext_lazy("The action could not be done.")), **context
    )


def _payment_or_404(payment_id: UUID) -> Payment:
    payment = selectors.payment_for_staff(payment_id=payment_id)
    if payment is None:
        raise Http404
    return payment


def _confirm(
    request: HttpRequest, template: str, form: ReasonForm, status: int = 200, **context: Any
) -> HttpResponse:
    return render(request, template, {"form": form, **context}, status=status)


# --- Payments -----------------------------------------------------------------------------------
def _payment_action(
    request: HttpRequest,
    payment_id: UUID,
    *,
    template: str,
    act: Callable[[Payment, Any, str], object],
    done: Callable[[Payment], str],
    label: Any = None,
    context: Callable[[Payment], dict[str, Any]] | None = None,
) -> HttpResponse:
    """The shape of every payment action: GET confirms, POST with a reason acts once."""
    payment = _payment_or_404(payment_id)
    form = ReasonForm(request.POST or None, **({"label": label} if label else {}))
    if request.method == "POST" and form.is_valid():
        try:
            act(payment, request.user, form.cleaned_data["reason"])
        except (console_services.ConsoleError, payment_services.PaymentError) as exc:
            messages.error(request, _error(exc))
        else:
            messages.success(request, done(payment))
        return redirect("console:customer", code=payment.customer.code)
    return _confirm(
        request,
        template,
        form,
        status=400 if form.is_bound else 200,
        payment=payment,
        **(context(payment) if context else {}),
    )


@require_http_methods(["GET", "POST"])
@staff_required(RECHECK_PAYMENT)
def payment_recheck(request: HttpRequest, payment_id: UUID) -> HttpResponse:
    return _payment_action(
        request,
        payment_id,
        template="console/confirm_recheck.html",
        act=lambda payment, actor, reason: console_services.payment_recheck(
            payment_id=payment.id, actor=actor, reason=reason
        ),
        done=lambda payment: (
            _("The bank is being asked about payment %(reference)s now. Reload in a minute.")
            % {"reference": payment.reference}
        ),
        context=lambda payment: {"possible": console_services.payment_can_recheck(payment)},
    )


@require_http_methods(["GET", "POST"])
@staff_required(RESEND_RECEIPT)
def payment_resend_receipt(request: HttpRequest, payment_id: UUID) -> HttpResponse:
    return _payment_action(
        request,
        payment_id,
        template="console/confirm_receipt.html",
        act=lambda payment, actor, reason: console_services.receipt_resend(
            payment_id=payment.id, actor=actor, reason=reason
        ),
        done=lambda payment: (
            _("The receipt of %(reference)s was sent again.") % {"reference": payment.reference}
        ),
        context=lambda payment: {"contacts": console_services.payment_receipt_contacts(payment)},
    )


# Sending a reminder again is the same trust as sending a receipt again: the same permission.
@require_http_methods(["GET", "POST"])
@staff_required(RESEND_RECEIPT, VIEW_CUSTOMER)
def reminder_resend(request: HttpRequest, message_id: int) -> HttpResponse:
    message = selectors.reminder_for_staff(message_id=message_id)
    if message is None:
        raise Http404
    form = ReasonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        entry = console_services.reminder_resend(
            message_id=message.pk, actor=request.user, reason=form.cleaned_data["reason"]
        )
        outcome = entry.detail["outcome"]
        if outcome == ReminderMessage.Status.SENT:
            messages.success(request, _("The reminder was sent again."))
        else:
            label = ReminderMessage.Status(outcome).label
            messages.error(request, _("The reminder was not sent: %(status)s.") % {"status": label})
        return redirect("console:customer", code=message.customer.code)
    return _confirm(
        request,
        "console/confirm_reminder.html",
        form,
        status=400 if form.is_bound else 200,
        message=message,
    )


@require_http_methods(["GET", "POST"])
@staff_required(REFUND_PAYMENT)
def payment_refund(request: HttpRequest, payment_id: UUID) -> HttpResponse:
    return _payment_action(
        request,
        payment_id,
        template="console/confirm_refund.html",
        label=gettext_lazy("How and when the money was given back"),
        act=lambda payment, actor, reason: payment_services.payment_refund(
            payment_id=payment.id, actor=actor, note=reason
        ),
        done=lambda payment: (
            _("Payment %(reference)s is marked refunded.") % {"reference": payment.reference}
        ),
        context=lambda payment: {
            "already_paid": [line for line in payment.lines.all() if not line.applied]
        },
    )


@require_http_methods(["GET", "POST"])
@staff_required(REFUND_PAYMENT)
def payment_review(request: HttpRequest, payment_id: UUID) -> HttpResponse:
    """Clear a payment flagged for review (a bank's contradicting report); supervisors only."""
    return _payment_action(
        request,
        payment_id,
        template="console/confirm_review.html",
        label=gettext_lazy("What was found and what was done"),
        act=lambda payment, actor, reason: payment_services.payment_review_clear(
            payment_id=payment.id, actor=actor, note=reason
        ),
        done=lambda payment: (
            _("Payment %(reference)s is marked reviewed.") % {"reference": payment.reference}
        ),
    )


# --- Cash at the counter ------------------------------------------------------------------------
@require_http_methods(["GET", "POST"])
@staff_required(VIEW_CUSTOMER, RECORD_CASH)
def cash(request: HttpRequest, code: str) -> HttpResponse:
    """Two steps: choose the bills (GET, then POST `step=review`), confirm the total (POST
    `step=confirm`). Only the confirmation records anything."""
    customer = console_services.customer_get_for_staff(code=code)
    if customer is None:
        raise Http404
    unpaid = list(customer.bills.filter(status=Bill.Status.UNPAID).order_by("period"))
    if request.method == "GET":
        form = CashForm(unpaid=unpaid, initial={"bills": [bill.number for bill in unpaid]})
        return render(request, "console/cash.html", {"customer": customer, "form": form})
    form = CashForm(request.POST, unpaid=unpaid)
    if not form.is_valid():
        return render(
            request, "console/cash.html", {"customer": customer, "form": form}, status=400
        )
    bills = form.chosen_bills()
    if request.POST.get("step") != "confirm":
        return render(
            request,
            "console/cash_confirm.html",
            {
                "customer": customer,
                "form": form,
                "bills": bills,
                "total": sum(bill.amount for bill in bills),
                "channel_label": dict(CASH_CHANNELS)[form.cleaned_data["channel"]],
            },
        )
    try:
        payment = payment_services.payment_record_cash(
            customer_code=customer.code,
            bill_numbers=[bill.number for bill in bills],
            actor=request.user,
            partner_code=form.cleaned_data["channel"],
            note=form.cleaned_data["note"],
        )
    except payment_services.PaymentError as exc:
        messages.error(request, _error(exc))
        return redirect("console:cash", code=customer.code)
    messages.success(request, _("Cash payment recorded. Print the receipt for the customer."))
    return redirect("console:receipt", payment_id=payment.id)


# --- Held money applied to bills ----------------------------------------------------------------
def _extra_transfer(raw: str | None) -> list[int]:
    """A transfer that names no payment, brought from its page: the agent knows whose it is."""
    return [int(raw)] if raw and raw.isdigit() and len(raw) < 19 else []


@require_http_methods(["GET", "POST"])
@staff_required(VIEW_CUSTOMER, ASSIGN_TRANSFER)
def credit_apply(request: HttpRequest, code: str) -> HttpResponse:
    """Like cash, in steps: choose money and bills (GET, then POST `step=review`), see what
    each credit gives and confirm (POST `step=confirm`). Only the confirmation applies it."""
    customer = console_services.customer_get_for_staff(code=code)
    if customer is None:
        raise Http404
    extra = _extra_transfer(request.GET.get("transfer") or request.POST.get("transfer"))
    held = payment_services.credits_held(customer=customer, transfer_ids=extra)
    if request.method == "POST" and request.POST.get("step") == "confirm":
        # Only money the review could show: the customer's own, and the one transfer brought.
        return _credit_confirm(request, customer.code, extra, {credit.key for credit in held})
    unpaid = list(customer.bills.filter(status=Bill.Status.UNPAID).order_by("period"))
    context: dict[str, Any] = {"customer": customer, "extra": extra[0] if extra else ""}
    if request.method == "GET":
        chosen = [f"transfer:{extra[0]}"] if extra else [credit.key for credit in held]
        form = CreditForm(
            credits=held,
            unpaid=unpaid,
            initial={"credits": chosen, "bills": [bill.number for bill in unpaid[:1]]},
        )
        return render(request, "console/credit_apply.html", {**context, "form": form})
    form = CreditForm(request.POST, credits=held, unpaid=unpaid)
    plan = None
    if form.is_valid():
        bills = form.chosen_bills()
        try:
            plan = payment_services.credit_plan(
                credits=form.chosen_credits(),
                total=sum(bill.amount for bill in bills),
                actor=request.user,
            )
        except payment_services.PaymentError as exc:
            form.add_error(None, _error(exc))
    if plan is None:
        return render(request, "console/credit_apply.html", {**context, "form": form}, status=400)
    return render(
        request,
        "console/credit_apply_confirm.html",
        {
            **context,
            "form": form,
            "bills": bills,
            "plan": plan,
            "threshold": settings.CREDIT_APPROVAL_ABOVE_VND,
            # The confirmation's own key: the same confirmation sent twice applies it once.
            "key": uuid.uuid4().hex,
        },
    )


def _credit_confirm(
    request: HttpRequest, code: str, extra: list[int], shown: set[str]
) -> HttpResponse:
    """The confirmation: what the review showed, applied by the service, which checks it all
    again under lock (the money may have been used meanwhile) and answers a repeat alike."""
    transfer_ids, payment_ids = [], []
    for value in request.POST.getlist("credits"):
        if value not in shown:
            continue  # the service then says what is missing, or that nothing was chosen
        kind, _sep, pk = value.partition(":")
        if kind == "transfer" and pk.isdigit() and len(pk) < 19:
            transfer_ids.append(int(pk))
        elif kind == "payment" and _is_uuid(pk):
            payment_ids.append(pk)
    back = reverse("console:credit-apply", args=[code]) + (f"?transfer={extra[0]}" if extra else "")
    try:
        payment = payment_services.credit_apply(
            customer_code=code,
            bill_numbers=[number[:32] for number in request.POST.getlist("bills")],
            transfer_ids=transfer_ids,
            payment_ids=payment_ids,
            actor=request.user,
            reason=request.POST.get("reason", "")[:REASON_MAX_LENGTH],
            key=request.POST.get("key", "")[:64],
        )
    except payment_services.PaymentError as exc:
        messages.error(request, _error(exc))
        return redirect(back)
    messages.success(
        request,
        _("The held money paid the bills: payment %(reference)s.")
        % {"reference": payment.reference},
    )
    return redirect(reverse("console:customer", args=[code]) + f"#p-{payment.reference}")


def _is_uuid(value: str) -> bool:
    try:
        UUID(value)
    except ValueError:
        return False
    return True


# --- Bank transfers -----------------------------------------------------------------------------
def _transfer_or_404(transfer_id: int) -> BankTransfer:
    transfer = selectors.transfer_for_staff(transfer_id=transfer_id)
    if transfer is None:
        raise Http404
    return transfer


@require_http_methods(["GET", "POST"])
@staff_required(VIEW_QUEUES, ASSIGN_TRANSFER)
def transfer_assign(request: HttpRequest, transfer_id: int, payment_id: UUID) -> HttpResponse:
    transfer = _transfer_or_404(transfer_id)
    payment = _payment_or_404(payment_id)
    form = ReasonForm(request.POST or None, label=gettext_lazy("How you recognised the payment"))
    if request.method == "POST" and form.is_valid():
        try:
            payment_services.transfer_assign(
                transfer_id=transfer.id,
                payment_id=payment.id,
                actor=request.user,
                reason=form.cleaned_data["reason"],
            )
        except payment_services.PaymentError as exc:
            messages.error(request, _error(exc))
            return redirect("console:transfer", transfer_id=transfer.id)
        messages.success(
            request,
            _("The transfer now pays %(reference)s.") % {"reference": payment.reference},
        )
        return redirect("console:customer", code=payment.customer.code)
    return _confirm(
        request,
        "console/confirm_assign.html",
        form,
        status=400 if form.is_bound else 200,
        transfer=transfer,
        payment=payment,
        amounts_match=transfer.amount == payment.amount,
    )


@require_http_methods(["GET", "POST"])
@staff_required(VIEW_QUEUES, RESOLVE_TRANSFER)
def transfer_resolve(request: HttpRequest, transfer_id: int) -> HttpResponse:
    transfer = _transfer_or_404(transfer_id)
    form = ReasonForm(request.POST or None, label=gettext_lazy("What was done with this money"))
    if request.method == "POST" and form.is_valid():
        try:
            payment_services.transfer_resolve(
                transfer_id=transfer.id, actor=request.user, note=form.cleaned_data["reason"]
            )
        except payment_services.PaymentError as exc:
            messages.error(request, _error(exc))
            return redirect("console:transfer", transfer_id=transfer.id)
        messages.success(request, _("The transfer is closed."))
        return redirect("console:home")
    return _confirm(
        request,
        "console/confirm_resolve.html",
        form,
        status=400 if form.is_bound else 200,
        transfer=transfer,
    )
