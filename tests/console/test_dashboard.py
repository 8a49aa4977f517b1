"""The non-cash rate per area and month, checked against a month computed by hand.

The month (October 2026), by service area:

Thành phố Hà Tĩnh (PA14HT), 6 customers billed:
  c1 VietQR, c2 bank payment page (SANDBOX), c3 Agribank app (collection), c4 cash at the counter,
  c5 not paid, c11 paid through VNPost then reversed (bill unpaid again)
  -> non-cash 3 / 6 = 50.00 %, cash 1, unpaid 2; 80 % of 6 = 4.8 -> 5 needed, 2 short.
Hồng Lĩnh (PA14HL), 5 customers billed:
  c6 VCB app, c7 VCB app (plus a duplicate VietQR payment refunded later: the bill was paid once),
  c8 cash to a collector, c9 cash at the counter, c12 VietQR
  -> non-cash 3 / 5 = 60.00 %, cash 2, unpaid 0; 80 % of 5 = 4 needed, 1 short.
Đức Thọ (PA14DT): nobody billed -> no rate.
Also: c6 paid September in cash (another month), c10 (Hồng Lĩnh) has a bill for September only.

Province: non-cash 6 / 11 = 54.55 %, cash 3, unpaid 2; 80 % of 11 = 8.8 -> 9 needed, 3 short.
Channels (province): VietQR 2 (c1, c12), bank page 1 (c2), collection 3 (VCB 2, Agribank 1),
cash 3 (counter 2, collector 1); shares of the 11 billed.
"""

from __future__ import annotations

import csv
import datetime
import io

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from console.charts import rate_chart
from customers.models import Bill
from payments import reports
from tests.console.factories import area, billed, customer_in, paid

pytestmark = pytest.mark.django_db

OCT = datetime.date(2026, 10, 1)
SEP = datetime.date(2026, 9, 1)


@pytest.fixture
def month():
    ht = area("PA14HT", "Điện lực Thành phố Hà Tĩnh")
    hl = area("PA14HL", "Điện lực Hồng Lĩnh")
    area("PA14DT", "Điện lực Đức Thọ")
    c = {}
    for n, (where, name) in enumerate(
        [
            (ht, "Nguyễn Văn Một"),
            (ht, "Trần Thị Hai"),
            (ht, "Lê Văn Ba"),
            (ht, "Phạm Thị Bốn"),
            (ht, "Hoàng Văn Năm"),
            (hl, "Phan Thị Sáu"),
            (hl, "Võ Văn Bảy"),
            (hl, "Đặng Thị Tám"),
            (hl, "Bùi Văn Chín"),
            (hl, "Đỗ Thị Mười"),
            (ht, "Hồ Văn Mười Một"),
            (hl, "Ngô Thị Mười Hai"),
        ],
        start=1,
    ):
        c[n] = customer_in(where, name=name, phone=f"09120000{n:02d}")
    paid(billed(c[1], OCT), method="vietqr", partner="VCB")
    paid(billed(c[2], OCT), method="redirect", partner="SANDBOX")
    paid(billed(c[3], OCT), method="collection", partner="AGRIBANK")
    paid(billed(c[4], OCT, amount=250_000), method="cash", partner="COUNTER")
    billed(c[5], OCT)
    reversed_bill = billed(c[11], OCT)
    paid(reversed_bill, method="collection", partner="VNPOST", status="reversed", pays_bill=False)
    paid(billed(c[6], OCT), method="collection", partner="VCB")
    c7_bill = billed(c[7], OCT)
    paid(c7_bill, method="collection", partner="VCB")
    paid(c7_bill, method="vietqr", partner="VCB", pays_bill=False, needs_refund=True)
    paid(billed(c[8], OCT, amount=180_000), method="cash", partner="COLLECTOR")
    paid(billed(c[9], OCT, amount=210_000), method="cash", partner="COUNTER")
    paid(billed(c[12], OCT), method="vietqr", partner="VCB")
    paid(billed(c[6], SEP), method="cash", partner="COUNTER")
    billed(c[10], SEP)
    return c


