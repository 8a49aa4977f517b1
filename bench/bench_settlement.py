"""Settlement end to end: signed IPNs sent to the server, each applied by the appliers (bill
marked paid), against a Celery no-op task's throughput on the same broker and pool.

Two loads: a burst (every IPN as fast as the server answers) for the rate, and a steady offered
load of STEADY_RATE IPNs a second for STEADY_SECONDS for the time from an IPN's arrival to its
bill being paid. Targets: the burst settles at least at the no-op rate; the steady load's p99
from received to paid is at most 1 s."""

from __future__ import annotations

import datetime
import http.client
import queue
import threading
import time
import uuid
from urllib.parse import urlencode, urlsplit

import redis

from bench.common import (
    SANDBOX_SECRET,
    SANDBOX_TMN,
    Section,
    bench_env,
    celery_worker,
    check_books,
    free_references,
    gunicorn,
    percentile,
)

PAYMENTS = 10_000
SENDERS = 32
STEADY_RATE, STEADY_SECONDS = 100, 60
WEB_WORKERS, WEB_THREADS = 3, 4
# The appliers: each drains the inbox a batch at a time; more processes than cores only wait.
CELERY_CONCURRENCY = 2


def _prepare(run_id: str, count: int, *, skip: int = 0) -> tuple[list[str], list[int]]:
    """Pending redirect payments for unpaid bills of distinct customers; their signed IPN paths
    and the bills they pay."""
    from django.utils import timezone

    from customers.models import Bill
    from payments.channels.vnpay import protocol as vnpay
    from payments.models import Partner, Payment, PaymentBill

    partner = Partner.objects.get(code="SANDBOX")
    bills = list(
        Bill.objects.filter(status=Bill.Status.UNPAID)
        .order_by("customer_id", "-period")
        .distinct("customer_id")
        .values_list("id", "customer_id", "amount")[skip : skip + count]
    )
    if len(bills) < count:
        raise RuntimeError(f"only {len(bills)} unpaid bills left for the settlement benchmark")
    now = timezone.now()
    created = vnpay.format_time(now)
    payments, lines, paths = [], [], []
    for (bill_id, customer_id, amount), reference in zip(
        bills, free_references(len(bills)), strict=True
    ):
        payment = Payment(
            id=uuid.uuid4(), reference=reference, customer_id=customer_id, amount=amount,
            method=Payment.Method.REDIRECT, partner=partner, status=Payment.Status.PENDING,
            created_at=now, expires_at=now + datetime.timedelta(hours=2),
            provider_data={"vnp_CreateDate": created, "bench": run_id},
        )  # fmt: skip
        payments.append(payment)
        lines.append(PaymentBill(payment=payment, bill_id=bill_id, amount=amount))
        params = {
            "vnp_Amount": str(amount * 100), "vnp_BankCode": "NCB",
            "vnp_BankTranNo": f"VNP{skip + len(paths):08d}", "vnp_CardType": "ATM",
            "vnp_OrderInfo": f"Thanh toan tien dien {reference}", "vnp_PayDate": created,
            "vnp_ResponseCode": "00", "vnp_TmnCode": SANDBOX_TMN,
            "vnp_TransactionNo": f"{14000000 + skip + len(paths)}", "vnp_TransactionStatus": "00",
            "vnp_TxnRef": reference,
        }  # fmt: skip
        params["vnp_SecureHash"] = vnpay.sign(params, SANDBOX_SECRET)
        paths.append("/callbacks/SANDBOX/ipn/?" + urlencode(params))
    Payment.objects.bulk_create(payments, batch_size=2000)
    PaymentBill.objects.bulk_create(lines, batch_size=2000)
    return paths, [bill_id for bill_id, _customer, _amount in bills]


