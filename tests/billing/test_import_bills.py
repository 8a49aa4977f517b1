"""import_bills: every row validated, bad rows reported by line, good rows loaded once."""

from __future__ import annotations

import io

import pytest
from django.conf import settings
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


# Both loaders on PostgreSQL; on SQLite (make test runs this file there too) the ORM loader only.
LOADERS = [True, False] if "postgresql" in settings.DATABASES["default"]["ENGINE"] else [False]


@pytest.fixture(params=LOADERS, ids=["sql", "orm"][-len(LOADERS) :])
def set_based(request):
    return request.param


def test_it_loads_good_rows_and_creates_areas_customers_and_bills(set_based):
    ServiceArea.objects.create(code="PA14HT", name="Điện lực Thành phố Hà Tĩnh")
    result = import_bills(_file(GOOD), set_based=set_based)
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


def test_rerunning_the_same_file_changes_nothing(set_based):
    import_bills(_file(GOOD), set_based=set_based)
    before = list(Customer.objects.values_list("code", "updated_at").order_by("code"))
    again = import_bills(_file(GOOD), set_based=set_based)
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
    (["PA14HT0000009", "N" * 201, "", "A", "", "", "B14", "2026-10", "1", "1", "2026-11-01"], "name is longer"),
    (["PA14HT0000009", "N", "x" * 301, "A", "", "", "B15", "2026-10", "1", "1", "2026-11-01"], "address is longer"),
    (["PA14HT0000009", "N", "", "A" * 101, "", "", "B16", "2026-10", "1", "1", "2026-11-01"], "area is longer"),
    (["PA14HT0000009", "N", "", "A", "", "x" * 65 + "@a.vn", "B17", "2026-10", "1", "1", "2026-11-01"], "invalid e-mail"),
    (["PA14HT0000009", "N", "", "A", "", "", "B" * 33, "2026-10", "1", "1", "2026-11-01"], "invalid bill number"),
    (["PA14HT0000009", "N", "", "A", "", "", "-B19", "2026-10", "1", "1", "2026-11-01"], "invalid bill number"),
    (["PA14HT0000009", "N", "", "A", "", "", "B20", "0000-10", "1", "1", "2026-11-01"], "is not YYYY-MM"),
    (["PA14HT0000009", "N", "", "A", "", "", "B21", "2026-10", "10000001", "1", "2026-11-01"], "kwh '10000001'"),
    (["PA14HT0000009", "N", "", "A", "", "", "B22", "2026-10", "1", "1" * 16, "2026-11-01"], "amount"),
    (["PA14HT0000009", "N", "", "A", "", "", "B23", "2026-10", "1", "10000000000000", "2026-11-01"], "amount"),
    (["PA14HT0000009", "N", "", "A", "", "", "B24", "2026-10", "1", "1", "2026-11-1"], "due date"),
    (["PA14HT0000009", "N", "", "A", "", "", "B25", "2026-10", "1", "1", "2027-02-29"], "due date"),
    (["PA14HT0000009", "N", "", "A", "", "", "B26", "2026-10", "١", "1", "2026-11-01"], "kwh"),
    (["PA14HT0000009", "N", "", "A", "", "", "B27", "2026-10", "1", "1", "2100-02-29"], "due date"),
    (["PA14HT0000009", "N", "", "A", "1" * 21, "", "B29", "2026-10", "1", "1", "2026-11-01"], "invalid phone"),
    (["PA14HT0000009", "N", "", "A", "", "", "B28", "2026-10", "1", "1", "2026-04-31"], "due date"),
]  # fmt: skip


@pytest.mark.parametrize(("row", "reason"), BAD, ids=[reason for _, reason in BAD])
def test_each_kind_of_bad_row_is_reported_with_its_line(row, reason, set_based):
    result = import_bills(_file([GOOD[0], row]), set_based=set_based)
    assert [error.line for error in result.errors] == [3]
    assert reason in result.errors[0].reason
    assert result.bills_created == 1


