"""Partners' end-of-day settlement files against what the portal recorded."""

from __future__ import annotations

import csv
import io
import os
import time
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from common.localtime import GMT7
from payments import reconciliation, services, tasks
from payments.models import Payment, SettlementReport
from tests.factories import customer_with_bills

pytestmark = pytest.mark.django_db

DAY = date(2026, 11, 20)
HEADER = "transaction_id,customer_code,bill_numbers,amount,paid_at\n"


def _at(hour: int, minute: int = 0, day: date = DAY) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=GMT7)


def _collected(partner: str, txn: str, *, bills: int = 1, paid_at: datetime | None = None):
    """A collection payment the portal recorded for `partner`."""
    customer, unpaid = customer_with_bills(unpaid=bills)
    payment = services.payment_record_settled(
        customer_code=customer.code,
        method=Payment.Method.COLLECTION,
        partner_code=partner,
        bill_numbers=[bill.number for bill in unpaid],
        report=services.Report(source=services.Source.COLLECTION),
        provider_txn_id=txn,
        amount=sum(bill.amount for bill in unpaid),
        paid_at=paid_at or _at(9),
    )
    return payment, customer, unpaid


def _line(txn: str, customer, bills, amount: int | None = None, paid_at: str = "") -> str:
    numbers = ";".join(bill.number for bill in bills)
    total = sum(bill.amount for bill in bills) if amount is None else amount
    return f"{txn},{customer.code},{numbers},{total},{paid_at or '2026-11-20 09:00:00'}\n"


@pytest.fixture
def partner_secrets(settings):
    settings.PARTNER_CREDENTIALS = {"VCB": {"secret": "x"}, "MOMO": {"secret": "y"}}


@pytest.fixture
def report_dir(settings, tmp_path) -> Path:
    settings.RECONCILIATION_REPORT_DIR = tmp_path / "reports"
    return tmp_path / "reports"


@pytest.fixture
def mixed_file(partner_secrets, tmp_path) -> tuple[Path, dict]:
    """One file with every kind of difference, and the payments behind it."""
    matched, c1, b1 = _collected("VCB", "VCB-M1", bills=2)
    theirs_only, c2, b2 = _collected("VCB", "VCB-OURS", paid_at=_at(10))
    differs, c3, b3 = _collected("VCB", "VCB-DIFF")
    reversed_, c4, b4 = _collected("VCB", "VCB-REV")
    services.payment_reverse(
        payment_id=reversed_.id,
        report=services.Report(source=services.Source.COLLECTION),
        reason="cancelled",
    )
    _other_day, c5, b5 = _collected("VCB", "VCB-DAY", paid_at=_at(23, 30, DAY - timedelta(days=1)))
    _collected("MOMO", "MOMO-1")  # another partner's: never part of VCB's file
    outside = customer_with_bills(unpaid=1)[0]
    text = (
        HEADER
        + _line("VCB-M1", c1, b1)  # line 2: matched
        + _line("VCB-DIFF", c3, b3, amount=b3[0].amount + 1000)  # line 3: amount differs
        + _line("VCB-NEW", c2, b2)  # line 4: never notified to us
        + _line("VCB-REV", c4, b4)  # line 5: reversed here
        + _line("VCB-DAY", c5, b5)  # line 6: we have it on the 19th
        + "VCB-BAD,PA14HT0000001,HD1,12.5,2026-11-20 09:00:00\n"  # line 7: bad amount
        + f"VCB-LATE,{outside.code},HD9,100,2026-11-21 08:00:00\n"  # line 8: another day
        + _line("VCB-M1", c1, b1)  # line 9: duplicate
    )
    path = tmp_path / "VCB_20261120.csv"
    path.write_text(text, encoding="utf-8")
    return path, {"matched": matched, "ours_only": theirs_only, "differs": differs}


def test_it_reports_each_kind_of_difference(mixed_file, report_dir):
    path, payments = mixed_file
    with pytest.raises(CommandError) as failed:
        call_command("reconcile_partner", "vcb", "2026-11-20", str(path), stdout=io.StringIO())
    assert failed.value.returncode == 1
    report = SettlementReport.objects.get()
    assert report.partner.code == "VCB" and report.business_date == DAY
    assert (report.matched, report.missing_ours, report.missing_theirs) == (1, 3, 1)
    assert report.amount_differences == 1 and not report.is_clean
    details = report.details
    assert details["matched"] == ["VCB-M1"]
    reasons = {item["transaction_id"]: item["reason"] for item in details["missing_ours"]}
    assert reasons == {
        "VCB-NEW": "not recorded on our side",
        "VCB-REV": "reversed on our side",
        "VCB-DAY": "recorded on our side for 2026-11-19",
    }
    assert [item["transaction_id"] for item in details["missing_theirs"]] == ["VCB-OURS"]
    assert details["missing_theirs"][0]["receipt_number"] == payments["ours_only"].reference
    difference = details["differences"][0]
    assert difference["transaction_id"] == "VCB-DIFF" and difference["line"] == 3
    amount = payments["differs"].amount
    assert difference["fields"] == {"amount": {"ours": amount, "theirs": amount + 1000}}
    bad = {row["line"]: row["reason"] for row in details["bad_rows"]}
    assert set(bad) == {7, 8, 9}
    assert "amount" in bad[7] and "2026-11-21" in bad[8] and "line 2" in bad[9]