def test_the_rates_per_area_and_province_match_the_hand_computed_month(month):
    report = reports.noncash_report(period=OCT)
    rows = {a.code: (a.billed, a.non_cash, a.cash, a.unpaid, a.rate) for a in report.areas}
    assert rows == {
        "PA14HT": (6, 3, 1, 2, 50.0),
        "PA14HL": (5, 3, 2, 0, 60.0),
        "PA14DT": (0, 0, 0, 0, None),
    }
    total = report.total
    assert (total.billed, total.non_cash, total.cash, total.unpaid) == (11, 6, 3, 2)
    assert total.rate == 54.55
    assert report.target == 80.0
    short = {a.code: a.short_of_target for a in report.areas}
    assert short == {"PA14HT": 2, "PA14HL": 1, "PA14DT": 0}
    assert total.short_of_target == 3
    assert [a.code for a in report.below_target] == ["PA14HL", "PA14HT"]


def test_another_month_counts_only_its_own_bills(month):
    report = reports.noncash_report(period=SEP)
    assert {a.code: (a.billed, a.non_cash, a.cash) for a in report.areas if a.billed} == {
        "PA14HL": (2, 0, 1)
    }
    assert report.total.rate == 0.0


def test_the_drill_down_by_channel_and_partner(month):
    groups = reports.noncash_channels(period=OCT)
    summary = {
        g.method: (g.customers, g.share, {p.partner_code: p.customers for p in g.partners})
        for g in groups
    }
    assert summary == {
        "vietqr": (2, 18.18, {"VCB": 2}),
        "redirect": (1, 9.09, {"SANDBOX": 1}),
        "collection": (3, 27.27, {"VCB": 2, "AGRIBANK": 1}),
        "cash": (3, 27.27, {"COUNTER": 2, "COLLECTOR": 1}),
    }
    assert [g.method for g in groups] == ["collection", "redirect", "vietqr", "cash"]
    cash = next(g for g in groups if g.method == "cash")
    assert cash.amount == 250_000 + 180_000 + 210_000
    one_area = reports.noncash_channels(period=OCT, area_code="PA14HT")
    assert {g.method: g.customers for g in one_area} == {
        "vietqr": 1,
        "redirect": 1,
        "collection": 1,
        "cash": 1,
    }
    assert next(g for g in one_area if g.method == "cash").share == 16.67  # 1 of 6


def test_the_customers_still_paying_cash_for_outreach(month):
    rows = list(reports.cash_customers(period=OCT))
    assert [r["customer__name"] for r in rows] == ["Đặng Thị Tám", "Bùi Văn Chín", "Phạm Thị Bốn"]
    assert [r["paid_by__partner__name"] for r in rows] == [
        "Thu ngân viên tại nhà",
        "Quầy thu tiền điện lực",
        "Quầy thu tiền điện lực",
    ]
    assert [
        r["customer__name"] for r in reports.cash_customers(period=OCT, area_code="PA14HT")
    ] == ["Phạm Thị Bốn"]


def test_the_numbers_take_a_fixed_number_of_queries_whatever_the_number_of_customers(month):
    def dashboard_queries() -> list[str]:
        cache.clear()
        with CaptureQueriesContext(connection) as captured:
            tally = reports.month_tally(period=OCT)
            reports.noncash_report(period=OCT, tally=tally)
            reports.noncash_channels(period=OCT, tally=tally, area_code="PA14HL")
        return [q["sql"] for q in captured]

    few = dashboard_queries()
    for _ in range(5):
        more = customer_in(area("PA14HT", "Điện lực Thành phố Hà Tĩnh"))
        paid(billed(more, OCT), method="vietqr", partner="VCB")
    many = dashboard_queries()
    # The tally (one grouped query over the bills), the areas, one area's id, the partners.
    assert len(few) == len(many) == 4
    assert sum("customers_bill" in sql for sql in many) == 1


