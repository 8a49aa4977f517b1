"""The settlement benchmark's baseline: a Celery task that only counts itself."""

from __future__ import annotations

import redis
from celery import shared_task
from django.conf import settings


@shared_task(name="bench.count", ignore_result=True)
def count(key: str) -> None:
    redis.Redis.from_url(settings.CELERY_BROKER_URL).incr(key)