def test_the_command_prints_the_report_and_bad_lines_and_writes_files(mixed_file, report_dir):
    path, _payments = mixed_file
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError):
        call_command("reconcile_partner", "VCB", "2026-11-20", str(path), stdout=out, stderr=err)
    printed = out.getvalue()
    assert "Settlement reconciliation: VCB, 2026-11-20" in printed
    assert "| Missing on our side | 3 |" in printed and "VCB-OURS" in printed
    assert "line 7:" in err.getvalue() and "line 9:" in err.getvalue()
    markdown = (report_dir / "VCB_20261120.md").read_text(encoding="utf-8")
    assert markdown.startswith("# Settlement reconciliation: VCB, 2026-11-20")
    rows = list(csv.DictReader((report_dir / "VCB_20261120.csv").open(encoding="utf-8")))
    kinds = sorted(row["result"] for row in rows)
    assert kinds == sorted(
        ["matched", "difference"] + ["missing_ours"] * 3 + ["missing_theirs"] + ["bad_row"] * 3
    )


def test_the_report_can_be_written_in_vietnamese(mixed_file, tmp_path):
    path, _payments = mixed_file
    out = io.StringIO()
    with pytest.raises(CommandError):
        call_command(
            "reconcile_partner",
            "VCB",
            "2026-11-20",
            str(path),
            "--language=vi",
            f"--output-dir={tmp_path / 'vi'}",
            stdout=out,
        )
    assert "Đối soát" in out.getvalue()
    assert (
        (tmp_path / "vi" / "VCB_20261120.md").read_text(encoding="utf-8").startswith("# Đối soát")
    )


def test_a_clean_file_exits_zero(partner_secrets, tmp_path, report_dir):
    payment, customer, bills = _collected("VCB", "VCB-OK", bills=3)
    # Bills in another order, a byte-order mark, a Windows line ending, an ISO time with offset.
    numbers = ";".join(bill.number for bill in reversed(bills))
    path = tmp_path / "clean.csv"
    path.write_bytes(
        (
            "\ufeff" + HEADER.replace("\n", "\r\n")
            + f"VCB-OK,{customer.code.lower()},{numbers},{payment.amount},"
            "2026-11-20T02:00:00+00:00\r\n"
        ).encode("utf-8")
    )  # fmt: skip
    out = io.StringIO()
    call_command("reconcile_partner", "VCB", "2026-11-20", str(path), stdout=out)
    report = SettlementReport.objects.get()
    assert report.is_clean and report.matched == 1
    assert "all matched" in out.getvalue()


def test_an_empty_day_on_both_sides_is_clean(partner_secrets, tmp_path, report_dir):
    path = tmp_path / "empty.csv"
    path.write_text(HEADER, encoding="utf-8")
    call_command("reconcile_partner", "VCB", "2026-11-20", str(path), stdout=io.StringIO())
    assert SettlementReport.objects.get().is_clean


def test_customer_or_bill_differences_are_named(partner_secrets, tmp_path, report_dir):
    payment, customer, bills = _collected("VCB", "VCB-B", bills=2)
    path = tmp_path / "f.csv"
    path.write_text(
        HEADER + f"VCB-B,{customer.code},{bills[0].number},{payment.amount},2026-11-20 09:00:00\n",
        encoding="utf-8",
    )
    with pytest.raises(CommandError):
        call_command("reconcile_partner", "VCB", "2026-11-20", str(path), stdout=io.StringIO())
    difference = SettlementReport.objects.get().details["differences"][0]
    assert set(difference["fields"]) == {"bill_numbers"}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["NOPE", "2026-11-20"], "not a collecting partner"),
        (["COUNTER", "2026-11-20"], "not a collecting partner"),
        (["VCB", "20/11/2026"], "not a date"),
    ],
)
def test_usage_errors_exit_2(partner_secrets, tmp_path, args, message):
    path = tmp_path / "f.csv"
    path.write_text(HEADER, encoding="utf-8")
    with pytest.raises(CommandError, match=message) as failed:
        call_command("reconcile_partner", *args, str(path))
    assert failed.value.returncode == 2
    assert not SettlementReport.objects.exists()


