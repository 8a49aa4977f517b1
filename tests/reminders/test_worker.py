"""Reminders through a real worker: a new period's bills are queued and sent in batches by
several tasks at once, each message once; SMS through the sandbox gateway over HTTP."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.utils import timezone

from payments import reminders, tasks
from payments.models import ReminderMessage
from payments.queue import send_now
from sandbox.models import TextMessage
from tests.conftest import WorkerProcess, _worker_env, purge_broker, wait_until
from tests.factories import BillFactory, CustomerFactory

pytestmark = [pytest.mark.celery_worker, pytest.mark.django_db(transaction=True)]

CUSTOMERS = 24


def test_a_new_periods_reminders_go_once_each_through_the_worker(live_server, tmp_path):
    mail_dir = tmp_path / "mail"
    for _ in range(CUSTOMERS):
        BillFactory(customer=CustomerFactory())
    purge_broker()
    worker = WorkerProcess(
        _worker_env(
            {
                "EMAIL_BACKEND": "django.core.mail.backends.filebased.EmailBackend",
                "EMAIL_FILE_PATH": str(mail_dir),
                "SMS_GATEWAY_URL": f"{live_server.url}/sandbox/sms/",
                "REMINDER_BATCH_SIZE": "5",
                "PORTAL_BASE_URL": live_server.url,
            }
        )
    )
    worker.start()
    try:
        send_now(tasks.queue_new_bill_reminders)
        wait_until(lambda: ReminderMessage.objects.count() == 2 * CUSTOMERS)
        # Senders racing for the same messages: each is claimed by one of them.
        for _ in range(3):
            send_now(tasks.send_reminders)
        wait_until(
            lambda: (
                ReminderMessage.objects.filter(
                    channel="email", status=ReminderMessage.Status.SENT
                ).count()
                == CUSTOMERS
            ),
            timeout=60,
        )
        mails = "".join(path.read_text() for path in Path(mail_dir).glob("*.log"))
        assert mails.count("\nSubject: ") == CUSTOMERS
        sms = ReminderMessage.objects.filter(channel="sms")
        if reminders.earliest_send("sms", timezone.now()) > timezone.now():
            # The quiet hours: every SMS waits for 07:00.
            assert set(sms.values_list("status", flat=True)) == {ReminderMessage.Status.QUEUED}
            assert TextMessage.objects.count() == 0
        else:
            wait_until(lambda: TextMessage.objects.count() == CUSTOMERS, timeout=60)
            # The gateway stores each SMS before the sender, given its answer, records it sent.
            wait_until(
                lambda: set(sms.values_list("status", flat=True)) == {ReminderMessage.Status.SENT},
                timeout=30,
            )
            assert TextMessage.objects.count() == CUSTOMERS  # each sent once
            assert "/unsubscribe/" in TextMessage.objects.first().text
    finally:
        worker.stop()