def test_duplicates_inside_the_file_are_rejected(set_based):
    repeat_number = [*GOOD[1][:6], "HD2610000001", *GOOD[1][7:]]
    same_month = [*GOOD[0][:6], "HD2610000099", *GOOD[0][7:]]
    result = import_bills(_file([GOOD[0], repeat_number, same_month]), set_based=set_based)
    assert [(e.line, e.reason) for e in result.errors] == [
        (3, "bill number HD2610000001 repeats line 2"),
        (4, "customer PA14HT0000001 already has a bill for 2026-10 on line 2"),
    ]
    assert Bill.objects.count() == 1


def test_a_conflicting_reimport_is_rejected_never_rewritten(set_based):
    import_bills(_file(GOOD), set_based=set_based)
    changed = [*GOOD[0][:9], "999999", GOOD[0][10]]
    other_number = [*GOOD[1][:6], "HD2610000777", *GOOD[1][7:]]
    result = import_bills(_file([changed, other_number, GOOD[2]]), set_based=set_based)
    assert [e.line for e in result.errors] == [2, 3]
    assert "already exists with different values" in result.errors[0].reason
    assert "already has bill HD2610000002 for 2026-10" in result.errors[1].reason
    assert Bill.objects.get(number="HD2610000001").amount == 423_468
    assert result.bills_skipped == 1


def test_strict_loads_nothing_when_any_row_is_bad(set_based):
    bad = [*GOOD[2][:8], "x", *GOOD[2][9:]]
    result = import_bills(_file([GOOD[0], GOOD[1], bad]), strict=True, set_based=set_based)
    assert not result.loaded and result.rejected == 1
    assert not Bill.objects.exists() and not Customer.objects.exists()


def test_strict_loads_nothing_when_a_row_conflicts_with_the_database(set_based):
    import_bills(_file([GOOD[0]]), set_based=set_based)
    changed = [*GOOD[0][:9], "1", GOOD[0][10]]
    result = import_bills(_file([GOOD[1], changed]), strict=True, set_based=set_based)
    assert not result.loaded
    assert Bill.objects.count() == 1 and not Customer.objects.filter(code="PA14HT0000002").exists()


def test_the_last_row_of_a_customer_updates_its_details(set_based):
    import_bills(_file([GOOD[0]]), set_based=set_based)
    moved = [GOOD[0][0], "Nguyễn Văn An", "Số 9, đường Lê Duẩn, phường Nam Hà, TP Hà Tĩnh",
             *GOOD[0][3:6], "HD2611000001", "2026-11", "200", "474768", "2026-12-20"]  # fmt: skip
    result = import_bills(_file([moved]), set_based=set_based)
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


def test_an_import_clears_every_cached_lookup_and_nothing_else(django_capture_on_commit_callbacks):
    from django.core.cache import cache

    from customers.selectors import bills_cache_key

    import_bills(_file([GOOD[1]]))
    cache.set(bills_cache_key("PA14HT0000001"), {"stale": True})
    cache.set(bills_cache_key("PA14HT0000002"), {"other": True})  # a customer the file leaves
    cache.set("ratelimit:signin:agent", 3)  # with Redis and without, the rest stays
    with django_capture_on_commit_callbacks(execute=True):
        import_bills(_file([GOOD[0]]))
    assert cache.get(bills_cache_key("PA14HT0000001")) is None
    assert cache.get(bills_cache_key("PA14HT0000002")) is None
    assert cache.get("ratelimit:signin:agent") == 3


def test_within_one_file_the_last_row_of_a_customer_wins(set_based):
    earlier = [*GOOD[0][:6], "HD2609000001", "2026-09", "150", "344520", "2026-10-20"]
    moved = [GOOD[0][0], "Nguyễn Văn Ân", "Số 9, đường Lê Duẩn, phường Nam Hà, TP Hà Tĩnh",
             *GOOD[0][3:]]  # fmt: skip
    result = import_bills(_file([earlier, moved]), set_based=set_based)
    assert result.customers_created == 1 and result.bills_created == 2
    customer = Customer.objects.get(code="PA14HT0000001")
    assert customer.name == "Nguyễn Văn Ân" and "le duan" in customer.search_text
    # And again, from the database: the earlier row no longer describes the customer.
    again = import_bills(_file([moved, earlier]), set_based=set_based)
    assert again.customers_updated == 1
    assert Customer.objects.get(code="PA14HT0000001").name == "Nguyễn Văn An"


