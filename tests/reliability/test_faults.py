"""Faults: a worker killed mid-batch, Redis gone during a burst, database connections cut mid-
callback. Banks get answers that make them retry whenever we did not store their message, and
once things are back, nothing is lost and nothing is doubled.

Each test has its own `redis-server` on a free loopback port, its own gunicorn and workers
(`portal_stack`), never the machine's shared Redis; the shared PostgreSQL is only touched
through this test run's database and connections this suite opened.
"""

from __future__ import annotations

import collections
import contextlib
import itertools
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import requests
from django.utils import timezone

from payments import services
from payments.channels.vnpay import gateway
from payments.models import InboundMessage, Payment, PaymentEvent
from tests.conftest import wait_until
from tests.factories import customer_with_bills
from tests.reliability import books, support, traffic
from tests.reliability.support import Figures
from tests.sandbox.support import redirect_payment
from tests.sandbox.wallets import configure_wallets, wallet_payment

pytestmark = [pytest.mark.slow, pytest.mark.celery_worker]

Status = Payment.Status
_txn = itertools.count(20_000_000)


def _vietqr_payments(count: int) -> list[Payment]:
    payments = []
    for index in range(count):
        customer, _bills = customer_with_bills(amounts=[250_000 + index, 120_000])
        payments.append(
            services.payment_start(customer_code=customer.code, method="vietqr").payment
        )
    return payments


def _redirect_payments(count: int) -> list[Payment]:
    return [redirect_payment(amounts=[330_000 + index]) for index in range(count)]


def _ipn(payment: Payment) -> dict[str, str]:
    return traffic.ipn_params(payment, transaction_no=str(next(_txn)))


@contextlib.contextmanager
def _payment_row_locked(payment: Payment) -> Iterator[None]:
    """Hold the payment's row lock from a connection of our own: the worker that settles it
    stops inside its transaction (inbox message locked, bills not yet paid) until we let go.

    FOR NO KEY UPDATE blocks the worker's FOR UPDATE but not the key-share lock the web takes
    when it stores a message that refers to the payment: callbacks are still answered.
    """
    holder = support.raw_connection()
    try:
        holder.execute(
            "SELECT id FROM payments_payment WHERE id = %s FOR NO KEY UPDATE", [payment.pk]
        )
        yield
    finally:
        holder.rollback()
        holder.close()


def _sweep_until_done(stack: support.Stack, *, timeout: float = 60) -> int:
    """Send the inbox sweep (what beat does every 15 s) each second until every message is
    processed; how many sweeps it took."""
    sweeps = 0
    deadline = time.monotonic() + timeout
    while not books.all_processed():
        assert time.monotonic() < deadline, f"{books.unprocessed()} message(s) never processed"
        with contextlib.suppress(Exception):
            stack.sweep()
            sweeps += 1
        time.sleep(1)
    return sweeps


def _settled_once(payments: list[Payment]) -> None:
    for payment in payments:
        payment.refresh_from_db()
        assert payment.status == Status.SUCCEEDED, payment
        events = PaymentEvent.objects.filter(payment=payment, to_status=Status.SUCCEEDED)
        assert events.exclude(from_status=Status.SUCCEEDED).count() == 1


