"""The managers' dashboard: non-cash rate per area and month against the target, its trend over
the last twelve months (province or one area), drill-down by channel and partner, and the
customers still paying cash (page and CSV) for outreach.

Open to the supervisor and finance roles (permission `view_noncash_report`; the CSV also needs
`export_cash_customers`): the numbers are the managers', and agents have no use for them.
"""

from __future__ import annotations

import csv
import datetime
from collections.abc import Iterator
from typing import Any
from urllib.parse import urlencode

from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse, StreamingHttpResponse
from django.shortcuts import render
from django.utils import timezone
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET

from console import services
from console.charts import ranked, rate_chart, trend_chart
from console.forms import parse_month
from console.permissions import staff_required
from customers.models import ServiceArea
from customers.permissions import EXPORT_CASH, VIEW_REPORT
from payments import reports

CASH_PER_PAGE = 50


def _choices(request: HttpRequest) -> tuple[list[datetime.date], datetime.date, ServiceArea | None]:
    """The months on offer, the chosen month (the latest by default) and the chosen area."""
    periods = reports.report_periods()
    chosen = parse_month(request.GET.get("month"))
    if chosen not in periods:
        chosen = reports.report_default_period(periods) or timezone.localdate().replace(day=1)
    area = None
    area_code = request.GET.get("area", "").strip()[:16]
    if area_code:
        area = ServiceArea.objects.filter(code=area_code).first()
        if area is None:
            raise Http404
    return periods, chosen, area


@require_GET
@staff_required(VIEW_REPORT)
def dashboard(request: HttpRequest) -> HttpResponse:
    periods, period, area = _choices(request)
    tally = reports.month_tally(period=period)
    report = reports.noncash_report(period=period, tally=tally)
    channels = reports.noncash_channels(
        period=period, area_code=area.code if area else None, tally=tally
    )
    focus = next((a for a in report.areas if area and a.code == area.code), report.total)
    # The last twelve billing months, whichever month is on show: where the rate is heading.
    trend = (
        reports.noncash_trend(
            periods=periods, period=periods[0], area_code=area.code if area else None
        )
        if periods
        else []
    )
    return render(
        request,
        "console/dashboard.html",
        {
            "periods": periods,
            "period": period,
            "month": period.strftime("%Y-%m"),
            "area": area,
            "report": report,
            "areas": ranked(report.areas),
            "focus": focus,
            "chart": rate_chart(report, total_label=_("Whole province")),
            "trend": trend,
            "trend_chart": trend_chart(trend, target=report.target, current=period)
            if trend
            else None,
            "channels": channels,
            "reminder_effect": reports.reminder_effect(
                period=period, area_code=area.code if area else None
            ),
            "cache_minutes": reports.REPORT_CACHE_SECONDS // 60,
        },
    )


def _list_name(period: datetime.date, area: ServiceArea | None) -> str:
    return f"{period:%Y-%m}{'-' + area.code if area else ''}"


@require_GET
@staff_required(VIEW_REPORT)
def cash_customers(request: HttpRequest) -> HttpResponse:
    _periods, period, area = _choices(request)
    rows = reports.cash_customers(period=period, area_code=area.code if area else None)
    raw_page = request.GET.get("page", "1")
    page = Paginator(rows, CASH_PER_PAGE).get_page(int(raw_page) if raw_page.isdigit() else 1)
    services.personal_data_viewed(
        actor=request.user,
        action="cash_customers_view",
        rows=len(page),
        target=_list_name(period, area),
        detail={"page": page.number},
    )
    return render(
        request,
        "console/cash_customers.html",
        {
            "period": period,
            "month": period.strftime("%Y-%m"),
            "area": area,
            "rows": page,
            "page_query": urlencode(
                {"month": f"{period:%Y-%m}", **({"area": area.code} if area else {})}
            )
            + "&",
        },
    )


class _Echo:
    """A file-like object whose write returns the line, for csv.writer in a streaming response."""

    def write(self, value: str) -> str:
        return value


def _cell(value: Any) -> Any:
    """Neutralise text a spreadsheet would run as a formula (CSV injection)."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def _csv_header() -> list[str]:
    return [
        _("Customer code"),
        _("Name"),
        _("Phone"),
        _("Address"),
        _("Service area"),
        _("Paid through"),
        _("Amount (VND)"),
        _("Paid at"),
    ]


def _csv_lines(header: list[str], rows: Iterator[dict[str, Any]]) -> Iterator[str]:
    writer = csv.writer(_Echo())
    # A byte-order mark so spreadsheet programs read the Vietnamese names as UTF-8.
    yield "\ufeff"
    yield writer.writerow(header)
    for row in rows:
        paid_at = row["paid_at"]
        yield writer.writerow(
            _cell(value)
            for value in [
                row["customer__code"],
                row["customer__name"],
                row["customer__phone"],
                row["customer__address"],
                row["customer__service_area__name"],
                row["paid_by__partner__name"] or "",
                row["amount"],
                timezone.localtime(paid_at).strftime("%Y-%m-%d %H:%M") if paid_at else "",
            ]
        )


@require_GET
@staff_required(VIEW_REPORT, EXPORT_CASH)
def cash_customers_csv(request: HttpRequest) -> StreamingHttpResponse:
    _periods, period, area = _choices(request)
    area_code = area.code if area else None
    # Audited before a row leaves: a download cut short has still handed data out.
    services.personal_data_viewed(
        actor=request.user,
        action="cash_customers_export",
        rows=reports.cash_customers(period=period, area_code=area_code).count(),
        target=_list_name(period, area),
    )
    rows = reports.cash_customers_iter(period=period, area_code=area_code)
    name = f"khach-hang-tien-mat-{_list_name(period, area)}.csv"
    response = StreamingHttpResponse(
        # The header is translated now: the body is written after the view has returned.
        _csv_lines(_csv_header(), rows),
        content_type="text/csv; charset=utf-8",
    )
    response["Content-Disposition"] = f'attachment; filename="{name}"'
    return response
