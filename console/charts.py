"""The dashboard's charts as server-side SVG geometry: no JavaScript, no external service.

The templates `console/_rate_chart.html` (areas of a month) and `console/_trend_chart.html`
(twelve months) draw what this module computes; all styling comes from classes in
static/css/console.css and SVG presentation attributes (the CSP forbids inline style
attributes).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from common.templatetags.formatting import period as month_label
from payments.reports import AreaRate, NonCashReport, TrendMonth

WIDTH = 760
LABEL_WIDTH = 250
PLOT_LEFT = LABEL_WIDTH + 10
PLOT_WIDTH = 430
BAR_HEIGHT = 20
BAR_GAP = 10
TOP = 34
AXIS_HEIGHT = 28


def _x(percent: float) -> float:
    return round(PLOT_LEFT + PLOT_WIDTH * max(0.0, min(percent, 100.0)) / 100.0, 1)


@dataclass(frozen=True)
class Bar:
    label: str
    rate: float | None
    y: float
    width: float
    text_x: float
    text_y: float
    css: str
    value: str


@dataclass(frozen=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True)
class RateChart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: float
    bars: list[Bar]
    ticks: list[Tick]
    target_x: float
    target: float
    label_x: int
    tick_y: float
    target_label_y: int


def ranked(areas: list[AreaRate]) -> list[AreaRate]:
    """Highest non-cash rate first; areas nobody was billed in last."""
    return sorted(areas, key=lambda a: (a.rate is None, -(a.rate or 0.0), a.name))


def _percent(rate: float) -> str:
    return f"{rate:.2f}".replace(".", ",") + " %"


def _bar(row: AreaRate, label: str, index: int, target: float, *, total: bool) -> Bar:
    y = TOP + index * (BAR_HEIGHT + BAR_GAP) + (BAR_GAP if total else 0)
    rate = row.rate
    width = round(_x(rate) - PLOT_LEFT, 1) if rate is not None else 0.0
    if rate is None:
        css, value = "bar-none", "–"
    else:
        css = "bar-total" if total else ("bar-ok" if rate >= target else "bar-low")
        value = _percent(rate)
    return Bar(
        label=label,
        rate=rate,
        y=y,
        width=width,
        text_x=PLOT_LEFT + width + 6,
        text_y=y + BAR_HEIGHT * 0.72,
        css=css,
        value=value,
    )


def rate_chart(report: NonCashReport, *, total_label: str) -> RateChart:
    """One horizontal bar per area, best first, then the province total, on a 0–100 % axis with
    the target line."""
    bars = [
        _bar(area, area.name, i, report.target, total=False)
        for i, area in enumerate(ranked(report.areas))
    ]
    bars.append(_bar(report.total, total_label, len(bars), report.target, total=True))
    plot_bottom = bars[-1].y + BAR_HEIGHT + BAR_GAP / 2
    return RateChart(
        width=WIDTH,
        height=int(plot_bottom + AXIS_HEIGHT),
        plot_left=PLOT_LEFT,
        plot_right=PLOT_LEFT + PLOT_WIDTH,
        plot_top=TOP - 8,
        plot_bottom=plot_bottom,
        bars=bars,
        ticks=[Tick(x=_x(p), label=f"{p} %") for p in range(0, 101, 20)],
        target_x=_x(report.target),
        target=report.target,
        label_x=PLOT_LEFT - 10,
        tick_y=plot_bottom + 18,
        target_label_y=TOP - 14,
    )


# --- The trend: one column per month ------------------------------------------------------------
TREND_LEFT = 48
TREND_PLOT_WIDTH = 690
TREND_TOP = 34
TREND_PLOT_HEIGHT = 200


@dataclass(frozen=True)
class Level:
    y: float
    label: str


@dataclass(frozen=True)
class Column:
    month: str
    rate: float | None
    x: float
    y: float
    width: float
    height: float
    centre: float
    value: str
    value_y: float
    css: str
    current: bool


@dataclass(frozen=True)
class TrendChart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    plot_top: int
    plot_bottom: int
    columns: list[Column]
    levels: list[Level]
    target_y: float
    target: float
    month_y: int
    has_open: bool
    first_month: str
    last_month: str


def _y(percent: float) -> float:
    bottom = TREND_TOP + TREND_PLOT_HEIGHT
    return round(bottom - TREND_PLOT_HEIGHT * max(0.0, min(percent, 100.0)) / 100.0, 1)


def trend_chart(trend: list[TrendMonth], *, target: float, current: datetime.date) -> TrendChart:
    """One column per month, oldest first, on a 0–100 % axis with the target line; a month not
    yet due is drawn apart (its rate is still growing), the month on show is marked."""
    bottom = TREND_TOP + TREND_PLOT_HEIGHT
    slot = TREND_PLOT_WIDTH / max(len(trend), 1)
    width = round(slot * 0.6, 1)
    columns = []
    for index, month in enumerate(trend):
        rate = month.row.rate
        centre = round(TREND_LEFT + slot * (index + 0.5), 1)
        top = _y(rate) if rate is not None else float(bottom)
        if rate is None:
            css = "bar-none"
        elif month.is_open:
            css = "bar-open"
        else:
            css = "bar-ok" if rate >= target else "bar-low"
        columns.append(
            Column(
                month=month_label(month.period),
                rate=rate,
                x=round(centre - width / 2, 1),
                y=top,
                width=width,
                height=round(bottom - top, 1),
                centre=centre,
                value=_percent(rate) if rate is not None else "–",
                value_y=round(top - 6, 1),
                css=css,
                current=month.period == current,
            )
        )
    return TrendChart(
        width=WIDTH,
        height=bottom + 34,
        plot_left=TREND_LEFT,
        plot_right=TREND_LEFT + TREND_PLOT_WIDTH,
        plot_top=TREND_TOP,
        plot_bottom=bottom,
        columns=columns,
        levels=[Level(y=_y(p), label=f"{p} %") for p in range(0, 101, 20)],
        target_y=_y(target),
        target=target,
        month_y=bottom + 20,
        has_open=any(month.is_open for month in trend),
        first_month=columns[0].month if columns else "",
        last_month=columns[-1].month if columns else "",
    )
