"""The household's first pages: type the customer code, see the bills, choose how to pay."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from django.core.cache import cache
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.safestring import SafeString
from django.utils.translation import gettext as _
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_safe

from customers import paylinks, selectors
from customers.codes import InvalidCustomerCode, clean_customer_code
from customers.selectors import BillLine
from payments.channels import registry
from payments.models import Partner
from portal.ratelimit import lookup_hit_and_get
from portal.views import errors
from portal.views.in_progress import open_payment

logger = logging.getLogger(__name__)

GATEWAYS_CACHE_KEY = "partners:redirect"
GATEWAYS_CACHE_SECONDS = 300
# What is echoed back of a refused code: enough to spot the typo, not a page of garbage.
ECHO_LENGTH = 40


@require_safe
def home(request: HttpRequest) -> HttpResponse:
    raw = request.GET.get("code")
    if raw is None:
        return render(request, "portal/home.html", {})
    if not raw.strip():
        return _lookup_error(
            request, raw, status=400, message=_("Please enter your customer code.")
        )
    try:
        code = clean_customer_code(raw)
    except InvalidCustomerCode:
        return _lookup_error(request, raw, status=400)
    # No database work here: the bills page does the lookup (and counts it against the limit).
    return redirect("bills", code=code)


@never_cache
@require_safe
def bills(request: HttpRequest, code: str) -> HttpResponse:
    try:
        clean = clean_customer_code(code)
    except InvalidCustomerCode:
        clean = ""
    # The client's budget counted and the cached lookup read in one round trip.
    decision, cached = lookup_hit_and_get(
        request, cached=selectors.bills_cache_key(clean) if clean == code else None
    )
    if not decision.allowed:
        return errors.too_many_requests(request, retry_after=decision.retry_after)
    if not clean:
        return _lookup_error(request, code, status=400)
    if clean != code:
        # One address per customer, whatever was typed: 'pa14 ht…' becomes '/bills/PA14HT…/'.
        return redirect("bills", code=clean)
    lookup = selectors.customer_bills_lookup(code=clean, cached=cached)
    if lookup is None:
        return _lookup_error(request, clean, status=404)
    history = lookup.history
    response = render(
        request,
        "portal/bills.html",
        {
            "lookup": lookup,
            "unpaid": _with_pay_paths(lookup.unpaid),
            "total_due": lookup.total_due,
            "history": history,
            "chart": kwh_chart(history),
            "gateways": usable_gateways(),
            "in_progress": open_payment(request, clean),
        },
    )
    # A customer's page is nobody's business but theirs: keep it out of search engines.
    response["X-Robots-Tag"] = "noindex, nofollow"
    return response


def _with_pay_paths(unpaid: list[BillLine]) -> list[tuple[BillLine, str]]:
    """Each unpaid bill with its own pay link (its QR, to pay it alone or to share it), or ""."""
    enabled = paylinks.is_enabled()
    return [
        (bill, paylinks.pay_path(bill_id=bill.id, due_date=bill.due_date) if enabled else "")
        for bill in unpaid
    ]


def _lookup_error(
    request: HttpRequest, raw: str, *, status: int, message: str | None = None
) -> HttpResponse:
    if status == 404:
        title = _("We could not find this customer code")
        message = message or _(
            "No customer has this code. Please check it against your electricity bill and try "
            "again."
        )
    else:
        title = _("This customer code is not valid")
        message = message or _(
            "A customer code has 13 letters and digits and starts with P, for example "
            "PA14HT0012345. Please check it and try again."
        )
    return render(
        request,
        "portal/home.html",
        {"code": raw[:ECHO_LENGTH], "error_title": title, "error": message},
        status=status,
    )


def usable_gateways() -> list[Partner]:
    """Partners offering a payment page (a bank's, or a wallet's) that are enabled and configured
    with everything their protocol needs (e.g. SANDBOX in dev).

    The partner table changes a few times a year, so it is cached: the bills page then costs
    only the two lookup queries. Usability is checked on every request, since it also depends
    on this process's environment (the partner's secret).
    """
    partners: list[Partner] | None = None
    try:
        partners = cache.get(GATEWAYS_CACHE_KEY)
    except Exception:  # noqa: BLE001 - without the cache, ask the database
        logger.warning("partner cache unavailable")
    if partners is None:
        partners = list(Partner.objects.filter(offers_redirect=True, enabled=True))
        try:
            cache.set(GATEWAYS_CACHE_KEY, partners, timeout=GATEWAYS_CACHE_SECONDS)
        except Exception:  # noqa: BLE001
            logger.warning("could not cache the partner list")
    return [partner for partner in partners if registry.offered(partner)]


# --- The kWh chart, drawn on the server as inline SVG -------------------------------------------
CHART_WIDTH = 360
CHART_HEIGHT = 190
CHART_TOP = 22  # room for the value above the tallest bar
CHART_BOTTOM = 40  # room for month and year under the bars
CHART_GAP = 6


@dataclass(frozen=True)
class ChartBar:
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


def kwh_chart(history: list[BillLine]) -> dict[str, Any] | None:
    """Bars of kWh per period, oldest on the left, scaled to the largest month."""
    if not history:
        return None
    bars_data = sorted(history, key=lambda bill: bill.period)
    peak = max(bill.kwh for bill in bars_data) or 1
    plot_height = CHART_HEIGHT - CHART_TOP - CHART_BOTTOM
    slot = CHART_WIDTH / max(len(bars_data), 6)
    bars = []
    previous_year = None
    for index, bill in enumerate(bars_data):
        height = round(plot_height * bill.kwh / peak, 1)
        bars.append(
            ChartBar(
                x=round(index * slot + CHART_GAP / 2, 1),
                y=round(CHART_TOP + plot_height - height, 1),
                width=round(slot - CHART_GAP, 1),
                height=height,
                kwh=bill.kwh,
                month=bill.period.strftime("%m"),
                # The year under the first bar and under each January, not under every bar.
                year=str(bill.period.year) if bill.period.year != previous_year else "",
                paid=bill.is_paid,
            )
        )
        previous_year = bill.period.year
    month_y = CHART_HEIGHT - CHART_BOTTOM + 15
    year_y = CHART_HEIGHT - CHART_BOTTOM + 30
    lowest = min(bars_data, key=lambda bill: bill.kwh)
    highest = max(bars_data, key=lambda bill: bill.kwh)
    return {
        "width": CHART_WIDTH,
        "height": CHART_HEIGHT,
        "baseline": CHART_HEIGHT - CHART_BOTTOM,
        "bars": bars,
        "bars_svg": _bars_svg(bars, month_y=month_y, year_y=year_y),
        "first": bars_data[0].period,
        "last": bars_data[-1].period,
        "lowest": lowest,
        "highest": highest,
        "has_unpaid": any(not bar.paid for bar in bars),
    }


_BAR_SVG = (
    '<g class="{cls}"><rect x="{x}" y="{y}" width="{width}" height="{height}" rx="3"/>'
    '<text class="value" x="{centre}" y="{y}" dy="-5">{kwh}</text>'
    '<text class="month" x="{centre}" y="{month_y}">{month}</text>{year}</g>'
)
_YEAR_SVG = '<text class="year" x="{centre}" y="{year_y}">{year}</text>'


def _bars_svg(bars: list[ChartBar], *, month_y: int, year_y: int) -> SafeString:
    """The bars as SVG, drawn here rather than in the template: a dozen bars of nine numbers
    each were most of the bills page's rendering time (measured). Every value is a number or
    a string of digits computed above, so there is nothing to escape."""
    return SafeString(
        "".join(
            _BAR_SVG.format(
                cls="bar-paid" if bar.paid else "bar-unpaid",
                x=bar.x,
                y=bar.y,
                width=bar.width,
                height=bar.height,
                centre=bar.centre,
                kwh=int(bar.kwh),
                month_y=month_y,
                month=bar.month,
                year=_YEAR_SVG.format(centre=bar.centre, year_y=year_y, year=bar.year)
                if bar.year
                else "",
            )
            for bar in bars
        )
    )