def test_a_later_row_refused_for_its_bill_does_not_hide_an_earlier_rows_new_address(set_based):
    import_bills(_file([GOOD[0]]), set_based=set_based)
    moved = [GOOD[0][0], "Nguyễn Văn An", "Số 9, đường Lê Duẩn, phường Nam Hà, TP Hà Tĩnh",
             *GOOD[0][3:6], "HD2611000001", "2026-11", "200", "474768", "2026-12-20"]  # fmt: skip
    conflicting = [*GOOD[0][:9], "999999", GOOD[0][10]]  # an existing bill, other amount
    result = import_bills(_file([moved, conflicting]), set_based=set_based)
    assert [e.line for e in result.errors] == [3]
    assert result.customers_updated == 1 and result.bills_created == 1
    assert "Lê Duẩn" in Customer.objects.get(code="PA14HT0000001").address


def test_both_loaders_give_every_bad_row_the_same_words():
    """The SQL and the Python rules agree line for line (the SQLite run checks the ORM side)."""
    rows = [GOOD[0], *(row for row, _ in BAD), GOOD[1]]
    reasons = {}
    for set_based in LOADERS:
        result = import_bills(_file(rows), set_based=set_based, recheck=True)
        reasons[set_based] = [(error.line, error.reason) for error in result.errors]
        Bill.objects.all().delete()
    assert len(reasons[False]) == len(BAD)
    assert all(found == reasons[False] for found in reasons.values())


def test_values_are_trimmed_and_codes_read_as_typed(set_based):
    full_width = ["\u00a0ＰＡ１４ＨＴ０００００１２ ", " Ngô Thị Hà\u3000", "", "PA14HT", "0912.345.678",
                  "HA@Example.VN", " hd-12 ", "2026-10", "7", "16000", "2026-11-20"]  # fmt: skip
    result = import_bills(_file([full_width]), set_based=set_based)
    assert result.rejected == 0, result.errors
    customer = Customer.objects.get(code="PA14HT0000012")
    assert (customer.name, customer.phone, customer.email) == (
        "Ngô Thị Hà",
        "0912345678",
        "ha@example.vn",
    )
    assert Bill.objects.get(number="HD-12").customer == customer


def test_rechecking_a_loaded_file_skips_every_row_and_changes_nothing(set_based):
    import_bills(_file(GOOD), set_based=set_based)
    before = list(Customer.objects.values_list("code", "updated_at").order_by("code"))
    again = import_bills(_file(GOOD), set_based=set_based, recheck=True)
    assert (again.bills_created, again.bills_skipped, again.rejected) == (0, 3, 0)
    assert again.loaded_before is None
    assert list(Customer.objects.values_list("code", "updated_at").order_by("code")) == before


def test_a_file_is_recognised_by_its_digest_only_when_it_loaded_completely(set_based):
    with_error = [GOOD[0], BAD[0][0]]
    first = import_bills(_file(with_error), set_based=set_based)
    assert first.rejected == 1
    second = import_bills(_file(with_error), set_based=set_based)
    assert second.loaded_before is None and second.rejected == 1  # read and reported again
    import_bills(_file(GOOD), set_based=set_based)
    third = import_bills(_file(GOOD), set_based=set_based)
    assert third.loaded_before is not None and third.bills_created == 0


def test_the_command_writes_every_rejected_line_beside_the_file_and_shows_the_first(tmp_path):
    rows = [GOOD[0]] + [[*BAD[0][0][:6], f"B{n}", *BAD[0][0][7:]] for n in range(30)]
    path = tmp_path / "bills-2026-10.csv"
    path.write_text(rows_to_csv(rows), encoding="utf-8")
    err = io.StringIO()
    with pytest.raises(CommandError, match="30 row"):
        call_command("import_bills", str(path), stdout=io.StringIO(), stderr=err)
    shown = [line for line in err.getvalue().splitlines() if line.startswith("line ")]
    assert len(shown) == 20 and "10 more" in err.getvalue()
    report = (tmp_path / "bills-2026-10.errors.csv").read_text(encoding="utf-8").splitlines()
    assert report[0] == "line,reason" and len(report) == 31
    assert report[1] == "3,invalid customer code 'PX14'"


