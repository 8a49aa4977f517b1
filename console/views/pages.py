"""Console pages that only read: home with the queue counts, search, a customer, queues, audit."""

from __future__ import annotations

import json
from urllib.parse import urlencode
from uuid import UUID

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from console import selectors, services
from console.permissions import staff_required
from customers import paylinks
from customers.models import Bill
from customers.permissions import VIEW_AUDIT, VIEW_CUSTOMER, VIEW_QUEUES
from payments import services as payment_services
from payments.models import Payment
from payments.references import bill_reference

SEARCH_PER_PAGE = 25
QUEUE_PER_PAGE = 50
AUDIT_PER_PAGE = 50
# Written by payments.services (the first five) and console.services (the rest).
AUDIT_ACTIONS = (
    "cash_payment",
    "payment_refund",
    "transfer_assign",
    "transfer_resolve",
    "credit_apply",
    "payment_recheck",
    "receipt_resend",
    "reminder_resend",
    *services.PERSONAL_DATA_VIEWS,
)
# A raw message body beyond this is cut on the page (the full text stays in the inbox table).
MESSAGE_SHOWN = 20_000


def _page_number(request: HttpRequest) -> int:
    raw = request.GET.get("page", "1")
    return int(raw) if raw.isdigit() and 0 < len(raw) < 7 else 1


@require_GET
@staff_required()
def home(request: HttpRequest) -> HttpResponse:
    counts = selectors.queue_counts() if request.user.has_perm(VIEW_QUEUES) else []
    return render(request, "console/home.html", {"queues": counts})


@require_GET
@staff_required(VIEW_CUSTOMER)
def search(request: HttpRequest) -> HttpResponse:
    query = request.GET.get("q", "").strip()[:100]
    results = None
    too_short = False
    if query:
        exact = services.customer_get_for_staff(code=query)
        if exact is not None:
            return redirect("console:customer", code=exact.code)
        term = services.customer_search_term(query=query)
        too_short = len(term) < services.SEARCH_MIN_LENGTH
        results = Paginator(services.customer_search(query=query), SEARCH_PER_PAGE).get_page(
            _page_number(request)
        )
        services.personal_data_viewed(
            actor=request.user,
            action="customer_search",
            rows=len(results),
            target=query,
            detail={"page": results.number, "matches": results.paginator.count},
        )
    return render(
        request,
        "console/search.html",
        {
            "query": query,
            "results": results,
            "too_short": too_short,
            "page_query": urlencode({"q": query}) + "&",
        },
    )


@require_GET
@staff_required(VIEW_CUSTOMER)
def customer(request: HttpRequest, code: str) -> HttpResponse:
    found = services.customer_get_for_staff(code=code)
    if found is None:
        raise Http404
    payments = Paginator(selectors.customer_payments(customer=found), selectors.PAYMENTS_PER_PAGE)
    page = payments.get_page(_page_number(request))
    for payment in page:
        _decorate(payment)
    services.personal_data_viewed(
        actor=request.user, action="customer_view", rows=1, customer=found
    )
    return render(
        request,
        "console/customer.html",
        {
            "customer": found,
            "bills": _with_pay_links(selectors.customer_bills(customer=found)),
            "has_unpaid": found.bills.filter(status=Bill.Status.UNPAID).exists(),
            "held": payment_services.credits_held(customer=found),
            "payments": page,
            "audit": selectors.customer_audit(customer=found),
            "reminders": selectors.customer_reminders(customer=found),
        },
    )


def _with_pay_links(bills: list[Bill]) -> list[Bill]:
    """Each unpaid bill's own reference and pay link, to read out or send to a caller."""
    for bill in bills:
        if not bill.is_paid:
            bill.reference = bill_reference(bill.pk)  # type: ignore[attr-defined]
            if paylinks.is_enabled():
                bill.pay_path = paylinks.pay_path(  # type: ignore[attr-defined]
                    bill_id=bill.pk, due_date=bill.due_date
                )
    return bills


def _pretty(value: object) -> str:
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def _decorate(payment: Payment) -> None:
    """Display-only attributes the template cannot compute (raw messages as text, allowed
    actions); events' details are shown in words by the template (`audit_detail`)."""
    payment.can_recheck = services.payment_can_recheck(payment)  # type: ignore[attr-defined]
    for message in payment.messages.all():
        message.headers_text = _pretty(message.headers)  # type: ignore[attr-defined]
        body = message.body or ""
        message.body_text = body[:MESSAGE_SHOWN] + ("…" if len(body) > MESSAGE_SHOWN else "")  # type: ignore[attr-defined]


@require_GET
@staff_required(VIEW_CUSTOMER)
def payment_receipt(request: HttpRequest, payment_id: UUID) -> HttpResponse:
    """A receipt to print at the counter: full name and address, the agent who took the cash."""
    payment = selectors.payment_for_staff(payment_id=payment_id)
    if payment is None or payment.status not in (
        Payment.Status.SUCCEEDED,
        Payment.Status.REFUNDED,
    ):
        raise Http404
    entry = payment.audit_entries.filter(action="cash_payment").select_related("actor").first()
    services.personal_data_viewed(
        actor=request.user, action="receipt_view", rows=1, customer=payment.customer
    )
    return render(
        request,
        "console/receipt.html",
        {"payment": payment, "cashier": entry.actor if entry else None},
    )


@require_GET
@staff_required(VIEW_QUEUES)
def queue(request: HttpRequest, slug: str) -> HttpResponse:
    chosen = selectors.QUEUES_BY_SLUG.get(slug)
    if chosen is None:
        raise Http404
    rows = Paginator(chosen.rows(timezone.now()), QUEUE_PER_PAGE).get_page(_page_number(request))
    return render(request, "console/queue.html", {"queue": chosen, "rows": rows})


@require_GET
@staff_required(VIEW_QUEUES)
def transfer(request: HttpRequest, transfer_id: int) -> HttpResponse:
    found = selectors.transfer_for_staff(transfer_id=transfer_id)
    if found is None:
        raise Http404
    query = request.GET.get("q", "").strip()[:64]
    # The candidates show customers' names and addresses: listed, so audited.
    candidates = list(selectors.transfer_candidates(transfer=found, query=query))
    services.personal_data_viewed(
        actor=request.user,
        action="transfer_view",
        rows=len(candidates),
        target=found.external_id,
        detail={"transfer": found.pk, "query": query},
    )
    held = found.status in payment_services.HELD_TRANSFER_STATUSES
    return render(
        request,
        "console/transfer.html",
        {
            "transfer": found,
            "query": query,
            "candidates": candidates,
            "is_open": found.status in payment_services.OPEN_TRANSFER_STATUSES,
            "held": payment_services.transfer_held(transfer=found) if held else 0,
            # Whose money a transfer naming no payment is: the customer the agent looked up.
            "owner": services.customer_get_for_staff(code=query)
            if held and query and found.payment_id is None
            else None,
        },
    )


@require_GET
@staff_required(VIEW_AUDIT)
def audit(request: HttpRequest) -> HttpResponse:
    action = request.GET.get("action", "").strip()[:64]
    actor = request.GET.get("actor", "").strip()[:150]
    entries = Paginator(selectors.audit_entries(action=action, actor=actor), AUDIT_PER_PAGE)
    return render(
        request,
        "console/audit.html",
        {
            "entries": entries.get_page(_page_number(request)),
            "action": action,
            "actor": actor,
            "actions": AUDIT_ACTIONS,
            "page_query": urlencode({"action": action, "actor": actor}) + "&",
        },
    )