def test_the_tally_is_reused_from_the_cache_until_it_expires(month):
    first = reports.month_tally(period=OCT)
    paid(
        billed(customer_in(area("PA14DT", "Điện lực Đức Thọ")), OCT),
        method="cash",
        partner="COUNTER",
    )
    with CaptureQueriesContext(connection) as captured:
        again = reports.month_tally(period=OCT)
    assert len(captured) == 0 and again.rows == first.rows
    fresh = reports.month_tally(period=OCT, fresh=True)
    assert reports.noncash_report(period=OCT, tally=fresh).total.billed == 12


def test_the_target_comes_from_the_settings(month, settings):
    settings.NONCASH_TARGET_PERCENT = 55.0
    report = reports.noncash_report(period=OCT)
    assert report.target == 55.0
    assert [a.code for a in report.below_target] == ["PA14HT"]
    assert report.total.short_of_target == 1  # 55 % of 11 = 6.05 -> 7 needed, 6 reached


def test_the_default_month_is_the_last_one_with_a_whole_month_to_pay():
    periods = [datetime.date(2026, m, 1) for m in (10, 9, 8)]
    assert reports.report_default_period(periods, today=datetime.date(2026, 11, 27)) == SEP
    assert reports.report_default_period(periods, today=datetime.date(2026, 12, 1)) == OCT
    assert reports.report_default_period(periods[:1], today=datetime.date(2026, 11, 2)) == OCT
    assert reports.report_default_period([], today=datetime.date(2026, 11, 2)) is None


def test_the_chart_draws_each_area_and_the_province_against_the_target(month):
    chart = rate_chart(reports.noncash_report(period=OCT), total_label="Toàn tỉnh")
    bars = {bar.label: bar for bar in chart.bars}
    assert list(bars) == [  # best first, nobody billed last, the province at the bottom
        "Điện lực Hồng Lĩnh",
        "Điện lực Thành phố Hà Tĩnh",
        "Điện lực Đức Thọ",
        "Toàn tỉnh",
    ]
    width = chart.plot_right - chart.plot_left
    assert bars["Điện lực Hồng Lĩnh"].width == pytest.approx(0.60 * width, abs=0.1)
    assert bars["Điện lực Thành phố Hà Tĩnh"].width == pytest.approx(0.50 * width, abs=0.1)
    assert bars["Toàn tỉnh"].value == "54,55 %" and bars["Toàn tỉnh"].css == "bar-total"
    assert bars["Điện lực Đức Thọ"].value == "–" and bars["Điện lực Đức Thọ"].width == 0
    assert bars["Điện lực Hồng Lĩnh"].css == "bar-low"
    assert chart.target_x == pytest.approx(chart.plot_left + 0.8 * width, abs=0.1)


def test_the_dashboard_page_shows_the_numbers_chart_and_drill_down(month, supervisor_client):
    response = supervisor_client.get(reverse("console:dashboard"), {"month": "2026-10"})
    assert response.status_code == 200
    text = response.content.decode()
    assert "54,55 %" in text and "60,00 %" in text and "50,00 %" in text
    assert "chỉ tiêu 80 %" in text
    assert "<svg" in text and 'role="img"' in text and 'class="target"' in text
    # SVG coordinates are never written with a decimal comma.
    start = text.index("<svg", text.index('id="chart-heading"'))  # the areas, after the trend
    svg = text[start : text.index("</svg>", start)]
    assert 'width="258' in svg and ",5" not in svg.split("<desc")[0]
    assert "Kênh và đối tác thanh toán: toàn tỉnh" in text
    assert "Agribank" in text and "Thu ngân viên tại nhà" in text
    drill = supervisor_client.get(
        reverse("console:dashboard"), {"month": "2026-10", "area": "PA14HL"}
    ).content.decode()
    assert "Kênh và đối tác thanh toán: Điện lực Hồng Lĩnh" in drill
    assert "Tỷ lệ tính trên 5 khách hàng có hóa đơn." in drill


