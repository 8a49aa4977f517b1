"""How the console shows an audit entry's details: in words, in the agent's language, amounts as
money (`{'amount': 200000}` becomes "Số tiền: 200.000 ₫")."""

from __future__ import annotations

from typing import Any

from django import template
from django.utils.translation import gettext_lazy as _

from portal.templatetags.portal_format import format_vnd

register = template.Library()

# The keys services write into `AuditEntry.detail`, with what each means.
DETAIL_LABELS = {
    "amount": _("Amount"),
    "bills": _("Bills"),
    "error": _("Error"),
    "held_money": _("Held money used"),
    "matches": _("Matches"),
    "outcome": _("Outcome"),
    "page": _("Page"),
    "partner": _("Partner"),
    "query": _("Search"),
    "rows": _("Rows shown"),
    "status": _("Status"),
    "to": _("Sent to"),
    "transfer": _("Transfer"),
}
MONEY = frozenset({"amount"})


def _value(key: str, value: Any) -> str:
    if key in MONEY and isinstance(value, int):
        return format_vnd(value)
    if isinstance(value, list | tuple):
        return ", ".join(str(item) for item in value) or "—"
    if isinstance(value, bool):
        return str(_("yes") if value else _("no"))
    return "—" if value in (None, "") else str(value)


@register.filter(name="audit_detail")
def audit_detail(detail: Any) -> list[tuple[str, str]]:
    """(label, value) pairs of an audit entry's detail, in a stable order."""
    if not isinstance(detail, dict):
        return []
    return [
        (str(DETAIL_LABELS.get(key, key.replace("_", " ").capitalize())), _value(key, value))
        for key, value in sorted(detail.items(), key=lambda item: str(item[0]))
    ]
