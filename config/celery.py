"""The Celery application shared by the worker, beat and the web processes that enqueue tasks."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("portal")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.task(name="portal.noop", ignore_result=True)
def noop() -> None:
    """Does nothing; the benchmarks use it to measure the broker's own throughput."""
