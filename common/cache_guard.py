"""The one guard around the cache, for the work that can do without it.

The cache (Redis in production) speeds things up and is never the record: a lookup reads the
database, a rate limit lets the request through, a wake-up waits for the sweeper. Redis, kombu
and Django's backends raise many kinds of error, and they all mean the same here, so the guard
takes any of them, logs one line and lets the caller go on with its default.
"""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any

logger = logging.getLogger(__name__)


class outage_tolerated:
    """Run the block; on any error log `what % args` (what is done without the cache) and go on
    after it. Keep the block to the cache calls: it swallows whatever they raise.

    A class rather than a generator: it guards the lookup's Redis calls, twice a request, and
    a generator-based context manager cost several times more (measured)."""

    __slots__ = ("args", "what")

    def __init__(self, what: str, *args: Any) -> None:
        self.what = what
        self.args = args

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        # Every kind of Exception means the cache (or broker) is away; anything else (a
        # KeyboardInterrupt, a SystemExit) goes on up.
        if kind is None or not issubclass(kind, Exception):
            return False
        logger.warning("cache unavailable: " + self.what, *self.args)
        return True
