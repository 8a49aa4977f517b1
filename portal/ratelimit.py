"""Fixed-window rate limits per client address, kept in the cache (Redis when configured).

One limiter serves the lookup pages and the lookup API, so a client cannot double its budget by
switching between them. The budget is `settings.LOOKUP_RATE_LIMIT` ("30/m": 30 per minute).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.http import HttpRequest
from rest_framework.throttling import BaseThrottle

from portal import fastcache

logger = logging.getLogger(__name__)

_PERIODS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True)
class Decision:
    allowed: bool
    retry_after: int  # seconds until the window resets; 0 when allowed
    count: int = 0  # requests counted in this window, this one included; 0 without a store


def parse_rate(rate: str) -> tuple[int, int]:
    """'30/m' -> (30, 60)."""
    count, _, unit = rate.partition("/")
    return int(count), _PERIODS[unit]


def client_address(request: HttpRequest | Any) -> str:
    """The client's address, trusting X-Forwarded-For only as far as configured proxies go."""
    proxies = settings.TRUSTED_PROXY_COUNT
    if proxies:
        hops = [h.strip() for h in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if h]
        if len(hops) >= proxies:
            return hops[-proxies]
    return str(request.META.get("REMOTE_ADDR", "unknown"))


def hit(scope: str, key: str, rate: str) -> Decision:
    """Count one request of `key` in `scope`; refuse it once the window's budget is spent."""
    limit, period = parse_rate(rate)
    now = time.time()
    window = int(now // period)
    cache_key = f"rl:{scope}:{key}:{window}"
    try:
        count = fastcache.count_in_window(cache_key, period + 1)
    except Exception:  # noqa: BLE001 - a cache outage must not take the lookup down with it
        logger.warning("rate-limit store unavailable; letting %s through", scope)
        return Decision(True, 0)
    if count <= limit:
        return Decision(True, 0, count)
    return Decision(False, max(1, int((window + 1) * period - now) + 1), count)


def lookup_hit(request: HttpRequest | Any) -> Decision:
    """Count one customer lookup (bills page or lookup API) of this client."""
    return hit("lookup", client_address(request), settings.LOOKUP_RATE_LIMIT)


class LookupThrottle(BaseThrottle):
    """The lookup budget as a DRF throttle: over it, DRF raises Throttled, which
    portal.api.exception_handler answers as 429 `rate_limited` with Retry-After."""

    decision: Decision | None = None

    def allow_request(self, request: Any, view: Any) -> bool:
        self.decision = lookup_hit(request)
        return self.decision.allowed

    def wait(self) -> float | None:
        return float(self.decision.retry_after) if self.decision else None
