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


_DIGITS = ("không", "một", "hai", "ba", "bốn", "năm", "sáu", "bảy", "tám", "chín")


def _three(number: int, *, leading: bool) -> list[str]:
    """Words of 0-999 as a group of a larger number; `leading` when nothing comes before it
    (1.005.000: the inner group 005 reads "không trăm linh năm")."""
    hundreds, tens, units = number // 100, number // 10 % 10, number % 10
    words: list[str] = []
    if hundreds or not leading:
        words += [_DIGITS[hundreds], "trăm"]
    if tens == 0:
        if units and words:
            words.append("linh")
    elif tens == 1:
        words.append("mười")
    else:
        words += [_DIGITS[tens], "mươi"]
    if units:
        if units == 1 and tens >= 2:
            words.append("mốt")
        elif units == 5 and tens >= 1:
            words.append("lăm")
        else:
            words.append(_DIGITS[units])
    return words


def _below_a_billion(number: int, *, leading: bool) -> list[str]:
    """Words of 0-999,999,999 in groups of three: triệu, nghìn, units; zero groups left out."""
    words: list[str] = []
    for scale, group in (
        ("triệu", number // 10**6),
        ("nghìn", number // 1000 % 1000),
        ("", number % 1000),
    ):
        if group:
            words += _three(group, leading=leading and not words)
            if scale:
                words.append(scale)
    return words


def vnd_in_words(amount: int) -> str:
    """1383622 -> 'Một triệu ba trăm tám mươi ba nghìn sáu trăm hai mươi hai đồng', as a
    Vietnamese receipt writes the amount out ("bằng chữ"). Groups of zeros are left out; what
    is above a billion is read as a number of tỷ ("một nghìn năm trăm tỷ")."""
    amount = int(amount)
    if amount == 0:
        return "Không đồng"
    billions, rest = divmod(abs(amount), 10**9)
    words = [*_below_a_billion(billions, leading=True), "tỷ"] if billions else []
    words += _below_a_billion(rest, leading=not words)
    text = ("âm " if amount < 0 else "") + " ".join(words) + " đồng"
    return text[0].upper() + text[1:]


@register.filter(name="vnd_words")
def vnd_words(amount: int | None) -> str:
    return "" if amount is None else vnd_in_words(amount)


@register.filter(name="vnd")
def vnd(amount: int | None) -> str:
    return format_vnd(amount)


@register.filter(name="period")
def period(value: datetime.date | None) -> str:
    """A billing period as households read it on the bill: 'mm/yyyy'."""
    if value is None:
        return ""
    return f"{value.month:02d}/{value.year}"  # as strftime("%m/%Y"), in a quarter of the time


@register.filter(name="dmy")
def dmy(value: datetime.date | datetime.datetime | None) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime.datetime):
        from django.utils import timezone

        value = timezone.localtime(value)
        return value.strftime("%H:%M %d/%m/%Y")
    return f"{value.day:02d}/{value.month:02d}/{value.year}"  # strftime("%d/%m/%Y"), faster


@register.simple_tag(takes_context=True)
def language_url(context: template.Context, code: str) -> str:
    """The current page in another language: its query kept, `lang` replaced."""
    request = context.get("request")
    if request is None or not request.GET:
        return f"?lang={code}"
    params = request.GET.copy()
    params["lang"] = code
    return "?" + params.urlencode()
