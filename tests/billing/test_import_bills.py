"""import_bills: every row validated, bad rows reported by line, good rows loaded once."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from customers.billing_import import import_bills, rows_to_csv
from customers.models import Bill, Customer, ServiceArea

pytestmark = pytest.mark.django_db

GOOD = [
    ["PA14HT0000001", "Nguyễn Văn An", "Số 1, đường Trần Phú, phường Bắc Hà, TP Hà Tĩnh",
     "Điện lực Thành phố Hà Tĩnh", "0912 345 678", "an@example.vn", "HD2610000001", "2026-10",
     "180", "423468", "2026-11-20"],
    ["pa14ht 0000002", "Trần Thị Bình", "Xóm Đông Hà, xã Thạch Hạ, TP Hà Tĩnh", "PA14HT", "", "",
     "hd2610000002", "2026-10", "95", "207036", "2026-11-20"],
    ["PA14HL0000003", "Lê Văn Cường", "phường Bắc Hồng, TX Hồng Lĩnh", "Điện lực Hồng Lĩnh",
     "+84 912 000 111", "", "HD2610000003", "2026-10", "0", "0", "2026-11-20"],
]  # fmt: skip


def _file(rows, header=True):
    return io.StringIO(rows_to_csv(rows))


@pytest.fixture(params=[True, False], ids=["copy", "orm"])
def fast_path(request):
    return request.param


def test_it_loads_good_rows_and_creates_areas_customers_and_bills(fast_path):
    ServiceArea.objects.create(code="PA14HT", name="Điện lực Thành phố Hà Tĩnh")
    result = import_bills(_file(GOOD), fast_path=fast_path)
    assert (result.rows, result.rejected, result.bills_created) == (3, 0, 3)
    # Rows name an area by name or by code; the unknown Hồng Lĩnh is created.
    assert result.customers_created == 3 and result.areas_created == 1
    customer = Customer.objects.get(code="PA14HT0000002")
    assert customer.service_area.code == "PA14HT"
    assert (
        customer.search_text == "pa14ht0000002 tran thi binh xom dong ha, xa thach ha, tp ha tinh"
    )
    bill = Bill.objects.get(number="HD2610000002")
    assert bill.amount == 207_036 and bill.status == "unpaid" and str(bill.period) == "2026-10-01"
    assert Customer.objects.get(code="PA14HT0000001").phone == "0912345678"


def test_rerunning_the_same_file_changes_nothing(fast_path):
    import_bills(_file(GOOD), fast_path=fast_path)
    before = list(Customer.objects.values_list("code", "updated_at").order_by("code"))
    again = import_bills(_file(GOOD), fast_path=fast_path)
    assert (again.bills_created, again.bills_skipped, again.rejected) == (0, 3, 0)
    assert (again.customers_created, again.customers_updated) == (0, 0)
    assert list(Customer.objects.values_list("code", "updated_at").order_by("code")) == before
    assert Bill.objects.count() == 3 and ServiceArea.objects.count() == 3


BAD = [
    (["PX14", "A", "", "Area", "", "", "B1", "2026-10", "1", "1", "2026-11-01"], "invalid customer code"),
    (["PA14HT0000009", "", "", "Area", "", "", "B2", "2026-10", "1", "1", "2026-11-01"], "name is empty"),
    (["PA14HT0000009", "N", "", "", "", "", "B3", "2026-10", "1", "1", "2026-11-01"], "service area is empty"),
    (["PA14HT0000009", "N", "", "A", "abc", "", "B4", "2026-10", "1", "1", "2026-11-01"], "invalid phone"),
    (["PA14HT0000009", "N", "", "A", "", "x@", "B5", "2026-10", "1", "1", "2026-11-01"], "invalid e-mail"),
    (["PA14HT0000009", "N", "", "A", "", "", "", "2026-10", "1", "1", "2026-11-01"], "invalid bill number"),
    (["PA14HT0000009", "N", "", "A", "", "", "B7", "2026-13", "1", "1", "2026-11-01"], "is not YYYY-MM"),
    (["PA14HT0000009", "N", "", "A", "", "", "B8", "2026-10", "-5", "1", "2026-11-01"], "kwh"),
    (["PA14HT0000009", "N", "", "A", "", "", "B9", "2026-10", "1", "12.5", "2026-11-01"], "amount"),
    (["PA14HT0000009", "N", "", "A", "", "", "B10", "2026-10", "1", "-1", "2026-11-01"], "amount"),
    (["PA14HT0000009", "N", "", "A", "", "", "B11", "2026-10", "1", "1", "2026-02-30"], "due date"),
    (["PA14HT0000009", "N", "", "A", "", "", "B12", "2026-10", "1", "1", "2026-09-30"], "before the billing period"),
    (["PA14HT0000009", "N", "", "A", "", "", "B13", "2026-10", "1", "1"], "expected 11 columns"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "reason"), BAD, ids=[reason for _, reason in BAD])
def test_each_kind_of_bad_row_is_reported_with_its_line(row, reason):
    result = import_bills(_file([GOOD[0], row]))
    assert [error.line for error in result.errors] == [3]
    assert reason in result.errors[0].reason
    assert result.bills_created == 1


def test_duplicates_inside_the_file_are_rejected(fast_path):
    repeat_number = [*GOOD[1][:6], "HD2610000001", *GOOD[1][7:]]
    same_month = [*GOOD[0][:6], "HD2610000099", *GOOD[0][7:]]
    result = import_bills(_file([GOOD[0], repeat_number, same_month]), fast_path=fast_path)
    assert [(e.line, e.reason) for e in result.errors] == [
        (3, "bill number HD2610000001 repeats line 2"),
        (4, "customer PA14HT0000001 already has a bill for 2026-10 on line 2"),
    ]
    assert Bill.objects.count() == 1


def test_a_conflicting_reimport_is_rejected_never_rewritten(fast_path):
    import_bills(_file(GOOD), fast_path=fast_path)
    changed = [*GOOD[0][:9], "999999", GOOD[0][10]]
    other_number = [*GOOD[1][:6], "HD2610000777", *GOOD[1][7:]]
    result = import_bills(_file([changed, other_number, GOOD[2]]), fast_path=fast_path)
    assert [e.line for e in result.errors] == [2, 3]
    assert "already exists with different values" in result.errors[0].reason
    assert "already has bill HD2610000002 for 2026-10" in result.errors[1].reason
    assert Bill.objects.get(number="HD2610000001").amount == 423_468
    assert result.bills_skipped == 1


def test_strict_loads_nothing_when_any_row_is_bad(fast_path):
    bad = [*GOOD[2][:8], "x", *GOOD[2][9:]]
    result = import_bills(_file([GOOD[0], GOOD[1], bad]), strict=True, fast_path=fast_path)
    assert not result.loaded and result.rejected == 1
    assert not Bill.objects.exists() and not Customer.objects.exists()


def test_strict_loads_nothing_when_a_row_conflicts_with_the_database(fast_path):
    import_bills(_file([GOOD[0]]), fast_path=fast_path)
    changed = [*GOOD[0][:9], "1", GOOD[0][10]]
    result = import_bills(_file([GOOD[1], changed]), strict=True, fast_path=fast_path)
    assert not result.loaded
    assert Bill.objects.count() == 1 and not Customer.objects.filter(code="PA14HT0000002").exists()


def test_the_last_row_of_a_customer_updates_its_details(fast_path):
    import_bills(_file([GOOD[0]]), fast_path=fast_path)
    moved = [GOOD[0][0], "Nguyễn Văn An", "Số 9, đường Lê Duẩn, phường Nam Hà, TP Hà Tĩnh",
             *GOOD[0][3:6], "HD2611000001", "2026-11", "200", "474768", "2026-12-20"]  # fmt: skip
    result = import_bills(_file([moved]), fast_path=fast_path)
    assert result.customers_updated == 1 and result.bills_created == 1
    assert "Lê Duẩn" in Customer.objects.get(code="PA14HT0000001").address


def test_the_command_reports_bad_rows_loads_the_good_and_exits_non_zero(tmp_path):
    path = tmp_path / "bills.csv"
    path.write_text(rows_to_csv([GOOD[0], BAD[0][0], GOOD[1]]), encoding="utf-8")
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError, match="1 row"):
        call_command("import_bills", str(path), stdout=out, stderr=err)
    assert "line 3: invalid customer code" in err.getvalue()
    assert "2 bills created" in out.getvalue()
    assert Bill.objects.count() == 2


def test_the_command_with_strict_loads_nothing(tmp_path):
    path = tmp_path / "bills.csv"
    path.write_text(rows_to_csv([GOOD[0], BAD[0][0]]), encoding="utf-8")
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command("import_bills", str(path), "--strict", stdout=out, stderr=io.StringIO())
    assert "nothing loaded" in out.getvalue()
    assert not Bill.objects.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "empty"),
        ("code,name\nx,y\n", "header must be exactly"),
    ],
)
def test_an_unreadable_file_is_a_clear_error(tmp_path, content, message):
    path = tmp_path / "bills.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match=message):
        call_command("import_bills", str(path), stdout=io.StringIO(), stderr=io.StringIO())


def test_a_file_that_is_not_utf8_is_a_clear_error(tmp_path):
    path = tmp_path / "bills.csv"
    path.write_bytes(rows_to_csv([GOOD[0]]).encode("cp1258", errors="replace"))
    with pytest.raises(CommandError, match="UTF-8"):
        call_command("import_bills", str(path), stdout=io.StringIO(), stderr=io.StringIO())


def test_a_missing_file_is_a_clear_error():
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_bills", "/nonexistent.csv", stdout=io.StringIO())


def test_an_import_clears_the_cached_lookups_of_its_customers(django_capture_on_commit_callbacks):
    from django.core.cache import cache

    from customers.selectors import bills_cache_key

    cache.set(bills_cache_key("PA14HT0000001"), {"stale": True})
    cache.set(bills_cache_key("PA14XX0000009"), {"other": True})
    with django_capture_on_commit_callbacks(execute=True):
        import_bills(_file([GOOD[0]]))
    assert cache.get(bills_cache_key("PA14HT0000001")) is None
    assert cache.get(bills_cache_key("PA14XX0000009")) == {"other": True}


def test_within_one_file_the_last_row_of_a_customer_wins(fast_path):
    earlier = [*GOOD[0][:6], "HD2609000001", "2026-09", "150", "344520", "2026-10-20"]
    moved = [GOOD[0][0], "Nguyễn Văn Ân", "Số 9, đường Lê Duẩn, phường Nam Hà, TP Hà Tĩnh",
             *GOOD[0][3:]]  # fmt: skip
    result = import_bills(_file([earlier, moved]), fast_path=fast_path)
    assert result.customers_created == 1 and result.bills_created == 2
    customer = Customer.objects.get(code="PA14HT0000001")
    assert customer.name == "Nguyễn Văn Ân" and "le duan" in customer.search_text
    # And again, from the database: the earlier row no longer describes the customer.
    again = import_bills(_file([moved, earlier]), fast_path=fast_path)
    assert again.customers_updated == 1
    assert Customer.objects.get(code="PA14HT0000001").name == "Nguyễn Văn An"


def test_a_later_row_refused_for_its_bill_does_not_hide_an_earlier_rows_new_address(fast_path):
    import_bills(_file([GOOD[0]]), fast_path=fast_path)
    moved = [GOOD[0][0], "Nguyễn Văn An", "Số 9, đường Lê Duẩn, phường Nam Hà, TP Hà Tĩnh",
             *GOOD[0][3:6], "HD2611000001", "2026-11", "200", "474768", "2026-12-20"]  # fmt: skip
    conflicting = [*GOOD[0][:9], "999999", GOOD[0][10]]  # an existing bill, other amount
    result = import_bills(_file([moved, conflicting]), fast_path=fast_path)
    assert [e.line for e in result.errors] == [3]
    assert result.customers_updated == 1 and result.bills_created == 1
    assert "Lê Duẩn" in Customer.objects.get(code="PA14HT0000001").address
