"""Template filters for how households read money, periods and dates."""

from __future__ import annotations

import datetime

from django import template

register = template.Library()


def format_vnd(amount: int | None) -> str:
    """1234567 -> '1.234.567 ₫' (VND has no minor unit; the dot groups thousands)."""
    if amount is None:
        return ""
    sign = "-" if amount < 0 else ""
    return f"{sign}{abs(int(amount)):,} ₫".replace(",", ".")


@register.filter(name="vnd")
def vnd(amount: int | None) -> str:
    return format_vnd(amount)


@register.filter(name="period")
def period(value: datetime.date | None) -> str:
    """A billing period as households read it on the bill: 'mm/yyyy'."""
    if value is None:
        return ""
    return value.strftime("%m/%Y")


@register.filter(name="dmy")
def dmy(value: datetime.date | datetime.datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        from django.utils import timezone

        value = timezone.localtime(value)
        return value.strftime("%H:%M %d/%m/%Y")
    return value.strftime("%d/%m/%Y")


@register.simple_tag(takes_context=True)
def language_url(context: template.Context, code: str) -> str:
    """The current page in another language: its query kept, `lang` replaced."""
    request = context.get("request")
    params = request.GET.copy() if request is not None else None
    if params is None:
        return f"?lang={code}"
    params["lang"] = code
    return "?" + params.urlencode()
