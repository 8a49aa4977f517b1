"""The one guard around the cache, for the work that can do without it.

The cache (Redis in production) speeds things up and is never the record: a lookup reads the
database, a rate limit lets the request through, a wake-up waits for the sweeper. Redis, kombu
and Django's backends raise many kinds of error, and they all mean the same here, so the guard
takes any of them, logs one line and lets the caller go on with its default.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

logger = logging.getLogger(__name__)


@contextmanager
def outage_tolerated(what: str, *args: Any) -> Iterator[None]:
    """Run the block; on any error log `what % args` (what is done without the cache) and go on
    after it. Keep the block to the cache calls: it swallows whatever they raise."""
    try:
        yield
    except Exception:  # noqa: BLE001 - every kind means the cache (or broker) is away
        logger.warning("cache unavailable: " + what, *args)