def test_the_command_says_when_the_same_file_already_loaded(tmp_path):
    path = tmp_path / "bills.csv"
    path.write_text(rows_to_csv(GOOD), encoding="utf-8")
    call_command("import_bills", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    out = io.StringIO()
    call_command("import_bills", str(path), stdout=out, stderr=io.StringIO())
    assert "already loaded completely" in out.getvalue()
    out = io.StringIO()
    call_command("import_bills", str(path), "--recheck", stdout=out, stderr=io.StringIO())
    assert "3 already loaded" in out.getvalue()


def test_the_last_day_of_february_in_a_leap_year_is_a_date(set_based):
    rows = [[*GOOD[0][:6], "HD2802", "2028-01", "1", "1", "2028-02-29"],
            [*GOOD[1][:6], "HD0002", "2000-01", "1", "1", "2000-02-29"]]  # fmt: skip
    result = import_bills(_file(rows), set_based=set_based)
    assert result.rejected == 0 and result.bills_created == 2


def test_a_nul_character_refuses_the_file_with_its_line(tmp_path):
    path = tmp_path / "bills.csv"
    path.write_text(rows_to_csv([GOOD[0], [*GOOD[1][:1], "Trần\x00Thị", *GOOD[1][2:]]]))
    with pytest.raises(CommandError, match="line 3: contains a NUL"):
        call_command("import_bills", str(path), stdout=io.StringIO(), stderr=io.StringIO())
    assert not Bill.objects.exists()


def test_values_holding_tabs_backslashes_and_line_breaks_are_stored_as_written(set_based):
    odd = [*GOOD[0][:1], "Nguyễn\tVăn \\N An", "Số 1\nđường \\ Trần Phú", *GOOD[0][3:]]
    result = import_bills(_file([odd]), set_based=set_based)
    assert result.rejected == 0, result.errors
    customer = Customer.objects.get(code="PA14HT0000001")
    assert (customer.name, customer.address) == ("Nguyễn\tVăn \\N An", "Số 1\nđường \\ Trần Phú")


# The set-based loader's chunks exist on PostgreSQL only (the SQLite run leaves this out).
if True in LOADERS:

    def test_a_file_read_a_row_at_a_time_gives_what_one_chunk_gives(monkeypatch):
        """Rows are checked a chunk at a time; what concerns several rows (repeats, a customer's
        last row, new service areas) must not depend on where the chunks end."""
        from django.db import transaction

        from customers.billing_import import postgres

        earlier = [*GOOD[0][:6], "HD2609000001", "2026-09", "150", "344520", "2026-10-20"]
        repeat_number = [*GOOD[1][:6], "HD2609000001", *GOOD[1][7:]]
        same_month = [*GOOD[0][:6], "HD2610000099", *GOOD[0][7:]]
        rows = [earlier, GOOD[0], BAD[0][0], repeat_number, GOOD[1], same_month, GOOD[2]]

        def outcome(chunk_rows):
            monkeypatch.setattr(postgres, "_CHUNK_ROWS", chunk_rows)
            with transaction.atomic():
                result = import_bills(_file(rows), set_based=True)
                state = (
                    sorted(
                        Bill.objects.values_list("number", "customer__code", "period", "amount")
                    ),
                    sorted(Customer.objects.values_list("code", "name", "service_area__name")),
                )
                transaction.set_rollback(True)
            counts = (result.bills_created, result.customers_created, result.areas_created)
            return [(e.line, e.reason) for e in result.errors], counts, state

        assert outcome(1) == outcome(2) == outcome(10_000)
        errors, counts, _ = outcome(1)
        assert [line for line, _ in errors] == [4, 5, 6, 7], errors
        assert counts == (3, 2, 3)
