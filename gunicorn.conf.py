"""Production settings of the web server: `gunicorn config.wsgi:application` reads this file
from the working directory (the README's production section).

Chosen by measurement on the province's data (docs/benchmarks.md, "Lookups"): one process per
core, each with four threads. Against four single-threaded processes on two cores, in the same
run (three alternating 15 s rounds each, wrk at 32 connections), the medians were:

- lookup API: 1,442 against 1,362 requests/s, p99 43.5 against 70.8 ms;
- bills page: 907 against 841 requests/s, p99 62 against 95 ms.

A single-threaded process keeps the keep-alive connections it accepted, however many, and
serves them one at a time, so the connections wrk (or a proxy) happens to give it more of wait
longest. A process's threads serve them in turn, and overlap its waits on PostgreSQL and Redis.
Override with GUNICORN_WORKERS and GUNICORN_THREADS on a machine of another size.
"""

import os

bind = os.environ.get("GUNICORN_BIND", "0.0.0.0:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
worker_class = "gthread"
# Behind a proxy that keeps its connections open: do not close them between requests.
keepalive = 30
backlog = 2048
# A request slower than this is stuck (the slowest page answers in well under a second).
timeout = 30
graceful_timeout = 30
# A worker is replaced after this many requests (plus jitter): a slow leak cannot grow forever.
max_requests = 100_000
max_requests_jitter = 10_000
accesslog = None
loglevel = "warning"


def post_worker_init(worker):  # type: ignore[no-untyped-def]
    """The application is loaded: what is alive now (modules, settings, templates, URL patterns)
    lives as long as the worker. Frozen out of the garbage collector's generations, it is no
    longer walked by every full collection, which made the lookups' slowest answers (in short
    wrk runs of 10 s at 32 connections, not alternated: the lookup API's p99 was 41-59 ms
    before, 35-42 ms after)."""
    import gc

    gc.collect()
    gc.freeze()
