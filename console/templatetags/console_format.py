"""How the console shows what the system recorded, in words and in the agent's language: an audit
entry's or a payment event's details, amounts as money (`{'amount': 200000}` becomes "Số tiền:
200.000 ₫"); payment states by their names; the notes the system writes (`payments.notes`)."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext_lazy as _

from common.templatetags.formatting import format_vnd
from payments import notes
from payments.models import Payment

register = template.Library()

# The keys services write into `AuditEntry.detail`, with what each means.
DETAIL_LABELS = {
    "amount": _("Amount"),
    "applied_to": _("Paid the bills of payment"),
    "bank_transfer_id": _("Bank transfer no."),
    "bills": _("Bills"),
    "bills_already_paid": _("Bills already paid"),
    "bills_unpaid_again": _("Bills unpaid again"),
    "error": _("Error"),
    "flagged": _("Flagged for review"),
    "held_money": _("Held money used"),
    "matches": _("Matches"),
    "needs_refund": _("To refund"),
    "note": _("Note"),
    "outcome": _("Outcome"),
    "page": _("Page"),
    "partner": _("Partner"),
    "provider_txn_id": _("Bank transaction id"),
    "query": _("Search"),
    "reason": _("Reason"),
    "refunded": _("Refunded"),
    "reviewed": _("Review note"),
    "rows": _("Rows shown"),
    "status": _("Status"),
    "to": _("Sent to"),
    "transaction_id": _("Partner transaction id"),
    "transfer": _("Transfer"),
    "vnp_ResponseCode": _("Bank response code"),
    "vnp_TransactionNo": _("Bank transaction id"),
    "vnp_TransactionStatus": _("Bank transaction status"),
}
# A report the state machine recorded without effect (`ignored_fail`, ...).
IGNORED_PREFIX = "ignored_"
MONEY = frozenset({"amount", "needs_refund", "refunded"})
# Amounts by what gave them ({"FT26331000042": 300000}).
MONEY_BY_NAME = frozenset({"held_money"})
# Values that may be a note the system wrote (else an agent's own words, shown as they are).
NOTES = frozenset({"flagged", "reason", "reviewed", "note"})


def _value(key: str, value: Any) -> str:
    if key in MONEY and isinstance(value, int):
        return format_vnd(value)
    if key in MONEY_BY_NAME and isinstance(value, dict):
        return ", ".join(f"{name}: {format_vnd(amount)}" for name, amount in value.items())
    if key == "status" and isinstance(value, str):
        return payment_status(value)
    if (key in NOTES or key.startswith(IGNORED_PREFIX)) and isinstance(value, str):
        return notes.in_words(value) or "—"
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "—"
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    return "—" if value in (None, "") else str(value)


def _label(key: str) -> str:
    if key.startswith(IGNORED_PREFIX):
        return str(_("Report without effect"))
    return str(DETAIL_LABELS.get(key, key.replace("_", " ").capitalize()))


@register.filter(name="audit_detail")
def audit_detail(detail: Any) -> list[tuple[str, str]]:
    """(label, value) pairs of an audit entry's or a payment event's detail, in a stable order."""
    if not isinstance(detail, dict):
        return []
    return [
        (_label(key), _value(key, value))
        for key, value in sorted(detail.items(), key=lambda item: str(item[0]))
    ]


@register.filter(name="payment_status")
def payment_status(value: str) -> str:
    """A payment's state by its name ("pending" is "đang chờ")."""
    if value in Payment.Status.values:
        return str(Payment.Status(value).label)
    return value


@register.filter(name="note_words")
def note_words(text: str) -> str:
    """Notes the system wrote (a transfer's reason, a review flag), in the agent's language."""
    return notes.in_words(text or "")
