"""export_bill_qr: what the printing house needs, one row (and one image) per unpaid bill."""

from __future__ import annotations

import csv
import io

import pytest
from django.core.management import CommandError, call_command

from customers import paylinks
from customers.models import Bill
from payments import references, services
from payments.channels.vietqr.payload import parse_payload
from payments.paper_bills import COLUMNS
from tests.factories import ServiceAreaFactory, customer_with_bills, staff_user

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _public_address(settings):
    # Tests run with DEBUG off, where printed links must be the portal's public https address.
    settings.PORTAL_BASE_URL = "https://portal.example.vn"


def _export(tmp_path, *args):
    out = tmp_path / "bills.csv"
    stdout = io.StringIO()
    call_command("export_bill_qr", str(out), *args, stdout=stdout)
    with out.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle)), stdout.getvalue()


def test_each_unpaid_bill_of_the_period_has_its_reference_qr_and_link(tmp_path, settings):
    _customer, bills = customer_with_bills(unpaid=2)
    latest = bills[-1]
    rows, said = _export(tmp_path, "--period", f"{latest.period:%Y-%m}")
    assert list(rows[0]) == list(COLUMNS) and len(rows) == 1
    row = rows[0]
    assert row["bill_number"] == latest.number and int(row["amount"]) == latest.amount
    assert row["reference"] == references.bill_reference(latest.pk)
    qr = parse_payload(row["qr_payload"])
    assert qr.amount == latest.amount and qr.purpose == row["reference"]
    assert qr.account == settings.VIETQR_ACCOUNT
    assert row["pay_url"] == paylinks.pay_url(bill_id=latest.pk, due_date=latest.due_date)
    assert row["pay_url"].startswith(settings.PORTAL_BASE_URL + "/b/")
    assert "1 bills of" in said


def test_paid_bills_and_other_areas_are_left_out_and_images_are_written(tmp_path):
    _c, ours = customer_with_bills(unpaid=1)
    _o, theirs = customer_with_bills(
        unpaid=1, service_area=ServiceAreaFactory(code="PA14HL", name="Điện lực Hồng Lĩnh")
    )
    _p, paid = customer_with_bills(unpaid=1)
    services.payment_record_cash(
        customer_code=paid[0].customer.code,
        bill_numbers=[paid[0].number],
        actor=staff_user("agent"),
    )
    assert Bill.objects.get(pk=paid[0].pk).status == Bill.Status.PAID
    area = ours[0].customer.service_area.code
    period = f"{ours[0].period:%Y-%m}"
    rows, _said = _export(tmp_path, "--period", period, "--area", area, "--svg-dir", str(tmp_path))
    assert [row["bill_number"] for row in rows] == [ours[0].number]
    images = sorted(path.name for path in tmp_path.glob("*.svg"))
    assert images == [f"{ours[0].number}-{rows[0]['reference']}.svg"]
    svg = (tmp_path / images[0]).read_text()
    assert svg.startswith("<?xml") or svg.startswith("<svg")
    with pytest.raises(CommandError, match="already holds"):
        call_command(
            "export_bill_qr", str(tmp_path / "again.csv"), "--period", period, "--svg-dir",
            str(tmp_path), stdout=io.StringIO(),
        )  # fmt: skip


def test_production_refuses_to_print_links_to_a_local_address(tmp_path, settings):
    settings.DEBUG = False
    settings.PORTAL_BASE_URL = "http://127.0.0.1:8000"
    with pytest.raises(CommandError, match="PORTAL_BASE_URL"):
        call_command("export_bill_qr", str(tmp_path / "x.csv"), "--period", "2026-11")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--period", "2026-13"], "is not YYYY-MM"),
        (["--period", "2026-11", "--area", "NOWHERE"], "no service area"),
    ],
)
def test_bad_arguments_are_clear_errors(tmp_path, args, message):
    with pytest.raises(CommandError, match=message):
        call_command("export_bill_qr", str(tmp_path / "x.csv"), *args, stdout=io.StringIO())


def test_without_a_pay_link_key_nothing_is_exported(tmp_path, settings):
    settings.PAY_LINK_KEY = ""
    with pytest.raises(CommandError, match="PAY_LINK_KEY"):
        call_command("export_bill_qr", str(tmp_path / "x.csv"), "--period", "2026-11")