# --- A worker killed with SIGKILL -------------------------------------------------------------------
def test_a_worker_killed_mid_batch_and_started_again_finishes_the_batch_once(portal_stack):
    """The whole worker (main process and pool) dies with SIGKILL while an applier is inside the
    transaction of a batch. Nothing of that batch was applied (its transaction never committed);
    its unacknowledged tasks stay invisible in Redis for the visibility timeout (10 min), and the
    inbox sweeper's applier, in the restarted worker, applies the batch exactly once."""
    figures = Figures("worker_sigkill", "Worker killed with SIGKILL in the middle of a batch")
    web = portal_stack.start_web()
    worker = portal_stack.start_worker(concurrency=2)
    payments = _vietqr_payments(60)
    bodies = [traffic.transfer_body(payment) for payment in payments]

    with _payment_row_locked(payments[len(payments) // 3]):
        statuses = traffic.fire_in_groups(
            [[lambda body=body: traffic.send_transfer(web.url, body)] for body in bodies],
            threads=8,
        )
        assert {status for group in statuses for status in group} == {200}
        # A pool process is now waiting inside the transaction of the held payment's message.
        wait_until(lambda: support.backends_waiting_for_a_lock(support.WORKER_APP), timeout=30)
        processed_at_kill = InboundMessage.objects.filter(processed_at__isnull=False).count()
        killed_at = timezone.now()
        worker.kill()
    assert processed_at_kill < len(payments)  # killed mid-batch

    portal_stack.start_worker(concurrency=2)
    sweeps = _sweep_until_done(portal_stack)

    _settled_once(payments)
    resent = InboundMessage.objects.filter(processed_at__gt=killed_at).count()
    lost, doubled = books.unsettled(payments) + books.unprocessed(), books.doubled()
    assert (lost, doubled) == (0, 0)
    assert resent >= 1  # another applier finished the batch after the kill
    books.close_books(
        figures,
        messages_sent=len(bodies),
        duplicates=0,
        faults_injected=1,
        processed_before_the_kill=processed_at_kill,
        applied_after_the_kill=resent,
        sweeps=sweeps,
        lost=lost,
        doubled=doubled,
    )


def _wallet_notification(base_url: str, payment: Payment, index: int) -> Callable[[], str]:
    """Sending the wallet's notification that the payment was paid (MoMo's, or ZaloPay's)."""
    if payment.partner is not None and payment.partner.code == "MOMO":
        body = traffic.momo_result(payment, trans_id=4_200_000_000 + index)
        return lambda: traffic.send_momo_ipn(base_url, body)
    callback = traffic.zalopay_callback(payment, zp_trans_id=260_201_000_200_000 + index)
    return lambda: traffic.send_zalopay_callback(base_url, callback)


def test_a_worker_killed_mid_batch_of_wallet_notifications_finishes_it_once(portal_stack, settings):
    """As above, with MoMo IPNs and ZaloPay callbacks: the worker dies with SIGKILL inside the
    transaction of their batch; the restarted worker's sweep applies each exactly once."""
    figures = Figures("worker_sigkill_wallets", "Worker killed with SIGKILL in a wallet batch")
    configure_wallets(settings)
    web = portal_stack.start_web()
    worker = portal_stack.start_worker(concurrency=2)
    payments = [
        wallet_payment("MOMO" if index % 2 else "ZALOPAY", amounts=[330_000 + index])
        for index in range(40)
    ]
    calls = [
        _wallet_notification(web.url, payment, index) for index, payment in enumerate(payments)
    ]

    with _payment_row_locked(payments[len(payments) // 3]):
        answers = traffic.fire_in_groups([[call] for call in calls], threads=8)
        assert {answer for group in answers for answer in group} == {"204", "zp1"}
        wait_until(lambda: support.backends_waiting_for_a_lock(support.WORKER_APP), timeout=30)
        processed_at_kill = InboundMessage.objects.filter(processed_at__isnull=False).count()
        killed_at = timezone.now()
        worker.kill()
    assert processed_at_kill < len(payments)

    portal_stack.start_worker(concurrency=2)
    sweeps = _sweep_until_done(portal_stack)

    _settled_once(payments)
    resent = InboundMessage.objects.filter(processed_at__gt=killed_at).count()
    lost, doubled = books.unsettled(payments) + books.unprocessed(), books.doubled()
    assert (lost, doubled) == (0, 0)
    assert resent >= 1
    books.close_books(
        figures,
        messages_sent=len(calls),
        duplicates=0,
        faults_injected=1,
        processed_before_the_kill=processed_at_kill,
        applied_after_the_kill=resent,
        sweeps=sweeps,
        lost=lost,
        doubled=doubled,
    )


def test_a_pool_process_killed_mid_task_is_redelivered_at_once(portal_stack):
    """Only the pool processes die (SIGKILL) while one is inside a task; the worker's main
    process sees it and, with acks_late and reject_on_worker_lost, puts the task back in the
    queue. No sweeper is run here: redelivery alone completes the batch."""
    figures = Figures("pool_sigkill", "Pool processes killed with SIGKILL mid-task")
    web = portal_stack.start_web()
    worker = portal_stack.start_worker(concurrency=2)
    payments = _redirect_payments(30)
    messages = [_ipn(payment) for payment in payments]
    killed = 0
    with _payment_row_locked(payments[5]):
        answers = traffic.fire_in_groups(
            [[lambda params=params: traffic.send_ipn(web.url, params)] for params in messages],
            threads=8,
        )
        assert {code for group in answers for code in group} == {"00"}
        wait_until(lambda: support.backends_waiting_for_a_lock(support.WORKER_APP), timeout=30)
        for pid in worker.pool_pids():
            os.kill(pid, signal.SIGKILL)
            killed += 1
    assert killed == 2

    wait_until(books.all_processed, timeout=60, interval=0.25)

    _settled_once(payments)
    lost, doubled = books.unsettled(payments) + books.unprocessed(), books.doubled()
    assert (lost, doubled) == (0, 0)
    # The worker's main process saw its pool processes die and handed their tasks back.
    worker_log = worker.log_path.read_text(errors="replace")
    lost_with_their_process = worker_log.count("Worker exited prematurely: signal 9 (SIGKILL)")
    assert lost_with_their_process >= 1
    books.close_books(
        figures,
        messages_sent=len(messages),
        duplicates=0,
        faults_injected=killed,
        tasks_requeued_after_the_kill=lost_with_their_process,
        sweeps=0,
        lost=lost,
        doubled=doubled,
    )


# --- Redis stopped during a burst -----------------------------------------------------------------
def _health(url: str) -> int:
    try:
        return requests.get(url + "/health/", timeout=10).status_code
    except requests.RequestException:
        return 0


def test_redis_stopped_during_a_burst_loses_nothing_once_it_is_back(portal_stack):
    """A burst of IPNs and transfer notifications in three waves: Redis up, Redis killed (no
    persistence: every queued task is gone), Redis back. The web keeps answering from
    PostgreSQL; once Redis is back the sweeper re-sends what the broker lost."""
    figures = Figures("redis_outage", "Redis killed during a burst of IPNs and transfers")
    web = portal_stack.start_web()
    portal_stack.start_worker(concurrency=2)
    redirects, vietqrs = _redirect_payments(45), _vietqr_payments(45)
    ipns = [_ipn(payment) for payment in redirects]
    transfers = [traffic.transfer_body(payment) for payment in vietqrs]
    answers: dict[str, collections.Counter] = {}
    slowest: dict[str, float] = {}

    def wave(name: str, part: slice, *, copies: int = 1) -> None:
        calls: list[Callable[[], tuple[str, float]]] = []

        def timed(call: Callable[[], Any]) -> tuple[str, float]:
            started = time.monotonic()
            result = call()
            return str(result), time.monotonic() - started

        for params in ipns[part]:
            calls += [lambda p=params: timed(lambda: traffic.send_ipn(web.url, p))] * copies
        for body in transfers[part]:
            calls += [lambda b=body: timed(lambda: traffic.send_transfer(web.url, b))] * copies
        random.Random(name).shuffle(calls)
        results = traffic.fire_in_groups([[call] for call in calls], threads=10)
        flat = [result for group in results for result in group]
        answers[name] = collections.Counter(answer for answer, _seconds in flat)
        slowest[name] = round(max(seconds for _answer, seconds in flat), 2)

    wave("before", slice(0, 15))
    portal_stack.redis.stop()
    assert _health(web.url) == 503  # the load balancer is told; callbacks still answered
    wave("outage", slice(15, 30), copies=2)  # the banks' own retries arrive during the outage
    portal_stack.redis.start()
    wave("after", slice(30, 45))
    wait_until(lambda: _health(web.url) == 200, timeout=30)
    # A worker that held unacknowledged tasks when Redis went away may not survive it (kombu's
    # Redis transport can fail while restoring them: "Unrecoverable error: AttributeError");
    # production runs workers under a supervisor that restarts them, as this does.
    restarted = portal_stack.supervise(within=20)

    # Every message was stored, so the answers were the protocol's success; each repeat 02.
    assert answers["before"] == {"00": 15, "200": 15}
    assert answers["outage"] == {"00": 15, "02": 15, "200": 30}
    assert answers["after"] == {"00": 15, "200": 15}
    unprocessed_when_redis_was_back = books.unprocessed()
    sweeping_from = timezone.now()
    sweeps = _sweep_until_done(portal_stack)
    resent = InboundMessage.objects.filter(processed_at__gt=sweeping_from).count()

    _settled_once(redirects + vietqrs)
    lost = books.unsettled(redirects + vietqrs) + books.unprocessed()
    doubled = books.doubled()
    assert (lost, doubled) == (0, 0)
    books.close_books(
        figures,
        messages_sent=sum(sum(counter.values()) for counter in answers.values()),
        duplicates=30,
        faults_injected=portal_stack.redis.stops,
        answers={name: dict(counter) for name, counter in answers.items()},
        slowest_answer_seconds=slowest,
        worker_restarts_by_the_supervisor=restarted,
        unprocessed_after_the_burst=unprocessed_when_redis_was_back,
        applied_after_recovery=resent,
        sweeps_after_recovery=sweeps,
        lost=lost,
        doubled=doubled,
    )


# --- Database connections cut -----------------------------------------------------------------------
_INSERT_MESSAGE = (
    "INSERT INTO payments_inboundmessage (kind, dedupe_key, received_at, headers, body, "
    "outcome, outcome_detail, attempts) VALUES (%s, %s, now(), '{}', '', '', '', 0)"
)


@contextlib.contextmanager
def _inbox_key_taken(kind: str, dedupe_key: str) -> Iterator[None]:
    """An uncommitted row under the message's dedupe key: the callback's own INSERT waits on
    it, i.e. the callback is stopped in the middle, holding its database connection."""
    holder = support.raw_connection()
    try:
        holder.execute(_INSERT_MESSAGE, [kind, dedupe_key])
        yield
    finally:
        holder.rollback()
        holder.close()


def _in_background(call: Callable[[], Any]) -> tuple[threading.Thread, list[Any]]:
    result: list[Any] = []
    thread = threading.Thread(target=lambda: result.append(call()))
    thread.start()
    return thread, result


def test_a_callback_whose_database_connection_is_cut_tells_the_bank_to_retry(portal_stack):
    """The connection of a callback in progress is terminated (pg_terminate_backend): the IPN
    is answered 99 and the webhook 5xx, so both banks retry; the retries are stored, answered
    00 and 200, and applied once."""
    figures = Figures("db_cut_mid_callback", "Database connection cut in the middle of a callback")
    web = portal_stack.start_web()
    portal_stack.start_worker(concurrency=1)
    (redirect,), (vietqr,) = _redirect_payments(1), _vietqr_payments(1)
    params = _ipn(redirect)
    body = traffic.transfer_body(vietqr)
    cut = 0
    with _inbox_key_taken("ipn", gateway.ipn_dedupe_key("SANDBOX", params)):
        thread, ipn_answer = _in_background(lambda: traffic.send_ipn(web.url, params))
        wait_until(lambda: support.backends_waiting_for_a_lock(support.WEB_APP), timeout=20)
        cut += support.terminate_backends(support.WEB_APP, only_waiting=True)
        thread.join(timeout=30)
    with _inbox_key_taken("transfer", f"transfer:{body['id']}"):
        thread, transfer_answer = _in_background(lambda: traffic.send_transfer(web.url, body))
        wait_until(lambda: support.backends_waiting_for_a_lock(support.WEB_APP), timeout=20)
        cut += support.terminate_backends(support.WEB_APP, only_waiting=True)
        thread.join(timeout=30)

    assert cut == 2
    assert ipn_answer == ["99"]  # "unknown error": VNPay retries
    assert transfer_answer[0] >= 500  # no 2xx: the sender retries
    assert not InboundMessage.objects.exists()  # nothing was stored, so nothing was promised
    # The banks' retries.
    assert traffic.send_ipn(web.url, params) == "00"
    assert traffic.send_transfer(web.url, body) == 200
    wait_until(books.all_processed, timeout=30, interval=0.2)
    _settled_once([redirect, vietqr])
    lost, doubled = books.unsettled([redirect, vietqr]), books.doubled()
    assert (lost, doubled) == (0, 0)
    books.close_books(
        figures,
        messages_sent=4,
        duplicates=2,
        faults_injected=cut,
        answers_while_cut={"ipn": ipn_answer[0], "transfer": f"HTTP {transfer_answer[0]}"},
        lost=lost,
        doubled=doubled,
    )


def test_a_burst_under_repeated_connection_cuts_settles_every_payment_once(portal_stack):
    """While banks send a burst (and retry as they do on 99 and 5xx), every connection of the
    web and the worker is terminated every few tens of milliseconds."""
    figures = Figures("db_cuts_during_burst", "Database connections cut repeatedly during a burst")
    web = portal_stack.start_web()
    portal_stack.start_worker(concurrency=2)
    redirects, vietqrs = _redirect_payments(40), _vietqr_payments(40)
    ipns = [_ipn(payment) for payment in redirects]
    transfers = [traffic.transfer_body(payment) for payment in vietqrs]
    attempts: collections.Counter = collections.Counter()
    cuts = 0
    stop = threading.Event()

    def cutter() -> None:
        """Cut every connection every 50 ms for the first three seconds of the burst; the
        banks' retries then get through, however slow this machine is."""
        nonlocal cuts
        from django.db import connection

        deadline = time.monotonic() + 3
        try:
            while time.monotonic() < deadline and not stop.wait(0.05):
                cuts += support.terminate_backends(support.WEB_APP)
                cuts += support.terminate_backends(support.WORKER_APP)
        finally:
            connection.close()

    def deliver_ipn(params: dict[str, str]) -> str:
        for _attempt in range(300):
            code = traffic.send_ipn(web.url, params)
            attempts[f"ipn {code}"] += 1
            if code in ("00", "02"):  # the only answers that stop VNPay's retries
                return code
            time.sleep(0.1)
        return "gave up"

    def deliver_transfer(body: dict[str, Any]) -> int:
        for _attempt in range(300):
            status = traffic.send_transfer(web.url, body)
            attempts[f"transfer {status}"] += 1
            if status == 200:
                return status
            time.sleep(0.1)
        return 0

    chaos = threading.Thread(target=cutter)
    chaos.start()
    try:
        calls: list[Callable[[], Any]] = [lambda p=p: deliver_ipn(p) for p in ipns]
        calls += [lambda b=b: deliver_transfer(b) for b in transfers]
        random.Random(7).shuffle(calls)
        final = traffic.fire_in_groups([[call] for call in calls], threads=10)
    finally:
        stop.set()
        chaos.join(timeout=10)

    outcomes = collections.Counter(str(result) for group in final for result in group)
    assert outcomes["gave up"] == 0 and outcomes["0"] == 0, outcomes
    assert cuts > 0
    retried = sum(
        n for key, n in attempts.items() if key not in ("ipn 00", "ipn 02", "transfer 200")
    )
    sweeps = _sweep_until_done(portal_stack)

    _settled_once(redirects + vietqrs)
    lost = books.unsettled(redirects + vietqrs) + books.unprocessed()
    doubled = books.doubled()
    assert (lost, doubled) == (0, 0)
    books.close_books(
        figures,
        messages_sent=sum(attempts.values()),
        duplicates=sum(attempts.values()) - len(calls),
        faults_injected=cuts,
        answers=dict(sorted(attempts.items())),
        answers_that_made_the_bank_retry=retried,
        sweeps_after_the_burst=sweeps,
        lost=lost,
        doubled=doubled,
    )