def _cleanup(run_id: str) -> None:
    """Put the province back as it was: the bills unpaid, the bench's payments gone."""
    from django.db import connection, transaction

    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE bench_payments ON COMMIT DROP AS "
            "SELECT id FROM payments_payment WHERE provider_data->>'bench' = %s",
            [run_id],
        )
        cursor.execute(
            "UPDATE customers_bill SET status = 'unpaid', paid_at = NULL, paid_by_id = NULL "
            "WHERE paid_by_id IN (SELECT id FROM bench_payments)"
        )
        for statement in (
            "DELETE FROM payments_paymentevent WHERE payment_id IN (SELECT id FROM bench_payments)",
            "DELETE FROM payments_paymentbill WHERE payment_id IN (SELECT id FROM bench_payments)",
            "DELETE FROM payments_inboundmessage WHERE payment_id IN (SELECT id FROM bench_payments)",
            "DELETE FROM payments_payment WHERE id IN (SELECT id FROM bench_payments)",
        ):
            cursor.execute(statement)


def _fire(
    base: str, paths: list[str], *, senders: int = SENDERS, rate: float | None = None
) -> tuple[float, list[str]]:
    """Send every IPN from `senders` keep-alive connections, as fast as the server answers or,
    given a `rate`, each at its own moment (`rate` a second); returns (seconds, answers)."""
    host = urlsplit(base).netloc
    work: queue.SimpleQueue[tuple[float, str]] = queue.SimpleQueue()
    start = time.perf_counter() + (0.5 if rate else 0)
    for index, path in enumerate(paths):
        work.put((start + index / rate if rate else 0.0, path))
    answers: list[str] = []
    lock = threading.Lock()

    def sender() -> None:
        conn = http.client.HTTPConnection(host, timeout=30)
        mine = []
        while True:
            try:
                at, path = work.get_nowait()
            except queue.Empty:
                break
            delay = at - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            conn.request("GET", path)
            mine.append(conn.getresponse().read().decode())
        conn.close()
        with lock:
            answers.extend(mine)

    threads = [threading.Thread(target=sender) for _ in range(senders)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return time.perf_counter() - start, answers


def _latencies_ms(run_id: str) -> list[float]:
    """From each IPN's arrival to its application (the applier's commit marks it processed),
    for the payments of this run."""
    from payments.models import InboundMessage

    return [
        (processed - received).total_seconds() * 1000
        for processed, received in InboundMessage.objects.filter(
            kind="ipn", payment__provider_data__bench=run_id, processed_at__isnull=False
        ).values_list("processed_at", "received_at")
    ]


def _noop_baseline(env: dict[str, str], concurrency: int) -> float:
    """Tasks per second a worker pool drains when the task does nothing but count itself,
    published as fast as one client can."""
    from bench.tasks import count

    client = redis.Redis.from_url(env["CELERY_BROKER_URL"])
    key = f"bench:noop:{uuid.uuid4()}"
    with celery_worker(concurrency=concurrency, env=env, include="bench.tasks"):
        started = time.perf_counter()
        for _ in range(PAYMENTS):
            count.apply_async(args=[key], queue="callbacks")
        while int(client.get(key) or 0) < PAYMENTS:
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
    client.delete(key)
    return PAYMENTS / elapsed


def _wait_paid(bill_ids: list[int], started: float, limit: float = 600) -> tuple[int, float]:
    from django.db.models import F

    from customers.models import Bill
    from payments.bulk import AnyOf

    # By primary key: a few milliseconds a look, where following the payments' JSON would scan
    # 5.5 million rows and take the CPU the appliers are measured on.
    paid = Bill.objects.filter(AnyOf(F("id"), bill_ids), status=Bill.Status.PAID)
    while paid.count() < len(bill_ids) and time.perf_counter() - started < limit:
        time.sleep(0.1)
    return paid.count(), time.perf_counter() - started


def run() -> Section:
    section = Section(
        "Settlement: signed IPNs to bills marked paid", "make bench (bench/bench_settlement.py)"
    )
    env = bench_env(EMAIL_BACKEND="django.core.mail.backends.dummy.EmailBackend",
                    SMS_BACKEND="payments.notifications.LocmemSMSBackend")  # fmt: skip
    burst_id, steady_id = uuid.uuid4().hex, uuid.uuid4().hex
    # The baseline is Celery's best: the appliers' own pool, and the pool of 8 that drained
    # one task per payment fastest before.
    noop_rates = {size: _noop_baseline(env, size) for size in sorted({CELERY_CONCURRENCY, 8})}
    noop_rate = max(noop_rates.values())
    try:
        paths, bill_ids = _prepare(burst_id, PAYMENTS)
        steady_paths, steady_bills = _prepare(
            steady_id, STEADY_RATE * STEADY_SECONDS, skip=PAYMENTS
        )
        with (
            gunicorn(workers=WEB_WORKERS, threads=WEB_THREADS, env=env) as base,
            celery_worker(concurrency=CELERY_CONCURRENCY, env=env),
        ):
            started = time.perf_counter()
            answer_s, answers = _fire(base, paths)
            settled, settle_s = _wait_paid(bill_ids, started)
            _seconds, steady_answers = _fire(base, steady_paths, senders=8, rate=STEADY_RATE)
            steady_settled, _s = _wait_paid(steady_bills, time.perf_counter(), 120)
        confirmed = sum('"00"' in answer for answer in answers)
        steady_confirmed = sum('"00"' in answer for answer in steady_answers)
        burst_latency = _latencies_ms(burst_id)
        steady_latency = _latencies_ms(steady_id)
        rate = settled / settle_s
        p99 = percentile(steady_latency, 99)
        for size, measured in noop_rates.items():
            section.add(
                f"Celery no-op tasks drained per second, pool of {size}",
                f"{measured:,.0f}",
                "baseline" if measured == noop_rate else "",
            )
        section.add("burst: IPNs answered per second", f"{len(answers) / answer_s:,.0f}")
        section.add(
            "burst: payments settled per second, end to end",
            f"{rate:,.0f}",
            f"{rate / noop_rate:.0%} of no-op",
            "≥ no-op rate",
        )
        section.add(
            "burst: IPN received → bill paid, p50 / p99",
            f"{percentile(burst_latency, 50):,.0f} ms / {percentile(burst_latency, 99):,.0f} ms",
        )
        section.add(
            "burst: answered 00 / settled / lost", f"{confirmed} / {settled} / {PAYMENTS - settled}"
        )
        section.add(
            f"steady {STEADY_RATE} IPN/s for {STEADY_SECONDS} s: received → bill paid, p50 / p99",
            f"{percentile(steady_latency, 50):,.0f} ms / {p99:,.0f} ms",
            "",
            "p99 ≤ 1,000 ms",
        )
        section.add(
            "steady: answered 00 / settled / lost",
            f"{steady_confirmed} / {steady_settled} / {len(steady_bills) - steady_settled}",
        )
        month = 467_636 / rate / 60 if rate else float("inf")
        section.notes.append(
            f"Burst: {PAYMENTS:,} payments from {SENDERS} sender threads with keep-alive; steady: "
            f"{STEADY_RATE * STEADY_SECONDS:,} payments, each IPN sent at its own moment. "
            f"gunicorn {WEB_WORKERS}×{WEB_THREADS}; Celery prefork concurrency "
            f"{CELERY_CONCURRENCY} for the appliers; the baseline is the faster no-op pool; web, appliers, "
            "PostgreSQL, Redis and the load generator share the machine. An IPN costs the web two "
            "queries and no task (an applier is woken only when none is awake); "
            "appliers claim up to 300 stored messages at a time and settle them in one "
            "transaction. Received → paid is the inbox row's arrival to its marking as applied, "
            "in the applier's committing transaction. At the burst rate a whole province's "
            f"month (467,636 payments) settles in {month:.0f} minutes."
        )
        section.passed = (
            rate >= noop_rate
            and settled == PAYMENTS
            and steady_settled == len(steady_bills)
            and p99 <= 1000
        )
    finally:
        _cleanup(burst_id)
        _cleanup(steady_id)
    check_books(section)
    return section
