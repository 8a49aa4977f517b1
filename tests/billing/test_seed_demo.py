"""seed_demo: a deterministic province with bills and a payment history by channel."""

from __future__ import annotations

import datetime
import io
from collections import Counter

import pytest
from django.core.management import CommandError, call_command
from django.db.models import Count, Q

from console import demo
from customers.models import Bill, Customer, ServiceArea
from customers.tariff import bill_amount
from payments.models import Payment, PaymentBill

UNTIL = datetime.date(2026, 10, 1)
TODAY = datetime.date(2026, 11, 27)
PARTNERS = {code: i for i, code in enumerate(
    ["AGRIBANK", "VCB", "VTB", "BIDV", "MB", "TCB", "VNPOST", "MOMO", "VIETTELMONEY", "ZALOPAY",
     "PAYOO", "ACB", "VPB", "TPB", "STB", "SHB", "VNPAY", "COUNTER", "COLLECTOR"], start=1)}  # fmt: skip


def _province(seed=7, customers=300):
    return demo.DemoProvince(
        seed=seed,
        customers=customers,
        months=12,
        until=UNTIL,
        today=TODAY,
        area_ids={area.code: i for i, area in enumerate(demo.AREAS, start=1)},
        partner_ids=PARTNERS,
    )


def test_the_same_seed_gives_the_same_province():
    first = list(_province().batches(size=100))
    second = list(_province().batches(size=100))
    assert [t.customers for t in first] == [t.customers for t in second]
    assert [t.bills for t in first] == [t.bills for t in second]
    assert [t.payments for t in first] == [t.payments for t in second]
    other = next(_province(seed=8).batches())
    assert other.customers != first[0].customers


def test_the_province_pays_without_cash_at_the_published_rates():
    """Per month, customers who paid by a non-cash channel over customers billed."""
    province = _province(customers=6000)
    area_of, billed, noncash = {}, Counter(), Counter()
    code_of_area = {i: a.code for i, a in enumerate(demo.AREAS, start=1)}
    for tables in province.batches():
        for customer in tables.customers:
            area_of[customer[0]] = code_of_area[customer[6]]
        method_of = {p[0]: p[4] for p in tables.payments}
        for bill in tables.bills:
            if bill[3] != datetime.date(2026, 9, 1):
                continue
            area = area_of[bill[2]]
            billed[area] += 1
            if bill[10] is not None and method_of[bill[10]] != "cash":
                noncash[area] += 1
    province_rate = 100 * sum(noncash.values()) / sum(billed.values())
    assert province_rate == pytest.approx(69.38, abs=2.0)
    assert 100 * noncash["PA14DT"] / billed["PA14DT"] > 95
    assert 100 * noncash["PA14VQ"] / billed["PA14VQ"] < 60


def test_bills_are_priced_by_the_tariff_and_paid_bills_point_at_their_payment():
    tables = next(_province().batches())
    payments = {p[0]: p for p in tables.payments}
    for bill in tables.bills:
        assert bill[5] == bill_amount(bill[4])
        if bill[8] == "paid":
            assert payments[bill[10]][3] == bill[5]
    assert len({p[1] for p in tables.payments}) == len(tables.payments)  # unique references


@pytest.mark.django_db
def test_the_command_seeds_an_empty_database_with_consistent_rows():
    out = io.StringIO()
    call_command("seed_demo", "--customers", "150", "--until", "2026-10", stdout=out)
    assert "Seeded 150 customers" in out.getvalue()
    assert ServiceArea.objects.count() == 12
    assert Customer.objects.count() == 150 and Bill.objects.count() == 1800
    paid = Bill.objects.filter(status="paid")
    assert paid.count() == Payment.objects.filter(status="succeeded").count()
    assert PaymentBill.objects.filter(applied=True).count() == paid.count()
    assert not Bill.objects.filter(status="paid", paid_by__isnull=True).exists()
    per_customer = Customer.objects.annotate(n=Count("bills")).values_list("n", flat=True)
    assert set(per_customer) == {12}
    methods = set(Payment.objects.values_list("method", flat=True))
    assert methods <= {"cash", "collection", "vietqr", "redirect"} and "cash" in methods
    assert Customer.objects.filter(~Q(search_text="")).count() == 150


@pytest.mark.django_db
def test_the_command_refuses_a_database_with_customers_unless_if_empty():
    call_command("seed_demo", "--customers", "5", stdout=io.StringIO())
    with pytest.raises(CommandError):
        call_command("seed_demo", "--customers", "5", stdout=io.StringIO())
    out = io.StringIO()
    call_command("seed_demo", "--customers", "5", "--if-empty", stdout=out)
    assert "already exist" in out.getvalue()
    assert Customer.objects.count() == 5


def test_seeded_references_are_valid_and_distinct():
    from payments import references

    refs = [demo.reference_for(i) for i in range(20000)]
    assert len(set(refs)) == len(refs)
    assert all(references.is_valid(ref) for ref in refs)


@pytest.mark.django_db
def test_a_development_seed_creates_one_demo_sign_in_per_role(settings):
    from django.contrib.auth.models import User

    settings.DEBUG = True
    out = io.StringIO()
    call_command("seed_demo", "--customers", "3", stdout=out)
    assert "demo-supervisor" in out.getvalue()
    supervisor = User.objects.get(username="demo-supervisor")
    assert supervisor.groups.filter(name="supervisor").exists()
    assert supervisor.has_perm("customers.refund_payment")


@pytest.mark.django_db
def test_a_production_seed_creates_no_sign_in(settings):
    from django.contrib.auth.models import User

    settings.DEBUG = False
    call_command("seed_demo", "--customers", "3", stdout=io.StringIO())
    assert not User.objects.exists()
