"""Console forms: sign-in, the reason every action asks for, cash at the counter, held money
applied to bills, the month."""

from __future__ import annotations

import datetime
from typing import Any

from django import forms
from django.contrib.auth.forms import AuthenticationForm
from django.utils.translation import gettext_lazy as _

from common.templatetags.formatting import dmy, format_vnd, period
from customers.models import Bill
from payments.services import HeldCredit

REASON_MAX_LENGTH = 1000


class LoginForm(AuthenticationForm):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["username"].label = _("User name")
        self.fields["password"].label = _("Password")
        self.fields["username"].widget.attrs.update({"autocomplete": "username"})
        self.fields["password"].widget.attrs.update({"autocomplete": "current-password"})
        self.error_messages["invalid_login"] = _(
            "The user name or password is not correct. Both are case-sensitive."
        )
        self.error_messages["inactive"] = _("This account is disabled.")


class ReasonForm(forms.Form):
    """Every action is confirmed with a reason that goes into the audit log."""

    reason = forms.CharField(
        label=_("Reason"),
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 3}),
        help_text=_("Written to the audit log with your name and the time."),
    )

    def __init__(self, *args: Any, label: Any = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if label:
            self.fields["reason"].label = label


CASH_CHANNELS = [
    ("COUNTER", _("Cash at the counter")),
    ("COLLECTOR", _("Cash to a collector at home")),
]


class CashForm(forms.Form):
    """Which unpaid bills the customer pays in cash, through which cash channel, and a note."""

    bills = forms.MultipleChoiceField(
        label=_("Bills to pay"),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one bill.")},
    )
    channel = forms.ChoiceField(label=_("Channel"), choices=CASH_CHANNELS, initial="COUNTER")
    note = forms.CharField(
        label=_("Note"),
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Who paid, and the number of the paper receipt if one was written."),
    )

    def __init__(self, *args: Any, unpaid: list[Bill], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.unpaid = {bill.number: bill for bill in unpaid}
        bills_field = self.fields["bills"]
        assert isinstance(bills_field, forms.MultipleChoiceField)  # noqa: S101 - for mypy
        bills_field.choices = [(bill.number, _bill_label(bill)) for bill in unpaid]

    def chosen_bills(self) -> list[Bill]:
        return sorted(
            (self.unpaid[number] for number in self.cleaned_data["bills"]),
            key=lambda bill: bill.period,
        )


class CreditForm(forms.Form):
    """Which held money pays which unpaid bills of a customer, and why (for the audit log)."""

    credits = forms.MultipleChoiceField(
        label=_("Money to apply"),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose the money to apply.")},
    )
    bills = forms.MultipleChoiceField(
        label=_("Bills to pay"),
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Choose at least one bill.")},
    )
    reason = forms.CharField(
        label=_("Why this money pays these bills"),
        max_length=REASON_MAX_LENGTH,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text=_("Written to the audit log with your name and the time."),
    )

    def __init__(
        self, *args: Any, credits: list[HeldCredit], unpaid: list[Bill], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.held = {credit.key: credit for credit in credits}
        self.unpaid = {bill.number: bill for bill in unpaid}
        for name, choices in (
            ("credits", [(credit.key, credit_label(credit)) for credit in credits]),
            ("bills", [(bill.number, _bill_label(bill)) for bill in unpaid]),
        ):
            field = self.fields[name]
            assert isinstance(field, forms.MultipleChoiceField)  # noqa: S101 - for mypy
            field.choices = choices

    def chosen_credits(self) -> list[HeldCredit]:
        # In the order they are offered (oldest first): the order the service uses them in.
        return [credit for key, credit in self.held.items() if key in self.cleaned_data["credits"]]

    def chosen_bills(self) -> list[Bill]:
        return sorted(
            (self.unpaid[number] for number in self.cleaned_data["bills"]),
            key=lambda bill: bill.period,
        )


def credit_label(credit: HeldCredit) -> str:
    kind = (
        _("Bank transfer %(reference)s")
        if credit.kind == "transfer"
        else _("To give back from payment %(reference)s")
    )
    return (
        f"{kind % {'reference': credit.reference}} · {dmy(credit.at)} · {format_vnd(credit.amount)}"
    )


def _bill_label(bill: Bill) -> str:
    return f"{period(bill.period)} · {bill.number} · {format_vnd(bill.amount)}"


def parse_month(raw: str | None) -> datetime.date | None:
    """'2026-10' -> date(2026, 10, 1); anything else -> None."""
    try:
        year, month = (int(part) for part in (raw or "").split("-"))
        return datetime.date(year, month, 1)
    except ValueError:
        return None
