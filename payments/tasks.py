"""Celery tasks: thin, idempotent, taking primary keys, each calling one service.

All tasks run with `acks_late` and `reject_on_worker_lost` (settings), so a worker killed in the
middle of one leaves it to be delivered again; the services make a second run harmless.
"""

from __future__ import annotations

import datetime
import logging
import time
from typing import Any

from celery import shared_task
from django.conf import settings
from django.db import OperationalError
from django.utils import timezone

from payments import applier, inbox, poller, services
from payments.queue import send_now

logger = logging.getLogger(__name__)

# Only a lost database connection is worth an automatic retry; anything else is a bug or a
# rule, and the inbox sweeper retries the message anyway.
TRANSIENT = (OperationalError,)


@shared_task
def apply_inbox() -> int:
    """Apply the messages waiting in the inbox, a batch at a time, until none is left. Woken by
    the callbacks (`inbox.inbox_wake`) when no applier is awake; any number may run at once,
    each claiming other messages."""
    return applier.apply_waiting()


@shared_task
def sweep_inbox() -> int:
    """The safety net: apply what no woken applier took (a lost wake-up, a broker outage, a
    message whose last attempt failed and whose wait is over)."""
    applied = applier.apply_waiting()
    if applied:
        logger.info("inbox sweeper applied %d message(s)", applied)
    return applied


@shared_task
def purge_refused_messages() -> int:
    """Forget refused messages (forged, unsigned, from unlisted addresses) older than
    INBOX_REFUSED_RETENTION_DAYS; accepted messages stay. Hourly: each run deletes what aged
    out since the last, and a run cut short leaves the rest to the next."""
    cutoff = timezone.now() - datetime.timedelta(days=settings.INBOX_REFUSED_RETENTION_DAYS)
    purged = inbox.inbox_purge_refused(older_than=cutoff)
    if purged:
        logger.info("purged %d refused inbox message(s) received before %s", purged, cutoff)
    return purged


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, max_retries=3)
def expire_stale_payments() -> int:
    return services.payments_expire_stale()


@shared_task
def poll_pending_gateway_payments() -> int:
    """Enqueue a status check for every redirect payment whose next check is due."""
    due = poller.payments_due_for_poll()
    for payment_id in due:
        send_now(poll_gateway_payment, str(payment_id))
    return len(due)


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, max_retries=3)
def poll_gateway_payment(payment_id: str) -> str:
    return poller.payment_poll(payment_id=payment_id)


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, max_retries=5)
def send_receipt(payment_id: str) -> bool:
    from payments import notifications

    return notifications.receipt_send(payment_id=payment_id)


@shared_task
def reconcile_dropped_statements() -> int:
    from payments import reconciliation

    return reconciliation.reconcile_dropped_files()


@shared_task
def warm_noncash_dashboard() -> str:
    """Compute the dashboard's month and its twelve-month trend ahead of the managers, so nobody
    waits for a cold page."""
    from payments import reports

    periods = reports.report_periods()
    period = reports.report_default_period(periods)
    if period is None:
        return ""
    reports.month_tally(period=period, fresh=True)
    # The trend's months (the newest twelve): each computed only when its cached tally is gone.
    reports.noncash_trend(periods=periods, period=periods[0])
    return period.isoformat()


@shared_task
def send_receipts(payment_ids: list[str]) -> int:
    """The receipts of many payments settled together, sent as one batch; returns how many
    were sent. One that could not be sent goes to its own retrying task; those a slow mail
    server left unsent when the task ran out of time go to a new batch."""
    from payments import notifications

    try:
        sent, failed = notifications.receipts_send(payment_ids=payment_ids)
    except notifications.ReceiptsInterrupted as interrupted:
        send_now(send_receipts, interrupted.remaining)
        return 0
    for payment_id in failed:
        logger.warning("receipt of %s not sent; handed to its own task", payment_id)
        send_now(send_receipt, payment_id)
    return len(sent)


# A new period's bills are "new" this long after their import: the daily round catches a
# wake-up the import could not send.
NEW_BILLS_WITHIN = datetime.timedelta(days=2)


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, max_retries=3)
def queue_new_bill_reminders() -> int:
    """Reminders for the bills of a newly imported period (sent by `import_bills`)."""
    from payments import reminders

    queued = reminders.reminders_queue_new_bills(since=timezone.now() - NEW_BILLS_WITHIN)
    if queued:
        send_now(send_reminders)
    return queued


def on_new_bills_loaded(sender: Any, **kwargs: Any) -> None:
    """A billing file brought a new period: a worker queues its reminders."""
    send_now(queue_new_bill_reminders)


@shared_task(autoretry_for=TRANSIENT, retry_backoff=True, max_retries=3)
def queue_reminders() -> int:
    """The daily round (beat): new bills not yet reminded of, bills due in
    REMINDER_DUE_SOON_DAYS days, and overdue bills (once each)."""
    from payments import reminders

    since = timezone.now() - NEW_BILLS_WITHIN
    queued = reminders.reminders_queue_new_bills(since=since) + reminders.reminders_queue_due()
    if queued:
        send_now(send_reminders)
    return queued


# A sender stops taking batches after this long and hands the rest to a new task, well inside
# CELERY_TASK_SOFT_TIME_LIMIT.
SEND_REMINDERS_FOR_SECONDS = 60


@shared_task
def send_reminders() -> int:
    """Send the reminders whose time has come, a batch at a time; each message's outcome is
    recorded on it. Woken after queueing, and every minute by beat (retries, 07:00)."""
    from payments import reminders

    started = time.monotonic()
    sent = 0
    while True:
        outcome = reminders.reminders_send_due()
        sent += outcome.get(reminders.Status.SENT, 0)
        if sum(outcome.values()) < settings.REMINDER_BATCH_SIZE:
            return sent
        if time.monotonic() - started > SEND_REMINDERS_FOR_SECONDS:
            send_now(send_reminders)
            return sent
