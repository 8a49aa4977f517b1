"""What the staff console does that is not a payment transition: search, and the audit trail of
actions that ask for something (a bank re-check, a receipt) without changing a payment's state.

Payment and bill state changes stay in `payments.services`, which audits its own staff actions
(cash, refund, transfer assignment and resolution); this module audits the rest, through
`audit_record`, so every staff action leaves one `AuditEntry`: who, when, what and why.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from django.db import transaction
from django.db.models import QuerySet, Value
from django.db.models.functions import StrIndex

from common.text import fold
from customers.codes import is_valid_customer_code, normalise
from customers.models import AuditEntry, Customer
from payments.models import Payment, ReminderMessage

logger = logging.getLogger(__name__)

# pg_trgm needs three characters to use its index; shorter terms would scan 470,000 rows.
SEARCH_MIN_LENGTH = 3
_PHONE_LIKE = re.compile(r"^[\d\s.+()-]+$")


class ConsoleError(Exception):
    """A console action that cannot be done as asked. `code` names the reason."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code


# --- Search -------------------------------------------------------------------------------------
def customer_search_term(*, query: str) -> str:
    """The folded text to look for in `Customer.search_text`.

    Phone numbers are typed with spaces and dots and sometimes +84; customer codes with spaces
    and dashes: both are reduced to how `search_text` holds them. Anything else is folded
    (lower case, no diacritics), so `nguyen van a` finds `Nguyễn Văn A`.
    """
    query = (query or "").strip()[:100]
    if _PHONE_LIKE.fullmatch(query) and sum(ch.isdigit() for ch in query) >= SEARCH_MIN_LENGTH:
        digits = re.sub(r"\D", "", query)
        return "0" + digits[2:] if query.startswith("+84") else digits
    code = normalise(query)
    if is_valid_customer_code(code):
        return code.lower()
    return fold(query)


def customer_search(*, query: str) -> QuerySet[Customer]:
    """Customers whose code, name, phone or address contains the query, accent-insensitive.

    One `LIKE '%term%'` on the folded column, which the trigram index `customer_search_trgm`
    (migration customers/0003) serves on PostgreSQL, ranked by where the term is found. Terms
    under three characters find nothing.
    """
    term = customer_search_term(query=query)
    if len(term) < SEARCH_MIN_LENGTH:
        return Customer.objects.none()
    # Relevance: where the term starts in `search_text` (code, then name, phone, address), so a
    # code or a name that begins with it comes before a street that merely contains it.
    return (
        Customer.objects.select_related("service_area")
        .filter(search_text__contains=term)
        .annotate(hit_at=StrIndex("search_text", Value(term)))
        .order_by("hit_at", "code")
    )


def customer_get_for_staff(*, code: str) -> Customer | None:
    """A customer by exact code, active or not (staff also handle closed accounts)."""
    return Customer.objects.select_related("service_area").filter(code=normalise(code)).first()


