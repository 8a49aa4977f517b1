"""The one table from an error code to the sentence a person reads, whoever shows it: the public
API, the collection API and the household's pages all say the same thing of the same refusal.

The codes are the services' (payments/services.py) and the contract's (docs/interfaces.md).
Messages are lazy: each answer is rendered in its request's language.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from django.utils.formats import number_format
from django.utils.translation import gettext_lazy as _

if TYPE_CHECKING:
    from django.utils.functional import _StrPromise

ERROR_MESSAGES: dict[str, _StrPromise] = {
    "invalid_customer_code": _("This is not a valid customer code."),
    "customer_not_found": _("No customer has this code."),
    "payment_not_found": _("No payment has this id."),
    "bill_not_found": _("Some bills do not belong to this customer."),
    "bill_already_paid": _(
        "Some of these bills were paid meanwhile. Nothing was recorded; check the bills again."
    ),
    "nothing_to_pay": _("This customer has no unpaid bills."),
    "invalid_partner": _("This partner cannot take the payment."),
    "amount_mismatch": _("The bills come to %(expected)s VND, not %(received)s VND."),
    "invalid_transition": _(
        "Nothing was changed: this is no longer possible in the current state."
    ),
    "transaction_id_reused": _("This transaction id was already used for another payment."),
    # Refusals of the console's actions.
    "not_recheckable": _(
        "Only a bank-page payment that has not succeeded can be checked with the bank."
    ),
    "not_succeeded": _("Only a succeeded payment has a receipt."),
    "no_contact": _("Neither an e-mail address nor a phone number is known for this payment."),
    "receipt_failed": _(
        "The receipt could not be sent. The attempt is in the audit log; try again later."
    ),
    "credit_not_held": _(
        "Some of this money is no longer held for this customer (applied or closed meanwhile). "
        "Nothing was recorded; choose again."
    ),
    "not_enough_credit": _(
        "The money chosen is less than the bills. Choose fewer bills or more money."
    ),
    "approval_required": _(
        "This amount needs a supervisor: ask one to apply the money. Nothing was recorded."
    ),
}


def error_message(code: str, default: str = "", **values: Any) -> str:
    """The message of `code` in the active language, `default` for a code without one; `values`
    fill its placeholders (an error's context may hold more than they name)."""
    message = ERROR_MESSAGES.get(code)
    if message is None:
        return default
    text = str(message)
    if "%(" not in text:
        return text
    try:
        return text % {key: _shown(value) for key, value in values.items()}
    except (KeyError, TypeError, ValueError):  # a caller without the values it names
        return default or text


def _shown(value: Any) -> Any:
    # Amounts in VND read with the language's grouping: 452.160, not 452160.
    return number_format(value, force_grouping=True) if isinstance(value, int) else value