def test_unknown_months_and_areas_never_break_the_dashboard(month, finance_client):
    url = reverse("console:dashboard")
    for junk in ("2026-13", "abc", "99999-01", "2026-10-01", ""):
        assert finance_client.get(url, {"month": junk}).status_code == 200
    assert finance_client.get(url, {"month": "2026-10", "area": "NOPE"}).status_code == 404


def test_the_cash_list_and_its_csv_export(month, finance_client):
    page = finance_client.get(reverse("console:cash-customers"), {"month": "2026-10"})
    text = page.content.decode()
    assert "3 khách hàng đã thanh toán hóa đơn kỳ 10/2026 bằng tiền mặt" in text
    assert "Đặng Thị Tám" in text and "0912000008" in text
    export = finance_client.get(
        reverse("console:cash-customers-csv"), {"month": "2026-10", "area": "PA14HL"}
    )
    assert export.status_code == 200
    assert export["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="khach-hang-tien-mat-2026-10-PA14HL.csv"' in export["Content-Disposition"]
    body = b"".join(export.streaming_content).decode("utf-8")
    assert body.startswith("\ufeff")
    lines = list(csv.reader(io.StringIO(body.lstrip("\ufeff"))))
    assert lines[0][:3] == ["Mã khách hàng", "Họ tên", "Điện thoại"]
    assert [(line[1], line[5], line[6]) for line in lines[1:]] == [
        ("Đặng Thị Tám", "Thu ngân viên tại nhà", "180000"),
        ("Bùi Văn Chín", "Quầy thu tiền điện lực", "210000"),
    ]


def test_a_spreadsheet_formula_in_a_name_is_neutralised_in_the_export(finance_client):
    hl = area("PA14HL", "Điện lực Hồng Lĩnh")
    crafted = customer_in(hl, name='=HYPERLINK("http://evil.example","x")')
    paid(billed(crafted, OCT), method="cash", partner="COUNTER")
    export = finance_client.get(reverse("console:cash-customers-csv"), {"month": "2026-10"})
    body = b"".join(export.streaming_content).decode("utf-8")
    assert "'=HYPERLINK" in body


def test_a_month_not_yet_due_is_marked_so_and_not_measured_against_the_target(
    finance_client, month
):
    """October's bills fall due 44 days after the month starts: on a day before that, the rate
    is still growing and no "short of the target" figure is given."""
    from django.utils import timezone

    due = (
        Bill.objects.filter(period=OCT).order_by("-due_date").values_list("due_date", flat=True)[0]
    )
    cache.clear()
    Bill.objects.filter(period=OCT).update(
        due_date=timezone.localdate() + datetime.timedelta(days=3)
    )
    page = finance_client.get(reverse("console:dashboard"), {"month": "2026-10"}).content.decode()
    assert "chưa đến hạn thanh toán" in page and "tile-open" in page and "tile-low" not in page
    cache.clear()
    Bill.objects.filter(period=OCT).update(due_date=due)
    page = finance_client.get(reverse("console:dashboard"), {"month": "2026-10"}).content.decode()
    assert "chưa đến hạn thanh toán" not in page


# --- The trend over the last twelve months --------------------------------------------------------
def _months_before(period: datetime.date, count: int) -> datetime.date:
    index = period.year * 12 + period.month - 1 - count
    return datetime.date(index // 12, index % 12 + 1, 1)


@pytest.fixture
def year(month):
    """One more Hà Tĩnh household, billed from August 2025 to August 2026 and paying by VietQR:
    fifteen months of bills in all, so the trend must leave the oldest three out."""
    household = customer_in(area("PA14HT", "Điện lực Thành phố Hà Tĩnh"), name="Lý Văn Mười Ba")
    for back in range(2, 15):
        paid(billed(household, _months_before(OCT, back)), method="vietqr", partner="VCB")
    return month


def test_the_trend_gives_the_rate_of_each_of_the_last_twelve_months(year):
    periods = reports.report_periods()
    assert len(periods) == 15
    trend = reports.noncash_trend(periods=periods, period=OCT)
    assert [m.period for m in trend] == [_months_before(OCT, back) for back in range(11, -1, -1)]
    rates = [m.row.rate for m in trend]
    assert rates == [100.0] * 10 + [0.0, 54.55]  # September: c6 in cash, c10 unpaid
    assert (trend[-1].row.billed, trend[-1].row.non_cash) == (11, 6)
    # One area: Hồng Lĩnh had nobody billed until September.
    hong_linh = reports.noncash_trend(periods=periods, period=OCT, area_code="PA14HL")
    assert [m.row.rate for m in hong_linh] == [None] * 10 + [0.0, 60.0]
    # Up to an earlier month: the twelve months before it.
    earlier = reports.noncash_trend(periods=periods, period=SEP)
    assert earlier[0].period == _months_before(OCT, 12) and earlier[-1].period == SEP


def test_the_trend_reads_each_month_from_its_cached_tally(year):
    periods = reports.report_periods()
    cache.clear()
    with CaptureQueriesContext(connection) as cold:
        reports.noncash_trend(periods=periods, period=OCT)
    assert sum("customers_bill" in q["sql"] for q in cold) == 12
    with CaptureQueriesContext(connection) as warm:
        reports.noncash_trend(periods=periods, period=OCT)
    assert not any("customers_bill" in q["sql"] for q in warm)


def test_the_beat_task_warms_the_trend(year):
    from payments import tasks

    periods = reports.report_periods()
    cache.clear()
    tasks.warm_noncash_dashboard()
    with CaptureQueriesContext(connection) as captured:
        reports.noncash_trend(periods=periods, period=OCT)
    assert not any("customers_bill" in q["sql"] for q in captured)


def test_the_trend_chart_draws_a_column_per_month_and_marks_the_open_one(year):
    from django.utils import timezone

    from console.charts import TREND_PLOT_HEIGHT, trend_chart

    Bill.objects.filter(period=OCT).update(
        due_date=timezone.localdate() + datetime.timedelta(days=3)
    )
    cache.clear()
    trend = reports.noncash_trend(periods=reports.report_periods(), period=OCT)
    chart = trend_chart(trend, target=80.0, current=SEP)
    assert len(chart.columns) == 12
    first, september, october = chart.columns[0], chart.columns[-2], chart.columns[-1]
    assert first.height == TREND_PLOT_HEIGHT and first.css == "bar-ok"
    assert first.month == "11/2025" and first.value == "100,00 %"
    assert september.height == 0 and september.current and september.css == "bar-low"
    assert october.css == "bar-open" and not october.current and chart.has_open
    assert october.height == pytest.approx(0.5455 * TREND_PLOT_HEIGHT, abs=0.2)
    assert chart.target_y == pytest.approx(chart.plot_bottom - 0.8 * TREND_PLOT_HEIGHT, abs=0.1)
    assert (chart.first_month, chart.last_month) == ("11/2025", "10/2026")


def test_the_dashboard_shows_the_trend_of_the_province_or_the_chosen_area(year, finance_client):
    url = reverse("console:dashboard")
    page = finance_client.get(url, {"month": "2026-10"}).content.decode()
    assert "12 tháng gần nhất: toàn tỉnh" in page
    trend_svg = page[
        page.index('class="trend-chart"') : page.index("</svg>", page.index('class="trend-chart"'))
    ]
    assert trend_svg.count("<rect") == 12 and "11/2025" in trend_svg and "10/2026" in trend_svg
    assert ",5" not in trend_svg.split("<desc")[0]  # coordinates never with a decimal comma
    assert 'href="?month=2025-11"' in page  # each month of the table opens that month
    area_page = finance_client.get(url, {"month": "2026-10", "area": "PA14HL"}).content.decode()
    assert "12 tháng gần nhất: Điện lực Hồng Lĩnh" in area_page
    english = finance_client.get(url, {"month": "2026-10", "lang": "en"}).content.decode()
    assert "The last 12 months: whole province" in english