# --- Audit --------------------------------------------------------------------------------------
def audit_record(
    *,
    actor: Any,
    action: str,
    reason: str,
    customer: Customer | None = None,
    payment: Payment | None = None,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Write one audit entry: who (`actor`), when (now), what (`action`, `target`), why."""
    return AuditEntry.objects.create(
        actor=actor,
        action=action,
        customer=customer or (payment.customer if payment else None),
        payment=payment,
        target=target or (payment.reference if payment else ""),
        reason=reason,
        detail=detail or {},
    )


# Reading personal data leaves a trace too: who looked at whose name, phone and address, when, and
# how many rows they saw or took away. The console's audit page lists these with the actions.
PERSONAL_DATA_VIEWS = (
    "customer_search",
    "customer_view",
    "cash_customers_view",
    "cash_customers_export",
    "receipt_view",
    "transfer_view",
)


def personal_data_viewed(
    *,
    actor: Any,
    action: str,
    rows: int,
    customer: Customer | None = None,
    target: str = "",
    detail: dict[str, Any] | None = None,
) -> AuditEntry:
    """Audit one view or export of personal data in the console: `rows` is how many customers'
    data it showed or handed out (kept in `detail["rows"]`)."""
    if action not in PERSONAL_DATA_VIEWS:
        raise ValueError(f"{action!r} is not a personal-data view")
    return audit_record(
        actor=actor,
        action=action,
        reason="",
        customer=customer,
        target=target or (customer.code if customer else ""),
        detail={**(detail or {}), "rows": rows},
    )


# --- Actions that ask, without changing a payment ------------------------------------------------
# A bank status query applies to redirect payments that have not settled: VietQR and cash have no
# query API, and payments.poller.payment_poll asks only about pending or expired ones.
RECHECKABLE = frozenset({Payment.Status.PENDING, Payment.Status.EXPIRED})


def payment_can_recheck(payment: Payment) -> bool:
    return payment.method == Payment.Method.REDIRECT and payment.status in RECHECKABLE


def payment_recheck(*, payment_id: Any, actor: Any, reason: str) -> AuditEntry:
    """Ask a worker to query the bank about this payment now; audited.

    The query runs in a worker (`payments.poller.payment_request_poll`), enqueued only once this
    transaction commits, and whatever the bank answers is applied by `payments.services`.
    """
    from payments.poller import payment_request_poll

    if not reason.strip():
        raise ConsoleError("reason_required", "Say why the bank is asked again.")
    with transaction.atomic():
        payment = Payment.objects.select_related("customer").get(pk=payment_id)
        if not payment_can_recheck(payment):
            raise ConsoleError(
                "not_recheckable", f"A {payment.method} {payment.status} payment is not queried."
            )
        entry = audit_record(
            actor=actor,
            action="payment_recheck",
            payment=payment,
            reason=reason,
            detail={"status": payment.status, "partner": getattr(payment.partner, "code", "")},
        )
        payment_request_poll(payment_id=payment.id)
    return entry


def payment_receipt_contacts(payment: Payment) -> dict[str, str]:
    """Where a receipt of this payment goes: the contact given at payment, else the customer's."""
    return {
        "email": payment.contact_email or payment.customer.email,
        "phone": payment.contact_phone or payment.customer.phone,
    }


def receipt_resend(*, payment_id: Any, actor: Any, reason: str) -> AuditEntry:
    """Send the receipt of a succeeded payment again, now; audited whether it went or not.

    Sent from this request rather than a worker so the agent on the phone hears at once whether
    it went; `payments.tasks.send_receipt` sends only a first receipt (it has no `force`).
    Raises ConsoleError `receipt_failed` (after auditing the attempt) when sending fails.
    """
    from payments.notifications import receipt_send

    if not reason.strip():
        raise ConsoleError("reason_required", "Say why the receipt is sent again.")
    payment = Payment.objects.select_related("customer").get(pk=payment_id)
    if payment.status != Payment.Status.SUCCEEDED:
        raise ConsoleError("not_succeeded", "Only a succeeded payment has a receipt.")
    contacts = {kind: value for kind, value in payment_receipt_contacts(payment).items() if value}
    if not contacts:
        raise ConsoleError("no_contact", "Neither an e-mail address nor a phone number is known.")
    outcome, error = "sent", ""
    try:
        # Outside any transaction: an e-mail server is slow I/O, and no row lock may wait on it.
        if not receipt_send(payment_id=str(payment.id), force=True):
            outcome = "not_sent"
    except Exception as exc:  # noqa: BLE001 - any backend failure is reported to the agent
        logger.warning("receipt of %s could not be resent: %s", payment.reference, exc)
        outcome, error = "failed", exc.__class__.__name__
    entry = audit_record(
        actor=actor,
        action="receipt_resend",
        payment=payment,
        reason=reason,
        detail={"outcome": outcome, "to": sorted(contacts), **({"error": error} if error else {})},
    )
    if outcome != "sent":
        raise ConsoleError("receipt_failed", "The receipt could not be sent.")
    return entry


def reminder_resend(*, message_id: int, actor: Any, reason: str) -> AuditEntry:
    """Send one of the customer's reminders again now, as an agent asked; audited whatever
    came of it. The reminder rules still hold (a paid bill, an opt-out, the quiet hours), and
    the status it ends in is in the audit entry's detail."""
    from payments import reminders

    if not reason.strip():
        raise ConsoleError("reason_required", "Say why the reminder is sent again.")
    message = ReminderMessage.objects.select_related("customer").get(pk=message_id)
    status = reminders.reminder_resend(message_id=message.pk)
    return audit_record(
        actor=actor,
        action="reminder_resend",
        customer=message.customer,
        reason=reason,
        target=f"{message.get_channel_display()} {message.day:%d/%m/%Y}",
        detail={"outcome": status, "channel": message.channel, "reminder": message.pk},
    )
