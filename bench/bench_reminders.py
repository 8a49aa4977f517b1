"""Reminders for a province's new period: every unpaid bill's notices queued (one message per
customer and channel), then sent in batches by parallel senders, the SMS over HTTP to the
sandbox playing the SMS gateway (a gunicorn of its own), the e-mails to Django's dummy backend.
Target: all of them in under 30 minutes.

The senders are forked processes, as many as the Procfile's worker runs tasks at once, each
running what the `send_reminders` task runs (`reminders.reminders_send_due` until nothing is
due, each batch handed over REMINDER_SEND_CONCURRENCY messages at a time), at a fixed daytime
`now`: a run at night would otherwise hold every SMS for 07:00 and measure nothing. The
baseline is the gateway alone: the same processes and threads posting signed SMS through the
adapter, nothing else.
"""

from __future__ import annotations

import datetime
import multiprocessing
import time
from collections.abc import Callable
from typing import Any

from bench.bench_import import PERIOD, _copy_into_bills, _remove_imported, write_monthly_file
from bench.common import VAR, Section, bench_env, gunicorn

TARGET_SECONDS = 30 * 60
SENDERS = 2  # the worker's concurrency in the Procfile: two send_reminders tasks at once
BASELINE_MESSAGES = 2000
GATEWAY_KEY = "bench-sms-gateway-" + "k" * 30
UNSUBSCRIBE_KEY = "bench-unsubscribe-" + "k" * 30


def _daytime() -> datetime.datetime:
    from django.utils import timezone

    return timezone.make_aware(
        datetime.datetime.combine(timezone.localdate(), datetime.time(10, 0))
    )


def _forget_reminders() -> None:
    """The benchmark month's reminders and the gateway's messages, so each run starts clean
    (and the month's bills can be deleted: reminder lines protect them)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "DELETE FROM payments_reminderline WHERE bill_id IN "
            "(SELECT id FROM customers_bill WHERE period = %s)",
            [PERIOD],
        )
        cursor.execute(
            "DELETE FROM payments_remindermessage m WHERE NOT EXISTS "
            "(SELECT 1 FROM payments_reminderline l WHERE l.message_id = m.id)"
        )
        cursor.execute("DELETE FROM sandbox_textmessage")


def _send_all(now_text: str) -> dict[str, int]:
    """One sender: batches until nothing is due (the `send_reminders` task's loop)."""
    from django.db import connections

    from payments import reminders

    connections.close_all()  # the parent's connection is not this process's
    now = datetime.datetime.fromisoformat(now_text)
    total: dict[str, int] = {}
    while outcome := reminders.reminders_send_due(now=now):
        for status, count in outcome.items():
            total[status] = total.get(status, 0) + count
    return total


def _post_directly(count: int) -> int:
    """The gateway alone: signed SMS posted through the adapter, as many at once as a sender
    hands over, and nothing else."""
    from concurrent.futures import ThreadPoolExecutor

    from django.conf import settings

    from payments.notifications import HttpSMSGateway

    gateway = HttpSMSGateway()
    with ThreadPoolExecutor(settings.REMINDER_SEND_CONCURRENCY) as pool:
        list(
            pool.map(
                lambda index: gateway.send(
                    to=f"09{index:08d}", text="EVN Ha Tinh: baseline " + "x" * 200
                ),
                range(count),
            )
        )
    return count


def _in_parallel(function: Callable[[Any], Any], args: list[Any]) -> list[Any]:
    from django.db import connections

    connections.close_all()  # never share a connection with the children
    with multiprocessing.get_context("fork").Pool(SENDERS) as pool:
        return pool.map(function, args)


def run() -> Section:
    from django.conf import settings

    from payments import reminders
    from payments.models import ReminderMessage

    section = Section(
        "Reminders of a new period: queued and sent against the sandbox SMS gateway",
        "python -m bench reminders (bench/bench_reminders.py)",
    )
    VAR.mkdir(parents=True, exist_ok=True)
    source = VAR / "bills-2026-11.csv"
    write_monthly_file(source)
    _forget_reminders()
    _remove_imported()
    _copy_into_bills(source)  # the month's bills, all unpaid
    gateway_env = bench_env(DEBUG="true", SANDBOX_BANK_ENABLED="true", SANDBOX_SMS_KEY=GATEWAY_KEY)
    settings.SMS_GATEWAY_KEY = GATEWAY_KEY
    settings.UNSUBSCRIBE_LINK_KEY = UNSUBSCRIBE_KEY
    settings.EMAIL_BACKEND = "django.core.mail.backends.dummy.EmailBackend"
    now = _daytime()
    try:
        with gunicorn(workers=2, threads=4, env=gateway_env) as base:
            settings.SMS_GATEWAY_URL = f"{base}/sandbox/sms/"
            started = time.perf_counter()
            _in_parallel(_post_directly, [BASELINE_MESSAGES // SENDERS] * SENDERS)
            baseline = BASELINE_MESSAGES / (time.perf_counter() - started)

            started = time.perf_counter()
            queued = reminders.reminders_queue_new_bills(
                since=now - datetime.timedelta(days=2), now=now
            )
            queueing = time.perf_counter() - started
            messages = ReminderMessage.objects.filter(day=now.date()).count()
            started = time.perf_counter()
            outcomes = _in_parallel(_send_all, [now.isoformat()] * SENDERS)
            sending = time.perf_counter() - started
    finally:
        _forget_reminders()
        _remove_imported()
    totals: dict[str, int] = {}
    for outcome in outcomes:
        for status, count in outcome.items():
            totals[status] = totals.get(status, 0) + count
    sent = totals.get("sent", 0)
    elapsed = queueing + sending
    section.add("bill notices queued (bill × channel)", f"{queued:,}")
    section.add("messages", f"{messages:,}")
    section.add("queueing", f"{queueing:.1f} s")
    section.add(
        "sending",
        f"{sending:.1f} s, {sent / sending:,.0f} messages/s",
        f"gateway alone: {baseline:,.0f} SMS/s",
    )
    section.add(
        "queued and sent", f"{elapsed / 60:.1f} min", target=f"< {TARGET_SECONDS // 60} min"
    )
    section.add("outcomes", ", ".join(f"{k} {v:,}" for k, v in sorted(totals.items())))
    section.notes.append(
        f"{SENDERS} senders in parallel, batches of {settings.REMINDER_BATCH_SIZE} handed over "
        f"{settings.REMINDER_SEND_CONCURRENCY} at a time on keep-alive connections; each batch "
        "claimed (FOR UPDATE SKIP LOCKED), its bills' status and opt-outs read just before it "
        "goes, outcomes written 50 at a time. The gateway is the sandbox's /sandbox/sms/ under "
        "gunicorn (2 × 4 threads), checking each request's signature and storing each SMS."
    )
    section.passed = elapsed < TARGET_SECONDS and sent == messages
    return section
