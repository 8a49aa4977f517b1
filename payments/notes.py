"""The notes the system writes for agents: a bank transfer's reason, a payment's review flag, what
became of a bank message. They are stored in English, written from the templates here
(`Note.say`), and shown to agents in their own language (`in_words`), values and all.

A stored text may hold several notes one after another, and an agent's own words after a note
("Resolved: …"); whatever no template here wrote is shown as it is.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.db import models
from django.utils import formats
from django.utils.translation import gettext, gettext_noop

from payments.models import BankTransfer, Payment

_VALUE = re.compile(r"%\((\w+)\)s")
# Values shown as words of the agent's language, and amounts grouped the agent's way.
_CHOICES: dict[str, type[models.TextChoices]] = {
    "status": Payment.Status,
    "previous": Payment.Status,
    "transfer_status": BankTransfer.Status,
    "source": BankTransfer.Source,
}
_MONEY = frozenset({"amount", "expected", "used", "left", "payment_amount"})


@dataclass(frozen=True)
class Note:
    """One note, as an English template with %(name)s values (marked for translation)."""

    template: str

    def say(self, **values: Any) -> str:
        return self.template % values

    def pattern(self, name: str) -> str:
        """A regular expression that finds this note in a stored text, its values as groups."""
        parts = _VALUE.split(self.template)
        regex = []
        for index, part in enumerate(parts):
            if index % 2 == 0:
                regex.append(re.escape(part))
            elif index == len(parts) - 1:
                regex.append(f"(?P<{name}_{part}>[^\n]*)")  # the rest of the line: free text
            else:
                regex.append(f"(?P<{name}_{part}>[^\n]+?)")
        return f"(?P<{name}>{''.join(regex)})"


# --- Bank credits (payments.matching) -------------------------------------------------------------
OUTGOING = Note(gettext_noop("Outgoing transfer: money left the account."))
FOREIGN_ACCOUNT = Note(
    gettext_noop(
        "Credited to account %(account)s, not the receiving account %(receiving)s: not settled "
        "automatically."
    )
)
NO_REFERENCE = Note(gettext_noop("No valid payment reference in the note."))
NO_SUCH_PAYMENT = Note(
    gettext_noop("The note names %(references)s, but no VietQR payment has this reference.")
)
SEVERAL_PAYMENTS = Note(gettext_noop("The note names several payments: %(references)s."))
ALREADY_RECORDED = Note(
    gettext_noop(
        "Already recorded as bank transfer %(pk)s (%(transfer_status)s, from %(source)s); "
        "applied once."
    )
)
SAME_CREDIT = Note(gettext_noop("The same credit as inbox message %(message)s; applied once."))
SETTLED_TWICE = Note(
    gettext_noop(
        "Payment %(reference)s was already settled (%(status)s); this transfer of %(amount)s VND "
        "is money received twice and must be given back."
    )
)
WRONG_AMOUNT = Note(
    gettext_noop(
        "Payment %(reference)s expects %(expected)s VND; the transfer brought %(amount)s VND. "
        "The payment is left as it was."
    )
)
ARRIVED_AFTER = Note(
    gettext_noop(
        "Payment %(reference)s was %(previous)s when the money arrived; give it back or settle "
        "the bills by hand."
    )
)
MATCHED = Note(gettext_noop("Matched payment %(reference)s."))
MATCHED_LATE = Note(
    gettext_noop("Matched payment %(reference)s after it was %(previous)s (late transfer).")
)
SOME_PAID_ALREADY = Note(
    gettext_noop("Some of its bills were already paid: the payment carries a refund.")
)
MADE_WHOLE = Note(
    gettext_noop(
        "Matched payment %(reference)s together with the earlier transfer(s) %(earlier)s, which "
        "together bring its exact amount."
    )
)
MADE_WHOLE_EARLIER = Note(
    gettext_noop(
        "Matched payment %(reference)s together with transfer %(transfer)s, which brought the rest."
    )
)

# --- A payment's review flag (payments.services, the gateway) ------------------------------------
SECOND_TRANSACTION = Note(gettext_noop("A second bank transaction %(txn)s reported success."))
SUCCESS_FOR = Note(gettext_noop("The bank reported success for a %(previous)s payment."))
FAILURE_FOR = Note(gettext_noop("The bank reported failure (%(reason)s) for a %(status)s payment."))
GATEWAY_AMOUNT = Note(
    gettext_noop("%(teller)s reported %(reported)s (x100) for a payment of %(payment_amount)s VND.")
)
GATEWAY_CHECK = Note(gettext_noop("The bank reported something to check (%(reason)s)."))
THE_BANK = gettext_noop("The bank")
THE_STATUS_QUERY = gettext_noop("The bank's status query")
# Wallets (MoMo, ZaloPay) report whole dong.
WALLET_AMOUNT = Note(
    gettext_noop("%(teller)s reported %(reported)s VND for a payment of %(payment_amount)s VND.")
)
WALLET_CHECK = Note(gettext_noop("The wallet reported something to check (%(reason)s)."))
THE_WALLET = gettext_noop("The wallet")
THE_WALLET_QUERY = gettext_noop("The wallet's status query")

# --- What agents did to a transfer (payments.services) --------------------------------------------
CREDIT_USED = Note(
    gettext_noop("%(used)s VND applied by an agent to the bills of payment %(reference)s.")
)
CREDIT_LEFT = Note(gettext_noop("%(left)s VND still held."))
MATCHED_BY_AGENT = Note(gettext_noop("Matched by an agent: %(reason)s"))
RESOLVED = Note(gettext_noop("Resolved: %(note)s"))

NOTES: tuple[Note, ...] = tuple(
    value for value in list(globals().values()) if isinstance(value, Note)
)
# Words the notes take as values, translated where they stand.
_WORDS = frozenset({THE_BANK, THE_STATUS_QUERY, THE_WALLET, THE_WALLET_QUERY})


def _finder() -> re.Pattern[str]:
    # The longest templates first: "Matched payment X together with …" is not "Matched payment".
    ordered = sorted(enumerate(NOTES), key=lambda pair: -len(_VALUE.sub("", pair[1].template)))
    return re.compile("|".join(note.pattern(f"n{index}") for index, note in ordered))


_FINDER = _finder()


def _shown(name: str, value: str) -> str:
    choices = _CHOICES.get(name)
    if choices is not None and value in choices.values:
        return str(choices(value).label)
    if name in _MONEY and value.isdigit():
        return formats.number_format(int(value), force_grouping=True)
    if value in _WORDS:
        return gettext(value)
    return value


def in_words(text: str) -> str:
    """A stored text with every note in it in the current language."""

    def translate(found: re.Match[str]) -> str:
        name = found.lastgroup or ""
        note = NOTES[int(name[1:])]
        prefix = f"{name}_"
        values = {
            key.removeprefix(prefix): _shown(key.removeprefix(prefix), value)
            for key, value in found.groupdict().items()
            if key.startswith(prefix) and value is not None
        }
        return gettext(note.template) % values

    return _FINDER.sub(translate, text) if text else text
