"""Enqueue Celery tasks only after the transaction that made them necessary has committed.

A broker outage must not fail the request that stored the work: the row in PostgreSQL is the
record, and the sweepers (inbox, expiry, poller) send it again later.
"""

from __future__ import annotations

import logging
from typing import Any

from celery import Task, current_app
from django.db import transaction

logger = logging.getLogger(__name__)


def send_now(task: Task | str, *args: Any, **options: Any) -> bool:
    """Publish a task (or a task by name, from a layer below the tasks); False (logged) when
    the broker cannot take it."""
    try:
        if isinstance(task, str):
            current_app.send_task(task, args=args, **options)
        else:
            task.apply_async(args=args, **options)
    except Exception:  # noqa: BLE001 - kombu and redis raise many kinds; all mean "not sent"
        name = task if isinstance(task, str) else task.name
        logger.warning("broker unavailable: %s%r will be retried by a sweeper", name, args)
        return False
    return True


def enqueue_after_commit(task: Task | str, *args: Any, **options: Any) -> None:
    transaction.on_commit(lambda: send_now(task, *args, **options))
