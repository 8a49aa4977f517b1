"""The nightly reconciliation, run by a real Celery worker on its own queue."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from django.db import connection

from payments import services, tasks
from payments.channels.collection.business_day import business_date
from payments.models import Payment, SettlementReport
from payments.queue import send_now
from tests.conftest import WorkerProcess, _worker_env, purge_broker, wait_until
from tests.factories import customer_with_bills

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]


def test_a_worker_reconciles_the_files_dropped_overnight(settings, tmp_path):
    if not settings.CELERY_BROKER_URL.startswith("redis"):
        pytest.fail("this test needs CELERY_BROKER_URL=redis://...")
    settings.PARTNER_CREDENTIALS = {"VCB": {"secret": "x"}}
    customer, bills = customer_with_bills(unpaid=1)
    payment = services.payment_record_settled(
        customer_code=customer.code,
        method=Payment.Method.COLLECTION,
        partner_code="VCB",
        bill_numbers=[bills[0].number],
        report=services.Report(source=services.Source.COLLECTION),
        provider_txn_id="VCB-W1",
        amount=bills[0].amount,
    )
    day = business_date(payment.succeeded_at)
    drop, var = tmp_path / "drop", tmp_path / "var"
    drop.mkdir()
    dropped = drop / f"VCB_{day:%Y%m%d}.csv"
    dropped.write_text(
        "transaction_id,customer_code,bill_numbers,amount,paid_at\n"
        f"VCB-W1,{customer.code},{bills[0].number},{bills[0].amount},"
        f"{payment.succeeded_at.isoformat()}\n",
        encoding="utf-8",
    )
    past = time.time() - 600
    os.utime(dropped, (past, past))

    purge_broker()
    worker = WorkerProcess(
        _worker_env(
            {
                "RECONCILIATION_DROP_DIR": str(drop),
                "PORTAL_VAR_DIR": str(var),
                "PARTNER_VCB_SECRET": "x",
            }
        ),
        concurrency=1,
    )
    worker.start()
    try:
        assert send_now(tasks.reconcile_dropped_statements)
        report = wait_until(lambda: SettlementReport.objects.filter(partner__code="VCB").first())
    finally:
        worker.stop()
        connection.close()
    assert report.is_clean and report.matched == 1
    assert not dropped.exists()
    assert [p.name.split(".")[0] for p in (drop / "processed").iterdir()] == [dropped.stem]
    assert (Path(var) / "reports" / "reconciliation" / f"{dropped.stem}.md").exists()
