"""The bills page's household-specific parts, ready to show: amounts and periods formatted, the
rows of both bill tables and the kWh chart drawn as HTML.

The page is the portal's busiest, and Django's template engine costs a few microseconds for
every value, tag and filter it renders: a year of bills in two tables and a chart was most of
the page's time (measured). The rows are therefore drawn here, each from one format string that
reads like the HTML it makes, with `format_html`, which escapes every value that is not marked
safe: a bill number comes from a billing file, and is escaped like any text in a template.
The fixed text around them is rendered once per language (`{% per_language %}` in the
template, common/templatetags/per_language.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from operator import attrgetter
from typing import Any, NamedTuple

from django.http import HttpRequest
from django.utils import translation
from django.utils.html import conditional_escape, format_html
from django.utils.safestring import SafeString, mark_safe
from django.utils.translation import gettext, ngettext

from common.skeleton import PageSkeletons
from common.templatetags.formatting import dmy, format_vnd, period
from customers import paylinks
from customers.selectors import BillLine, CustomerBills
from payments.models import Partner, Payment


class Gateway(NamedTuple):
    """A partner offering its payment page, as the page names it (part of the page's shape)."""

    code: str
    name: str
    redirect_protocol: str


@dataclass(frozen=True)
class BillsPage:
    """The bills page's values: `shape` decides which parts show, `slots` are what it shows
    (escaped as the template escapes them), `extra` what only a page rendered as usual reads;
    `plain` when the page is rendered as usual, for a request its skeleton cannot stand for."""

    shape: dict[str, Any]
    slots: dict[str, Any]
    extra: dict[str, Any]
    plain: bool


skeletons = PageSkeletons("portal/bills.html")


def render(request: HttpRequest, page: BillsPage) -> str:
    return skeletons.render(
        request, shape=page.shape, slots=page.slots, extra=page.extra, plain=page.plain
    )


def bills_page(
    lookup: CustomerBills,
    *,
    gateways: list[Partner],
    in_progress: Payment | None,
    plain: bool = False,
) -> BillsPage:
    """The bills page's values; `plain` when the request has more to show than the bills (flash
    messages) or reads its query (the language links keep it)."""
    unpaid = lookup.unpaid
    history = lookup.history
    total_due = format_vnd(lookup.total_due)
    chart = kwh_chart(history)
    slots = {
        "title": _translated(lambda: gettext("Bills of customer %(code)s"), code=lookup.code),
        "code": lookup.code,
        "customer_name": lookup.name,
        "address": lookup.address or "—",
        "service_area": lookup.service_area_name,
        "unpaid_rows": unpaid_rows(unpaid),
        "unpaid_summary": _translated(
            lambda: ngettext(
                "%(counter)s unpaid bill, in total",
                "%(counter)s unpaid bills, in total",
                len(unpaid),
            ),
            counter=len(unpaid),
        ),
        "total_due": total_due,
        "pay_label": _translated(lambda: gettext("Pay %(amount)s"), amount=total_due),
        "history_rows": history_rows(history),
        "chart_bars": chart.bars_svg if chart else "",
        "chart_description": _translated(
            lambda: gettext(
                "From %(first)s to %(last)s: lowest %(low)s kWh in %(low_period)s, highest "
                "%(high)s kWh in %(high_period)s."
            ),
            first=chart.first,
            last=chart.last,
            low=chart.lowest_kwh,
            low_period=chart.lowest_period,
            high=chart.highest_kwh,
            high_period=chart.highest_period,
        )
        if chart
        else "",
    }
    shape = {
        "has_overdue": lookup.has_overdue,
        "gateways": tuple(
            Gateway(partner.code, partner.name, partner.redirect_protocol) for partner in gateways
        ),
        "chart_has_unpaid": bool(chart and chart.has_unpaid),
        "chart_width": CHART_WIDTH,
        "chart_height": CHART_HEIGHT,
        "chart_baseline": CHART_HEIGHT - CHART_BOTTOM,
    }
    # A payment in progress is shown with filters and URLs of its own: rendered as usual.
    plain = plain or in_progress is not None
    return BillsPage(shape, slots, {"in_progress": in_progress}, plain)


def _(message: str) -> SafeString:
    """A translation of fixed text, escaped as `{% translate %}` escapes it in a page."""
    return conditional_escape(gettext(message))


def _translated(translate: Callable[[], str], **values: str | int) -> SafeString:
    """A translation with values, as `{% blocktranslate %}` puts it in a page: the values
    escaped, the translation not; a translation that does not fit its values gives way to the
    English text, as there. `translate` calls gettext or ngettext on the literal text, where
    makemessages finds it."""
    escaped = {name: conditional_escape(str(value)) for name, value in values.items()}
    try:
        return mark_safe(translate() % escaped)
    except (KeyError, ValueError, TypeError):
        with translation.override(None):
            return mark_safe(translate() % escaped)


# --- The two tables' rows -----------------------------------------------------------------------
# The whitespace is the template's of old: the page's HTML did not change when the rows moved.
_UNPAID_ROW = (
    "<tr{overdue_class}>\n"
    '        <th scope="row">{period}<input type="hidden" name="bills" value="{number}">'
    '<span class="sub">{kwh} kWh</span>{pay_link}</th>\n'
    "        <td>{due_date}{overdue_badge}</td>\n"
    '        <td class="num money">{amount}</td>\n'
    "      </tr>"
)
_PAY_LINK = '<a class="sub bill-link" href="{}" data-bill-link="{}">{}</a>'
_OVERDUE_CLASS = mark_safe(' class="is-overdue"')
_HISTORY_ROW = (
    "<tr>\n"
    '        <th scope="row">{period}<span class="sub">{kwh} kWh</span></th>\n'
    '        <td class="num money">{amount}</td>\n'
    "        <td>{status}</td>\n"
    "      </tr>"
)
_BADGE = '<span class="badge {}">{}</span>'


def unpaid_rows(unpaid: list[BillLine]) -> SafeString:
    """The unpaid bills' rows of the payment form: each bill's box, and its own pay link (its
    QR, to pay it alone or to share it) when pay links are enabled."""
    if not unpaid:
        return SafeString("")
    with_links = paylinks.is_enabled()
    link_label = _("This bill's QR and link")
    overdue_badge = format_html(" " + _BADGE, "badge-bad", _("Overdue"))
    return _joined(
        format_html(
            _UNPAID_ROW,
            overdue_class=_OVERDUE_CLASS if overdue else "",
            period=period(bill.period),
            number=bill.number,
            kwh=bill.kwh,
            pay_link=format_html(
                _PAY_LINK,
                paylinks.pay_path(bill_id=bill.id, due_date=bill.due_date),
                bill.number,
                link_label,
            )
            if with_links
            else "",
            due_date=dmy(bill.due_date),
            overdue_badge=overdue_badge if overdue else "",
            amount=format_vnd(bill.amount),
        )
        for bill, overdue in ((bill, bill.is_overdue) for bill in unpaid)
    )


def history_rows(history: list[BillLine]) -> SafeString:
    """The last twelve months' rows, each with its status. Unlike the unpaid rows they hold no
    text from the data, only numbers, dates and amounts formatted here, and badges made here:
    nothing to escape, so they are written without format_html's care (twelve on each page)."""
    if not history:
        return SafeString("")
    paid = format_html(_BADGE, "badge-ok", _("Paid"))
    overdue = format_html(_BADGE, "badge-bad", _("Overdue"))
    not_yet = format_html(_BADGE, "badge-warn", _("Not paid yet"))
    # f-strings rather than str.format with names (measured: a year's rows in 60 µs, not 79).
    return _joined(
        "<tr>\n"
        f'        <th scope="row">{period(bill.period)}'
        f'<span class="sub">{int(bill.kwh)} kWh</span></th>\n'
        f'        <td class="num money">{format_vnd(bill.amount)}</td>\n'
        f"        <td>{paid if bill.is_paid else overdue if bill.is_overdue else not_yet}</td>\n"
        "      </tr>"
        for bill in history
    )


def _joined(parts: Iterable[str]) -> SafeString:
    return SafeString("".join(parts))


# --- The kWh chart, drawn on the server as inline SVG -------------------------------------------
CHART_WIDTH = 360
CHART_HEIGHT = 190
CHART_TOP = 22  # room for the value above the tallest bar
CHART_BOTTOM = 40  # room for month and year under the bars
CHART_GAP = 6


class ChartBar(NamedTuple):
    x: float
    y: float
    width: float
    height: float
    kwh: int
    month: str
    year: str
    paid: bool

    @property
    def centre(self) -> float:
        return round(self.x + self.width / 2, 1)


@dataclass(frozen=True, slots=True)
class Chart:
    bars: list[ChartBar]
    bars_svg: SafeString
    # For the chart's description: the periods as households read them (mm/yyyy).
    first: str
    last: str
    lowest_kwh: int
    lowest_period: str
    highest_kwh: int
    highest_period: str
    has_unpaid: bool


def kwh_chart(history: list[BillLine]) -> Chart | None:
    """Bars of kWh per period, oldest on the left, scaled to the largest month."""
    if not history:
        return None
    bills = sorted(history, key=attrgetter("period"))
    peak = max(bill.kwh for bill in bills) or 1
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    slot = CHART_WIDTH / max(len(bills), 6)
    width = round(slot - CHART_GAP, 1)
    bars = []
    previous_year = None
    for index, bill in enumerate(bills):
        height = round(plot_height * bill.kwh / peak, 1)
        year = bill.period.year
        bars.append(
            # In the order of ChartBar's fields (x, y, width, height, kwh, month, year, paid):
            # positional, cheaper than by name.
            ChartBar(
                round(index * slot + CHART_GAP / 2, 1),
                round(CHART_TOP + plot_height - height, 1),
                width,
                height,
                bill.kwh,
                f"{bill.period.month:02d}",
                # The year under the first bar and under each January, not under every bar.
                str(year) if year != previous_year else "",
                bill.is_paid,
            )
        )
        previous_year = year
    lowest = min(bills, key=attrgetter("kwh"))
    highest = max(bills, key=attrgetter("kwh"))
    return Chart(
        bars=bars,
        bars_svg=_bars_svg(
            bars, month_y=CHART_HEIGHT - CHART_BOTTOM + 15, year_y=CHART_HEIGHT - CHART_BOTTOM + 30
        ),
        first=period(bills[0].period),
        last=period(bills[-1].period),
        lowest_kwh=lowest.kwh,
        lowest_period=period(lowest.period),
        highest_kwh=highest.kwh,
        highest_period=period(highest.period),
        has_unpaid=not all(bar.paid for bar in bars),
    )


def _bars_svg(bars: list[ChartBar], *, month_y: int, year_y: int) -> SafeString:
    """The bars as SVG. Every value is a number or a string of digits computed above, so there
    is nothing to escape. f-strings rather than str.format with names (measured: the chart in
    85 µs, not 110-150)."""
    parts = []
    for bar in bars:
        centre = bar.centre
        year = f'<text class="year" x="{centre}" y="{year_y}">{bar.year}</text>' if bar.year else ""
        parts.append(
            f'<g class="{"bar-paid" if bar.paid else "bar-unpaid"}">'
            f'<rect x="{bar.x}" y="{bar.y}" width="{bar.width}" height="{bar.height}" rx="3"/>'
            f'<text class="value" x="{centre}" y="{bar.y}" dy="-5">{int(bar.kwh)}</text>'
            f'<text class="month" x="{centre}" y="{month_y}">{bar.month}</text>{year}</g>'
        )
    return SafeString("".join(parts))
