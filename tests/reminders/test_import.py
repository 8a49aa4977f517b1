"""A billing import that added bills asks a worker to queue the new period's reminders; a
file loaded before asks nothing. The task queues each new unpaid bill, once."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
from django.core.management import call_command

from config.celery import app
from payments import tasks
from payments.models import ReminderLine
from tests.conftest import purge_broker

pytestmark = pytest.mark.django_db

SAMPLE = Path(__file__).resolve().parents[2] / "docs" / "samples" / "bills-sample.csv"


def queued_task_names() -> list[str]:
    with app.connection_for_read() as conn:
        raw = conn.default_channel.client.lrange("default", 0, -1)
    return [json.loads(item)["headers"]["task"] for item in raw]


def test_an_import_that_adds_bills_asks_for_their_reminders(tmp_path):
    # The sample's good lines (it also holds a bad one, on purpose).
    lines = SAMPLE.read_text(encoding="utf-8").splitlines()
    good = tmp_path / "bills.csv"
    good.write_text("\n".join(line for line in lines if "PA14XX," not in line) + "\n")
    purge_broker()
    call_command("import_bills", str(good), stdout=io.StringIO())
    assert queued_task_names() == ["payments.tasks.queue_new_bill_reminders"]
    purge_broker()
    call_command("import_bills", str(good), stdout=io.StringIO())
    assert queued_task_names() == []
    queued = tasks.queue_new_bill_reminders()
    assert queued == ReminderLine.objects.count() > 0
    assert tasks.queue_new_bill_reminders() == 0
    purge_broker()