def test_an_unreadable_file_compares_nothing(partner_secrets, tmp_path):
    wrong_header = tmp_path / "a.csv"
    wrong_header.write_text("id,amount\n1,2\n", encoding="utf-8")
    latin1 = tmp_path / "b.csv"
    latin1.write_bytes(
        HEADER.encode() + "X,PA14HT0000001,HD1,1,2026-11-20 09:00:00,Ã\n".encode("latin-1")
    )
    for path, message in ((wrong_header, "lacks"), (latin1, "UTF-8")):
        with pytest.raises(CommandError, match=message) as failed:
            call_command("reconcile_partner", "VCB", "2026-11-20", str(path))
        assert failed.value.returncode == 2
    with pytest.raises(CommandError, match="no such file"):
        call_command("reconcile_partner", "VCB", "2026-11-20", str(tmp_path / "missing.csv"))
    assert not SettlementReport.objects.exists()


# --- The nightly task ---------------------------------------------------------------------------
def _age(path: Path, seconds: int = 600) -> None:
    past = time.time() - seconds
    os.utime(path, (past, past))


def test_the_nightly_task_reconciles_dropped_files_and_moves_them_aside(
    partner_secrets, settings, tmp_path, report_dir
):
    drop = tmp_path / "drop"
    drop.mkdir()
    settings.RECONCILIATION_DROP_DIR = drop
    payment, customer, bills = _collected("VCB", "VCB-N1")
    _collected("MOMO", "MOMO-N1")
    (drop / "VCB_20261120.csv").write_text(HEADER + _line("VCB-N1", customer, bills))
    (drop / "MOMO_20261120.csv").write_text(HEADER)  # MOMO's payment is missing from its file
    (drop / "NOPE_20261120.csv").write_text(HEADER)
    (drop / "statement.csv").write_text(HEADER)
    (drop / "VCB_20261121.csv.part").write_text(HEADER)  # still uploading
    for path in drop.iterdir():
        _age(path)
    (drop / "TCB_20261120.csv").write_text(HEADER)  # just arrived: maybe not complete yet

    assert tasks.reconcile_dropped_statements() == 2

    reports = {r.partner.code: r for r in SettlementReport.objects.all()}
    assert set(reports) == {"VCB", "MOMO"}
    assert reports["VCB"].is_clean and reports["VCB"].matched == 1
    assert reports["MOMO"].missing_theirs == 1
    processed = sorted(p.name for p in (drop / "processed").iterdir())
    assert [name.split(".")[0] for name in processed] == ["MOMO_20261120", "VCB_20261120"]
    rejected = sorted(p.name for p in (drop / "rejected").iterdir())
    assert any(
        name.startswith("NOPE_20261120") and name.endswith(".error.txt") for name in rejected
    )
    assert any(name.startswith("statement") for name in rejected)
    left = sorted(p.name for p in drop.iterdir() if p.is_file())
    assert left == ["TCB_20261120.csv", "VCB_20261121.csv.part"]
    assert (report_dir / "VCB_20261120.md").exists() and (report_dir / "MOMO_20261120.csv").exists()
    # A second run finds nothing new.
    assert tasks.reconcile_dropped_statements() == 0


def test_the_nightly_task_writes_in_the_default_language(
    partner_secrets, settings, tmp_path, report_dir
):
    drop = tmp_path / "drop"
    drop.mkdir()
    settings.RECONCILIATION_DROP_DIR = drop
    (drop / "VCB_20261120.csv").write_text(HEADER)
    _age(drop / "VCB_20261120.csv")
    assert reconciliation.reconcile_dropped_files() == 1
    assert (report_dir / "VCB_20261120.md").read_text(encoding="utf-8").startswith("# Đối soát")


def test_a_missing_drop_folder_is_nothing_to_do(settings, tmp_path):
    settings.RECONCILIATION_DROP_DIR = tmp_path / "absent"
    assert reconciliation.reconcile_dropped_files() == 0


def test_payments_of_the_day_are_those_paid_between_midnights_gmt7(
    partner_secrets, tmp_path, report_dir
):
    _collected("VCB", "VCB-EARLY", paid_at=_at(0, 0))
    _collected("VCB", "VCB-LATE", paid_at=_at(23, 59))
    _collected("VCB", "VCB-NEXT", paid_at=_at(0, 0, DAY + timedelta(days=1)))
    path = tmp_path / "f.csv"
    path.write_text(HEADER, encoding="utf-8")
    with pytest.raises(CommandError):
        call_command("reconcile_partner", "VCB", "2026-11-20", str(path), stdout=io.StringIO())
    missing = SettlementReport.objects.get().details["missing_theirs"]
    assert [item["transaction_id"] for item in missing] == ["VCB-EARLY", "VCB-LATE"]
    assert timezone.is_aware(datetime.fromisoformat(missing[0]["paid_at"]))
